#!/usr/bin/env python
"""Does NGL train? One config under a grid of loss variants x optimizers x seeds.

    python tools/study_ngl.py CONFIG [--variants ce ngl-plain ngl ...]
        [--optimizers sgd adamw] [--seeds 0 1 2] [--work-dir D] [--gpus N]
        [--data-root DIR] [--iters N] [--pretrain-iters N --pretrain-data-root DIR]
        [--regime NAME] [--train-miou] [--cfg-options k=v ...]
    python tools/study_ngl.py --merge STUDY_DIR ... --work-dir D

Variants are loss presets (see lab/ngl_lab/presets.py) or NAME=<dict>.
Writes study.md (table), study.json (every curve) and study.png (mIoU against
iteration) in --work-dir. mmengine's logs of each run go to RUN_DIR/train.log.
"""
from ngl_lab.study_cli import main

if __name__ == '__main__':
    main()
