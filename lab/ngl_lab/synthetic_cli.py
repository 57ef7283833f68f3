"""The command line of the synthetic datasets (``tools/make_synthetic_dataset.py``,
``python -m ngl_lab.synthetic_cli``): arguments in, ``make_voc`` or
``make_coco_stuff`` out, errors as one line. ``synthetic`` writes the datasets
and never imports this module."""
import argparse
import sys

from .synthetic import COCO_STUFF_CLASSES, NOISE_KINDS, make_coco_stuff, make_voc, read_manifest


def main():
    """``python -m ngl_lab.synthetic_cli`` (``tools/make_synthetic_dataset.py``)."""
    parser = argparse.ArgumentParser(description='Make a synthetic VOC or COCO-Stuff dataset')
    parser.add_argument('dataset', choices=['voc', 'coco-stuff'])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, help='default: 20 (voc), 24 (coco-stuff), '
                        '171 (coco-stuff --all-classes): every class used appears in validation')
    parser.add_argument('--num-test', type=int, default=0,
                        help='a second held-out split with clean labels (test.txt for voc, '
                        'test2017 for coco-stuff): the report split of a tuned study, whose '
                        'learning rates are chosen on val; default 0 (none)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--all-classes', action='store_true',
                        help='every class occurs, long-tailed (Zipf) frequencies')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a synthetic dataset this tool wrote in OUT_DIR before')
    parser.add_argument('--label-noise', type=float, default=0.0, metavar='F',
                        help='corrupt the training labels of a fraction F of the objects '
                             '(validation stays clean); default 0')
    parser.add_argument('--noise-kind', choices=sorted(NOISE_KINDS),
                        help='what the noise does to an object: ' + '; '.join(
                            f'{k}: {v}' for k, v in NOISE_KINDS.items()))
    args = parser.parse_args()
    if args.label_noise and not args.noise_kind:
        parser.error('--label-noise needs --noise-kind')
    if args.noise_kind and not args.label_noise:
        parser.error('--noise-kind needs --label-noise F with F > 0')
    kwargs = dict(num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                  long_tail=args.all_classes,
                  overwrite=args.overwrite, noise_kind=args.noise_kind,
                  noise_rate=args.label_noise)
    if args.dataset == 'voc':
        if args.num_val is not None:
            kwargs['num_val'] = args.num_val
        make = make_voc
    else:
        make = make_coco_stuff
        if args.all_classes:
            kwargs['num_used_classes'] = COCO_STUFF_CLASSES
        kwargs['num_val'] = (args.num_val if args.num_val is not None else
                             kwargs.get('num_used_classes', 24))
    try:
        root = make(args.out_dir, **kwargs)
    except (OSError, ValueError) as exc:  # FileExistsError too: a folder not ours
        sys.exit(f'make_synthetic_dataset: error: {exc}')
    print(f'{args.dataset}: synthetic dataset written to {root}')
    noise = read_manifest(root)['label_noise']
    if noise:
        print(f"label noise ({noise['kind']}, rate {noise['rate']:g}, seed {noise['seed']}): "
              f"{noise['objects_hit']} of {noise['objects']} training objects "
              f"({100 * noise['object_rate']:.1f}%), {100 * noise['pixel_rate']:.1f}% of "
              'the labelled training pixels changed; validation is clean')


if __name__ == '__main__':
    main()
