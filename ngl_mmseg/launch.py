"""What ngl-mmseg's tools do to a config before handing it to mmengine's Runner."""
import os.path as osp

from .compat import allow_checkpoint_globals, setup_cpu_distributed
from .datasets.checks import check_dataset_paths, check_label_files


def check_config_path(config):
    """Exit with a message that says what to pass when ``config`` is not a config file
    (mmengine says "does not exist" of a folder, and of an ``ngl_mmseg::`` name)."""
    if '::' in config:
        return  # a scoped name (mmseg::..., ngl_mmseg::...): mmengine resolves it
    if osp.isdir(config):
        raise SystemExit(f'error: config {config!r} is a directory; name a config file in it '
                         '(e.g. configs/quickstart/<name>.py)')
    if not osp.isfile(config):
        raise SystemExit(f'error: config file {config!r} does not exist')


def load_config(path, launcher='none', cfg_options=None, work_dir=None):
    """The config at ``path`` as ngl-mmseg's tools start from it.

    Checked to be a config file (:func:`check_config_path`), loaded, ``launcher``
    set, ``cfg_options`` (``--cfg-options``) merged, and ``work_dir`` set in this
    priority: the argument (``--work-dir``), the config's own, then
    ``./work_dirs/<config file name without .py>``, as mmseg's tools do.

    Args:
        path (str): A config file, or a scoped name such as ``ngl_mmseg::ngl/<name>.py``.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'. Default: 'none'.
        cfg_options (dict, optional): Keys (dotted allowed) and values merged
            into the config. Default: None.
        work_dir (str, optional): The run's folder. Default: None (see above).

    Returns:
        mmengine.Config: The config.
    """
    from mmengine.config import Config
    check_config_path(path)
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


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


def _split_datasets(cfg, splits):
    """``(split, dataset config)`` of each split in ``splits`` whose dataloader
    ``cfg`` defines with a dataset."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader and loader.get('dataset'):
            yield split, loader['dataset']


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
    for split, dataset_cfg in _split_datasets(cfg, splits):
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
            dataset = DATASETS.build(dataset_cfg)
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
    for _, dataset_cfg in _split_datasets(cfg, splits):
        check_dataset_paths(dataset_cfg)
        if head and head.get('num_classes'):
            _insert_label_check(dataset_cfg, head['num_classes'],
                                head.get('ignore_index', 255))
    return cfg


def load_checkpoint_strictly(runner, checkpoint, config, tool, remedy=''):
    """Load ``checkpoint`` into the runner's model, refusing one whose weights
    are missing or do not fit: mmengine's default (``load_from``) only warns and
    then scores a half-initialised model. Raises SystemExit naming the keys,
    ``tool`` and ``config`` (``remedy``: how to score it anyway, if possible)."""
    try:
        runner.load_checkpoint(checkpoint, strict=True)
    except RuntimeError as exc:
        if 'state_dict' not in str(exc):
            raise
        raise SystemExit(f'{tool}: {checkpoint} does not fit the model of {config}:\n'
                         f'{exc}' + (f'\n{remedy}' if remedy else '')) from None


def checkpoint_load_error(path):
    """Why the checkpoint at ``path`` does not load (one line), or None when it loads
    (weights-only, with mmengine's checkpoint globals allowed: nothing in it runs)."""
    import torch
    allow_checkpoint_globals()
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong format, ...
        return f'{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""}'
    return None


def checkpoint_number(path):
    """The iteration or epoch in the name mmengine's CheckpointHook gives a
    checkpoint (``iter_<n>.pth``, ``epoch_<n>.pth``, also at the end of a best
    checkpoint's name), or None for any other file."""
    import re
    match = re.search(r'(?:iter|epoch)_(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else None


def _rank(number):
    return -1 if number is None else number  # a file without a number after every checkpoint


def pick_resume_checkpoint(work_dir, logger=None):
    """The checkpoint ``--resume`` should continue from, or None for mmengine's default.

    mmengine resumes from the file named in ``work_dir/last_checkpoint``; when
    a crash while saving left that file truncated, it fails with "checkpoint
    file is corrupted" and the run's progress looks lost. Here the newest
    checkpoint that loads is taken instead, with a warning naming the broken
    ones. Returns None when the recorded checkpoint loads (nothing to change).
    """
    import glob

    from mmengine.logging import print_log
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        last = f.read().strip()
    last_error = checkpoint_load_error(last) if last and osp.isfile(last) else 'missing'
    if last_error is None:
        return None

    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                        key=lambda path: _rank(checkpoint_number(path)), reverse=True)
    broken = [f'{last} ({last_error})']
    for path in candidates:
        if osp.abspath(path) == osp.abspath(last):
            continue
        error = checkpoint_load_error(path)
        if error is None:
            print_log(f'ngl_mmseg: the last checkpoint does not load: {"; ".join(broken)}; '
                      f'resuming from {path}, the newest one that does',
                      logger=logger or 'current', level=30)
            return path
        broken.append(f'{path} ({error})')
    raise RuntimeError(f'--resume: no checkpoint in {work_dir} loads: {"; ".join(broken)}')
