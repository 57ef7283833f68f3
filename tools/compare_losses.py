#!/usr/bin/env python
"""Train an mmseg config with several losses (same seed, same settings) and compare.

    python tools/compare_losses.py CONFIG [--losses ce ngl ...] [--gpus N]
                                   [--work-dir D] [--cfg-options k=v ...]

Losses are presets (ce, ngl, ngl+ce, ngl-scaling, ce-avg-non-ignore) or
NAME=<dict literal>, e.g. "ngl_a2={'type': 'NGLLoss', 'alpha': 2.0}".
Writes report.md, report.json, curves.png and predictions.png in --work-dir.
"""
import argparse
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import DictAction

from ngl_mmseg.experiments.compare import compare
from ngl_mmseg.experiments.presets import LOSS_PRESETS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('config')
    parser.add_argument('--losses', nargs='+', default=['ce', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per variant (> 1 runs tools/dist_train.sh)')
    parser.add_argument('--work-dir', help='default: work_dirs/compare/<config name>')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-samples', type=int, default=4,
                        help='validation images in predictions.png')
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's training logs (always in <work-dir>/<variant>/train.log)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every variant, as in tools/train.py')
    args = parser.parse_args()
    work_dir = args.work_dir or osp.join('work_dirs', 'compare',
                                         osp.splitext(osp.basename(args.config))[0])
    compare(args.config, args.losses, work_dir, args.gpus, args.cfg_options, args.seed,
            args.num_samples, args.verbose)


if __name__ == '__main__':
    main()
