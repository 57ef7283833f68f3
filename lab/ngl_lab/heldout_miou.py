"""HeldOutMIoUHook: the mIoU on a second held-out split at every validation.

A tuned study chooses each loss's learning rate on the validation split (the
*selection* split) and reports the chosen runs on another one (the *report*
split), so that no number in its table was selected on the images that score
it. This hook scores that report split right after each validation, with the
validation's pipeline and mmseg's IoUMetric, and logs it as ``report_mIoU``.

Used by the study (``--report-split``); a run's config imports this module.
"""
import copy

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def _set_dotted(cfg, key, value):
    node = cfg
    parts = key.split('.')
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ValueError(f'report split: {key!r} names no field of the validation dataset')
        node = node[part]
    node[parts[-1]] = value


def report_dataset(val_dataset, overrides):
    """The validation dataset's config with ``overrides`` (dotted keys allowed,
    e.g. ``data_prefix.img_path``); refused if it is the validation split itself."""
    if not overrides:
        raise ValueError('a report split needs at least one override of the validation '
                         'dataset (e.g. ann_file=ImageSets/Segmentation/test.txt)')
    cfg = copy.deepcopy(dict(val_dataset))
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f'report split: bad field name {key!r}')
        _set_dotted(cfg, key, value)
    if cfg == dict(val_dataset):
        raise ValueError(f'the report split {overrides} is the validation split itself: '
                         'a study must not report on the split it selects on')
    return cfg


@HOOKS.register_module()
class HeldOutMIoUHook(Hook):
    """After each validation, score the model on a second held-out split.

    Args:
        overrides (dict): Fields of the validation dataset's config that make
            it the report split, e.g. ``dict(ann_file='ImageSets/Segmentation/test.txt')``.
        key (str): The scalar logged. Default: 'report_mIoU'.
    """

    priority = 'LOW'

    def __init__(self, overrides, key='report_mIoU'):
        if not isinstance(overrides, dict) or not overrides:
            raise ValueError(f'HeldOutMIoUHook needs a non-empty dict of overrides, got '
                             f'{overrides!r}')
        self.overrides = dict(overrides)
        self.key = key
        self._loader = None

    def _build(self, runner):
        dataset = report_dataset(runner.cfg.val_dataloader.dataset, self.overrides)
        loader = dict(batch_size=1, num_workers=0, dataset=dataset,
                      sampler=dict(type='DefaultSampler', shuffle=False))
        self._loader = runner.build_dataloader(loader, seed=0, diff_rank_seed=False)
        if len(self._loader.dataset) == 0:
            raise ValueError(f'the report split {self.overrides} holds no images')
        self._evaluator = runner.build_evaluator(dict(type='IoUMetric', iou_metrics=['mIoU']))
        self._evaluator.dataset_meta = self._loader.dataset.metainfo

    def after_val_epoch(self, runner, metrics=None):
        if self._loader is None:
            self._build(runner)
        with torch.no_grad():
            for data_batch in self._loader:
                outputs = runner.model.val_step(data_batch)
                self._evaluator.process(data_samples=outputs, data_batch=data_batch)
        result = self._evaluator.evaluate(len(self._loader.dataset))
        runner.visualizer.add_scalars({self.key: float(result['mIoU'])}, step=runner.iter)
        runner.logger.info(f'report split ({len(self._loader.dataset)} images): '
                           f'mIoU {result["mIoU"]:.2f}')
