"""The configs a study trains: the user's config loaded as ngl-mmseg's tools load
it (``ngl_mmseg.launch.load_config``), its data root and schedule replaced, and
one config per run written into the run's folder (its losses, optimizer,
learning rate, seed, hooks and backbone)."""
import copy
import os
import os.path as osp

from .presets import apply_loss_preset, parse_loss_spec

# Optimizers the study can put under any config. 'config' keeps the config's own.
OPTIMIZERS = {
    # mmseg's schedule for its VOC / COCO-Stuff CNN configs.
    'sgd': dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005),
    # What the quickstarts use; the authors trained with Adam.
    'adamw': dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4),
}


def _replace_values(node, old, new):
    """Every string equal to ``old`` in a nested config becomes ``new``."""
    if isinstance(node, (dict, list)):
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if value == old:
                node[key] = new
            else:
                _replace_values(value, old, new)


def scale_schedule(cfg, iters):
    """``iters`` iterations, validated every quarter, or ``study_validations`` times
    where the config sets that (the budget configs: 8, for the curve's peak and its
    quarter-budget point); every scheduler's ``begin`` and ``end`` scaled by
    ``iters / max_iters`` (a warm-up stays the same share of the run and a PolyLR
    after it still begins where it ends)."""
    old = cfg.train_cfg.max_iters
    validations = cfg.get('study_validations', 4)
    if isinstance(validations, bool) or not isinstance(validations, int) or validations < 1:
        raise ValueError(f'study_validations must be a positive integer, not {validations!r}')
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = max(1, iters // validations)
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if sched.get('by_epoch', False):
            raise ValueError(f'{sched.get("type")} is scheduled by epoch: --iters rescales '
                             'iteration-based schedules only')
        begin = min(sched.get('begin', 0), old)
        end = min(sched.get('end', old), old)
        sched['begin'] = int(round(begin * iters / old))
        sched['end'] = max(sched['begin'] + 1, int(round(end * iters / old)))


def load_study_config(config, cfg_options=None, data_root=None, iters=None):
    """The config as the study trains it.

    Args:
        config (str): the config file.
        cfg_options (dict, optional): settings merged in (``--cfg-options``).
        data_root (str, optional): replaces the config's top-level ``data_root``
            in every dataloader.
        iters (int, optional): iterations of the run (:func:`scale_schedule`).

    Returns:
        mmengine.Config: loaded by ``ngl_mmseg.launch.load_config``, as the train tool does.
    """
    from ngl_mmseg.launch import load_config
    cfg = load_config(config, cfg_options=cfg_options)
    if data_root:
        old_root = cfg.get('data_root')
        if not old_root:
            raise ValueError(f'{config} has no top-level data_root to replace')
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            _replace_values(cfg[key], old_root, data_root)
        cfg.data_root = data_root
    if iters is not None:
        scale_schedule(cfg, iters)
    return cfg


def _add_import(cfg, module):
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    if module not in imports:
        cfg.custom_imports = dict(imports=imports + [module], allow_failed_imports=False)


def _add_hook(cfg, module, hook):
    _add_import(cfg, module)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [hook]


def write_run_config(config, losses, optimizer, seed, work_dir, cfg_options=None,
                     backbone=None, data_root=None, iters=None, train_miou=False, lr=None,
                     report_split=None):
    """Write the config of one run into its folder. Every run saves a resume point
    after each validation (``ResumePointHook``).

    Args:
        config (str): the study's config file.
        losses (list[dict]): the run's loss dicts (a variant's).
        optimizer (str): ``config`` (the config's own) or a key of ``OPTIMIZERS``.
        seed (int): the run's seed; mmengine's deterministic algorithms are asked for.
        work_dir (str): the run's folder.
        cfg_options, data_root, iters: as :func:`load_study_config`.
        backbone (str, optional): a checkpoint whose ``backbone.`` weights start the run.
        train_miou (bool): also score the training labels (``TrainSetMIoUHook``).
        lr (float, optional): replaces the optimizer's learning rate.
        report_split (dict, optional): the report split's dataset fields
            (``HeldOutMIoUHook``).

    Returns:
        str: the path of the config written.
    """
    cfg = load_study_config(config, cfg_options, data_root, iters)
    apply_loss_preset(cfg, losses)
    if train_miou:
        _add_hook(cfg, 'ngl_lab.train_miou', dict(type='TrainSetMIoUHook'))
    if report_split:
        _add_hook(cfg, 'ngl_lab.heldout_miou',
                  dict(type='HeldOutMIoUHook', overrides=dict(report_split)))
    # Its priority puts its resume point after the report split's scoring.
    _add_hook(cfg, 'ngl_lab.study_resume', dict(type='ResumePointHook'))
    if optimizer != 'config':
        cfg.optim_wrapper.optimizer = copy.deepcopy(OPTIMIZERS[optimizer])
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    # Same seed, same numbers: mmengine's deterministic algorithms (threads are
    # pinned by the study through the environment).
    cfg.randomness = dict(seed=seed, deterministic=True)
    if backbone:
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=backbone,
                                           prefix='backbone.')
    return _dump(cfg, work_dir)


def write_pretrain_config(config, work_dir, iters, data_root, cfg_options=None):
    """Write the config that pretrains the backbone: CE for ``iters`` on
    ``data_root``, validated once at the end, seed 0. Returns its path."""
    cfg = load_study_config(config, cfg_options, data_root, iters)
    apply_loss_preset(cfg, parse_loss_spec('ce')[1])
    cfg.train_cfg.val_interval = iters
    cfg.randomness = dict(seed=0, deterministic=True)
    return _dump(cfg, work_dir)


def _dump(cfg, work_dir):
    """Write ``work_dir/config.py`` for a run that keeps only its last
    checkpoint (the study needs the curve, and pretraining the end) and trains
    without three CPU costs that change no weight (``study_run_speedups``), and with the
    heads' upsampling as matrix products where the config asks for it
    (``study_matmul_resize = True``, ``study_matmul_resize``)."""
    _add_import(cfg, 'ngl_lab.study_run_speedups')
    matmul_resize = cfg.get('study_matmul_resize', False)
    if not isinstance(matmul_resize, bool):
        raise ValueError(f'study_matmul_resize is {matmul_resize!r}: give true or false')
    if matmul_resize:
        _add_import(cfg, 'ngl_lab.study_matmul_resize')
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=cfg.train_cfg.max_iters, max_keep_ckpts=1)
    cfg.work_dir = work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'config.py')
    cfg.dump(path)
    return path
