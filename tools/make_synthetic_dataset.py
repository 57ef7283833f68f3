#!/usr/bin/env python
"""Write a small synthetic dataset in the exact on-disk layout of a real one.

    python tools/make_synthetic_dataset.py voc data/synthetic/voc
    python tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-stuff --num-train 60
    python tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-all --all-classes

voc        -> OUT_DIR/VOCdevkit/VOC2012 (JPEGImages, SegmentationClass,
              SegmentationClassAug, ImageSets/Segmentation/{train,val,aug}.txt)
coco-stuff -> OUT_DIR/coco_stuff164k (images/{train2017,val2017},
              annotations/{train2017,val2017}/*_labelTrainIds.png via mmseg's converter)

--all-classes: the hard case for a loss: every class of the dataset occurs (all 21,
all 171), with long-tailed frequencies like the real datasets', and validation
cycles through every class. A folder that already holds files is refused;
--overwrite replaces only a synthetic dataset this tool wrote there before.
"""
import argparse
import sys

from ngl_mmseg.experiments.synthetic import COCO_STUFF_CLASSES, make_coco_stuff, make_voc


def main():
    parser = argparse.ArgumentParser(description='Make a synthetic VOC or COCO-Stuff dataset')
    parser.add_argument('dataset', choices=['voc', 'coco-stuff'])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, help='default: 20 (voc), 24 (coco-stuff), '
                        '171 (coco-stuff --all-classes): every class used appears in validation')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--all-classes', action='store_true',
                        help='every class occurs, long-tailed (Zipf) frequencies')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a synthetic dataset this tool wrote in OUT_DIR before')
    args = parser.parse_args()
    kwargs = dict(num_train=args.num_train, seed=args.seed, long_tail=args.all_classes,
                  overwrite=args.overwrite)
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
    except (FileExistsError, ValueError) as exc:
        sys.exit(f'make_synthetic_dataset: error: {exc}')
    print(f'{args.dataset}: synthetic dataset written to {root}')


if __name__ == '__main__':
    main()
