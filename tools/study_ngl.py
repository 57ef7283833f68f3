#!/usr/bin/env python
"""Does NGL train? One config under a grid of loss variants x optimizers x seeds.

    python tools/study_ngl.py CONFIG [--variants ce ngl-plain ngl ...]
        [--optimizers sgd adamw] [--seeds 0 1 2] [--work-dir D] [--gpus N]
        [--data-root DIR] [--iters N] [--pretrain-iters N --pretrain-data-root DIR]
        [--cfg-options k=v ...]

Variants are loss presets (see ngl_mmseg/losses_presets.py) or NAME=<dict>.
Writes study.md (table), study.json (every curve) and study.png (mIoU against
iteration) in --work-dir. mmengine's logs of each run go to RUN_DIR/train.log.
"""
import argparse
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import DictAction  # noqa: E402  (after the filter: it imports pkg_resources)

from ngl_mmseg.experiments.presets import LOSS_PRESETS  # noqa: E402
from ngl_mmseg.experiments.study import OPTIMIZERS, merge, replot, study  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('config', nargs='?', help='the config to train (not with --merge)')
    parser.add_argument('--variants', nargs='+', default=['ce', 'ngl-plain', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--optimizers', nargs='+', default=['sgd'],
                        help=f"config (the config's own) or {sorted(OPTIMIZERS)}")
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--work-dir', help='default: work_dirs/study/<config name>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run (> 1 runs tools/dist_train.sh)')
    parser.add_argument('--pretrain-iters', type=int, default=0,
                        help='first train the backbone with CE this long on other scenes')
    parser.add_argument('--pretrain-data-root', help='the other scenes (same layout)')
    parser.add_argument('--data-root', help="replaces the config's data_root in its loaders")
    parser.add_argument('--iters', type=int,
                        help='iterations per run (validation every quarter)')
    parser.add_argument('--title', default='')
    parser.add_argument('--replot', action='store_true',
                        help='only rewrite study.md/.png of --work-dir from its study.json')
    parser.add_argument('--merge', nargs='+', metavar='STUDY_DIR',
                        help='only write one table and figure in --work-dir from the runs of '
                        'these finished studies (CONFIG is ignored)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every run, as in tools/train.py')
    args = parser.parse_args()
    if not args.config and not args.merge:
        parser.error('CONFIG is required (except with --merge)')
    if args.merge and not args.work_dir:
        parser.error('--merge needs --work-dir for the merged table')
    work_dir = args.work_dir or osp.join('work_dirs', 'study',
                                         osp.splitext(osp.basename(args.config or ''))[0])
    if args.replot:
        replot(work_dir)
        return
    if args.merge:
        merge(work_dir, args.merge, args.title)
        return
    study(args.config, args.variants, args.optimizers, args.seeds, work_dir, args.gpus,
          args.cfg_options, args.pretrain_iters, args.pretrain_data_root, args.title,
          args.data_root, args.iters)


if __name__ == '__main__':
    main()
