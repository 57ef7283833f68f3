"""TrainSetMIoUHook: the mIoU on the training set, with its labels as written, at
every validation: with noisy labels, how far a model fits the noise (training
mIoU up) while it loses the truth (validation mIoU on clean labels down).

Used by the study (``--train-miou``); a run's config imports this module.
"""
import copy
import numbers

from mmseg.registry import HOOKS

from .miou_hook import ExtraSplitMIoUHook


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
class TrainSetMIoUHook(ExtraSplitMIoUHook):
    """After each validation, score the model on the training images and
    their (possibly noisy) labels with the validation pipeline and mmseg's
    IoUMetric; logged as ``train_mIoU`` beside the validation's ``mIoU``.

    Args:
        max_images (int): Score at most this many training images (the
            first ones). Default: 200.
    """

    def __init__(self, max_images=200):
        if isinstance(max_images, bool) or not isinstance(max_images, numbers.Integral) or \
                max_images < 1:
            raise ValueError('TrainSetMIoUHook: max_images must be an integer >= 1 (how many '
                             f'training images to score), got {max_images!r}')
        super().__init__('train_mIoU', int(max_images))

    def dataset_config(self, runner):
        cfg = runner.cfg
        dataset = _with_pipeline(cfg.train_dataloader.dataset,
                                 cfg.val_dataloader.dataset.pipeline)
        if 'datasets' not in dataset:  # ConcatDataset takes no `indices`
            dataset['indices'] = self.max_images
        return dataset

    def log_line(self, images, miou):
        return f'training-set mIoU (labels as written, {images} images): {miou:.2f}'
