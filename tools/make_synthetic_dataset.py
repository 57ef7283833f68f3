#!/usr/bin/env python
"""Write a small synthetic dataset in the exact on-disk layout of a real one.

    python tools/make_synthetic_dataset.py voc data/synthetic/voc
    python tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-stuff --num-train 60

voc        -> OUT_DIR/VOCdevkit/VOC2012 (JPEGImages, SegmentationClass,
              SegmentationClassAug, ImageSets/Segmentation/{train,val,aug}.txt)
coco-stuff -> OUT_DIR/coco_stuff164k (images/{train2017,val2017},
              annotations/{train2017,val2017}/*_labelTrainIds.png via mmseg's converter)
"""
import argparse

from ngl_mmseg.datasets import make_coco_stuff, make_voc


def main():
    parser = argparse.ArgumentParser(description='Make a synthetic VOC or COCO-Stuff dataset')
    parser.add_argument('dataset', choices=['voc', 'coco-stuff'])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, help='default: 20 (voc), 24 (coco-stuff), '
                        'so every class used appears in validation')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    make = make_voc if args.dataset == 'voc' else make_coco_stuff
    kwargs = dict(num_val=args.num_val) if args.num_val is not None else {}
    root = make(args.out_dir, num_train=args.num_train, seed=args.seed, **kwargs)
    print(f'{args.dataset}: synthetic dataset written to {root}')


if __name__ == '__main__':
    main()
