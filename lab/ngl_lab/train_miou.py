"""TrainSetMIoUHook: the mIoU on the training set, with its labels as written, at
every validation: with noisy labels, how far a model fits the noise (training
mIoU up) while it loses the truth (validation mIoU on clean labels down).

Used by the study (``--train-miou``); a run's config imports this module.
"""
import copy
import numbers

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def _with_pipeline(dataset_cfg, pipeline):
    """``dataset_cfg`` (a ConcatDataset's parts too) with ``pipeline``.

    A wrapper of one dataset (``RepeatDataset``, as mmseg's DRIVE, CHASE_DB1,
    HRF and STARE configs train on; ``ClassBalancedDataset``;
    ``MultiImageMixDataset``) gives way to the dataset it wraps: each training
    image is scored once, with its labels as written."""
    cfg = copy.deepcopy(dataset_cfg)
    if 'datasets' in cfg:
        cfg['datasets'] = [_with_pipeline(d, pipeline) for d in cfg['datasets']]
    elif 'dataset' in cfg:
        return _with_pipeline(cfg['dataset'], pipeline)
    else:
        cfg['pipeline'] = copy.deepcopy(pipeline)
    return cfg


@HOOKS.register_module()
class TrainSetMIoUHook(Hook):
    """After each validation, score the model on the training images and
    their (possibly noisy) labels with the validation pipeline and mmseg's
    IoUMetric; logged as ``train_mIoU`` beside the validation's ``mIoU``.

    Args:
        max_images (int): Score at most this many training images (the
            first ones). Default: 200.
    """

    priority = 'LOW'

    def __init__(self, max_images=200):
        if isinstance(max_images, bool) or not isinstance(max_images, numbers.Integral) or \
                max_images < 1:
            raise ValueError('TrainSetMIoUHook: max_images must be an integer >= 1 (how many '
                             f'training images to score), got {max_images!r}')
        self.max_images = int(max_images)
        self._loader = None

    def _build(self, runner):
        from mmengine.dataset import DefaultSampler  # noqa: F401  (registered by mmengine)
        cfg = runner.cfg
        dataset = _with_pipeline(cfg.train_dataloader.dataset,
                                 cfg.val_dataloader.dataset.pipeline)
        dataset['indices'] = self.max_images
        if 'datasets' in dataset:  # ConcatDataset takes no `indices`
            dataset.pop('indices')
        loader = dict(batch_size=1, num_workers=0, dataset=dataset,
                      sampler=dict(type='DefaultSampler', shuffle=False))
        self._loader = runner.build_dataloader(loader, seed=0, diff_rank_seed=False)
        self._evaluator = runner.build_evaluator(dict(type='IoUMetric', iou_metrics=['mIoU']))
        self._evaluator.dataset_meta = self._loader.dataset.metainfo

    def after_val_epoch(self, runner, metrics=None):
        if self._loader is None:
            self._build(runner)
        model = runner.model
        with torch.no_grad():
            for k, data_batch in enumerate(self._loader):
                if k >= self.max_images:
                    break
                outputs = model.val_step(data_batch)
                self._evaluator.process(data_samples=outputs, data_batch=data_batch)
        scored = min(len(self._loader.dataset), self.max_images)
        result = self._evaluator.evaluate(scored)
        runner.visualizer.add_scalars({'train_mIoU': float(result['mIoU'])}, step=runner.iter)
        runner.logger.info(f'training-set mIoU (labels as written, {scored} images): '
                           f'{result["mIoU"]:.2f}')
