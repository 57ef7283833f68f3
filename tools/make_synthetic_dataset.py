#!/usr/bin/env python
"""Write a small synthetic dataset in the exact on-disk layout of a real one.

    python tools/make_synthetic_dataset.py voc data/synthetic/voc
    python tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-stuff --num-train 60
    python tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-all --all-classes

voc        -> OUT_DIR/VOCdevkit/VOC2012 (JPEGImages, SegmentationClass,
              SegmentationClassAug, ImageSets/Segmentation/{train,val,aug}.txt)
coco-stuff -> OUT_DIR/coco_stuff164k (images/{train2017,val2017},
              annotations/{train2017,val2017}/*_labelTrainIds.png as mmseg's converter writes them)

--all-classes: the hard case for a loss: every class of the dataset occurs (all 21,
all 171), with long-tailed frequencies like the real datasets', and validation
cycles through every class. A folder that already holds files is refused;
--overwrite replaces only a synthetic dataset this tool wrote there before.
"""
from ngl_lab.synthetic_cli import main

if __name__ == '__main__':
    main()
