"""What ngl-mmseg's tools do to a config before handing it to mmengine's Runner."""
from .compat import setup_cpu_distributed
from .datasets.checks import check_dataset_paths, check_label_files


def _insert_label_check(dataset_cfg, num_classes, ignore_index):
    for child in dataset_cfg.get('datasets', []) or []:
        _insert_label_check(child, num_classes, ignore_index)
    if dataset_cfg.get('dataset') is not None:
        _insert_label_check(dataset_cfg['dataset'], num_classes, ignore_index)
    pipeline = dataset_cfg.get('pipeline') or []
    types = [step.get('type') for step in pipeline]
    if 'LoadAnnotations' in types and 'CheckSegLabels' not in types:
        pipeline.insert(types.index('LoadAnnotations') + 1,
                        dict(type='CheckSegLabels', num_classes=num_classes,
                             ignore_index=ignore_index))


def _decode_head(cfg):
    head = cfg.get('model', {}).get('decode_head')
    return head[0] if isinstance(head, (list, tuple)) else head


def check_labels_before_training(cfg, splits, logger=None, max_files=500):
    """Read a sample of each split's label maps before the first iteration,
    so broken validation labels do not surface after hours of training."""
    from mmengine.logging import print_log
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    head = _decode_head(cfg)
    if not head or not head.get('num_classes'):
        return
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
            dataset = DATASETS.build(loader['dataset'])
        checked, total = check_label_files(dataset, head['num_classes'],
                                           head.get('ignore_index', 255), max_files)
        print_log(f'ngl_mmseg: checked {checked} of {total} {split} label maps '
                  f'(values in [0, {head["num_classes"]}) or ignore_index, files readable)',
                  logger=logger or 'current')


def prepare_config(cfg, splits):
    """Set up ``cfg`` for a run over the dataloaders named in ``splits``.

    - distributed runs on machines without CUDA use gloo and plain BN
      (:func:`ngl_mmseg.compat.setup_cpu_distributed`);
    - each dataset's paths are checked, and its label maps are checked for
      values outside the classes (``CheckSegLabels`` after
      ``LoadAnnotations``), so broken data fails early, naming the file.

    Args:
        cfg (mmengine.Config): The config, edited in place.
        splits (Sequence[str]): Names among 'train', 'val', 'test'.
    """
    setup_cpu_distributed(cfg)
    head = _decode_head(cfg)
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        check_dataset_paths(loader['dataset'])
        if head and head.get('num_classes'):
            _insert_label_check(loader['dataset'], head['num_classes'],
                                head.get('ignore_index', 255))
    return cfg
