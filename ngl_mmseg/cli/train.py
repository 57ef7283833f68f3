# Copyright (c) OpenMMLab. All rights reserved.
# mmseg's tools/train.py, plus ngl_mmseg: NGLLoss registered for any config,
# CPU-only distributed runs (gloo), dataset checks, weights-only checkpoint loading.
import argparse
import logging

from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

import ngl_mmseg  # noqa: F401  registers NGLLoss; checkpoint loading under torch>=2.6
from ngl_mmseg.cli import add_launch_arguments, parse_launch_args
from ngl_mmseg.launch import (
    check_labels_before_training,
    load_config,
    pick_resume_checkpoint,
    prepare_config,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    add_launch_arguments(parser)
    return parse_launch_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.work_dir)

    # enable automatic-mixed-precision training
    if args.amp is True:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    prepare_config(cfg, splits=('train', 'val'))

    # resume training
    cfg.resume = args.resume
    if args.resume and not cfg.get('load_from'):
        # mmengine takes work_dir/last_checkpoint even when that file is broken.
        fallback = pick_resume_checkpoint(cfg.work_dir)
        if fallback:
            cfg.load_from = fallback

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # start training
    # Every split's labels, before the first iteration (sampled when large).
    check_labels_before_training(cfg, ('train', 'val'), runner.logger)
    runner.train()


if __name__ == '__main__':
    main()
