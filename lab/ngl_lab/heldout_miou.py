"""HeldOutMIoUHook: the mIoU on a second held-out split at every validation.

A tuned study chooses each loss's learning rate on the validation split (the
*selection* split) and reports the chosen runs on another one (the *report*
split), so that no number in its table was selected on the images that score
it. This hook scores that report split right after each validation, with the
validation's pipeline and mmseg's IoUMetric, and logs it as ``report_mIoU``.

Used by the study (``--report-split``); a run's config imports this module.
"""
import copy

from mmseg.registry import HOOKS

from .miou_hook import ExtraSplitMIoUHook


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
class HeldOutMIoUHook(ExtraSplitMIoUHook):
    """After each validation, score the model on a second held-out split.

    Args:
        overrides (dict): Fields of the validation dataset's config that make
            it the report split, e.g. ``dict(ann_file='ImageSets/Segmentation/test.txt')``.
        key (str): The scalar logged. Default: 'report_mIoU'.
    """

    def __init__(self, overrides, key='report_mIoU'):
        if not isinstance(overrides, dict) or not overrides:
            raise ValueError(f'HeldOutMIoUHook needs a non-empty dict of overrides, got '
                             f'{overrides!r}')
        super().__init__(key)
        self.overrides = dict(overrides)

    def dataset_config(self, runner):
        return report_dataset(runner.cfg.val_dataloader.dataset, self.overrides)

    def _build(self, runner):
        super()._build(runner)
        if len(self._loader.dataset) == 0:
            raise ValueError(f'the report split {self.overrides} holds no images')

    def log_line(self, images, miou):
        return f'report split ({images} images): mIoU {miou:.2f}'
