# Copyright (c) OpenMMLab. All rights reserved.
# mmseg's tools/test.py, plus ngl_mmseg: NGLLoss registered for any config,
# CPU-only distributed runs (gloo), dataset checks, weights-only checkpoint loading.
import argparse

from mmengine.runner import Runner

import ngl_mmseg  # noqa: F401  registers NGLLoss; checkpoint loading under torch>=2.6
from ngl_mmseg.cli import add_launch_arguments, parse_launch_args
from ngl_mmseg.launch import load_checkpoint_strictly, load_config, prepare_config


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument(
        'config', help='config file path (the one the checkpoint was trained with)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='score the checkpoint even if weights are missing or do not fit the model '
        '(by default that is an error naming them)')
    parser.add_argument(
        '--work-dir',
        help='if specified, the evaluation metric results will be dumped into the directory '
        'as json')
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    add_launch_arguments(parser)
    return parse_launch_args(parser)


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' in default_hooks:
        visualization_hook = default_hooks['visualization']
        # Turn on visualization
        visualization_hook['draw'] = True
        if args.show:
            visualization_hook['show'] = True
            visualization_hook['wait_time'] = args.wait_time
        if args.show_dir:
            visualizer = cfg.visualizer
            visualizer['save_dir'] = args.show_dir
    else:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks.'
            'refer to usage '
            '"visualization=dict(type=\'VisualizationHook\')"')

    return cfg


def main():
    args = parse_args()
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.work_dir)

    # Loaded below, strictly: mmengine's default only warns about missing or
    # mismatched weights and then scores a half-initialised model.
    cfg.load_from = None

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    # add output_dir in metric
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    prepare_config(cfg, splits=('test', ))

    # build the runner from config
    runner = Runner.from_cfg(cfg)
    if args.non_strict:
        runner.load_checkpoint(args.checkpoint, strict=False)
    else:
        load_checkpoint_strictly(runner, args.checkpoint, args.config, 'test.py',
                                 'Pass --non-strict to score it anyway.')

    # start testing
    runner.test()


if __name__ == '__main__':
    main()
