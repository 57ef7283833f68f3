"""What ngl-mmseg's tools do to a config before handing it to mmengine's Runner."""
from .compat import setup_cpu_distributed
from .datasets.checks import check_dataset_paths


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
