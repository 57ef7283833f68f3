"""Workarounds for upstream issues, in one place. Each says what and why.

1. torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine's
   checkpoints hold a few non-tensor objects (the message hub's
   ``HistoryBuffer`` with numpy arrays, numpy scalars), so ``--resume``,
   ``tools/test.py`` and ``load_from`` fail with "Unsupported global".
   :func:`allow_checkpoint_globals` allow-lists exactly those classes;
   weights-only loading stays on, so a checkpoint still cannot run code.
   HistoryBuffer also pickles its statistics methods as
   ``getattr(HistoryBuffer, 'mean')``: instead of allowing ``getattr``, the
   name ``builtins.getattr`` is bound to a lookup that only returns
   HistoryBuffer's registered statistics methods.
2. mmseg's ``LoadAnnotations`` reports a truncated or garbage label PNG as
   "image file is truncated" / "cannot identify image file" without saying
   which file: :func:`name_unreadable_label_maps` re-raises with the path.
3. mmengine resolves ``_base_ = ['pkg::path']`` only for the OpenMMLab packages
   it lists (``MODULE2PACKAGE``), and finds their ``.mim/configs`` under the
   distribution's install location, which is wrong for an editable install.
   :func:`register_config_scope` adds ``ngl_mmseg::`` and points it at the
   configs shipped in this package (``ngl_mmseg/.mim/configs``).
4. mmengine's ``LoggerHook.after_test_epoch`` dumps the test metrics to
   ``<log_dir>/<timestamp>.json`` on every rank, and the ranks share that path:
   with ``dist_test.sh`` two processes write one file at once and it can end up
   corrupt (``{...}}``). :func:`dump_test_metrics_on_rank_zero` lets only rank 0
   write it; every rank still logs the metrics line.
5. mmengine's pytorch launcher calls ``torch.cuda.set_device`` and its Runner
   wraps DDP with ``device_ids=[LOCAL_RANK]``, and SyncBN needs CUDA: none of
   that works without a GPU. :func:`setup_cpu_distributed` makes a config run
   distributed on CPUs with gloo (the same code path users run with nccl);
   it is applied only when CUDA is unavailable.

``import ngl_mmseg`` applies 1 to 4 (process-wide, each once: see
:func:`patch_once`); ngl-mmseg's train and test tools apply 5 to their config
(``launch.prepare_config``).
"""
import os.path as osp
import pickle

import numpy as np
import torch


def _history_buffer_statistic(owner, name):
    """The only ``getattr`` a checkpoint may call: HistoryBuffer's statistics."""
    from mmengine.logging.history_buffer import HistoryBuffer
    # min/max/current/mean are registered in __init__, so they may not be in
    # the class-level registry yet when a checkpoint is loaded.
    allowed = {'min', 'max', 'current', 'mean'} | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({owner!r}, {name!r}); only HistoryBuffer statistics '
        'methods are allowed under weights-only loading')


def _checkpoint_globals():
    """What ``torch.serialization.get_unsafe_globals_in_checkpoint`` lists for
    a checkpoint of mmseg's Runner (tested on real ones in tests/plugin/test_e2e.py),
    plus the classes of the numpy dtypes it builds (numpy >= 1.25 builds a
    dtype as an instance of e.g. ``numpy.dtypes.Float64DType``, which that
    listing does not show)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = (getattr(np, '_core', None) or np.core).multiarray  # numpy 2 / 1
    dtypes = getattr(np, 'dtypes', None)
    dtype_classes = [getattr(dtypes, name) for name in (
        'Float64DType', 'Float32DType', 'Int64DType', 'Int32DType', 'BoolDType')
        if hasattr(dtypes, name)]
    return [
        HistoryBuffer,
        (_history_buffer_statistic, 'builtins.getattr'),
        multiarray._reconstruct,
        multiarray.scalar,
        np.ndarray,
        np.dtype,
    ] + dtype_classes


def allow_checkpoint_globals():
    """Allow-list the globals of mmengine checkpoints for weights-only loading (workaround 1)."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no weights-only default to work around
        add(_checkpoint_globals())


PATCH_MARK = 'ngl_mmseg_patched'


def patch_once(owner, name, wrap):
    """Replace ``owner.<name>`` by ``wrap(original)``, unless it is already ours.

    The replacement carries ``PATCH_MARK``, so running a patch again
    (``importlib.reload(ngl_mmseg)``, a test that calls it) keeps one wrapper
    instead of stacking another around it.

    Args:
        owner (type | module): What holds the attribute.
        name (str): The attribute's name.
        wrap (Callable): Takes the original and returns its replacement.
    """
    original = getattr(owner, name)
    if getattr(original, PATCH_MARK, False):
        return
    replacement = wrap(original)
    setattr(replacement, PATCH_MARK, True)
    setattr(owner, name, replacement)


def name_unreadable_label_maps():
    """Make mmseg's ``LoadAnnotations`` name the label file it cannot decode (workaround 2)."""
    from mmseg.datasets.transforms import LoadAnnotations

    def wrap(original):
        def _load_seg_map(self, results):
            try:
                return original(self, results)
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                # AttributeError/TypeError: cv2 returns None for undecodable bytes.
                path = results.get('seg_map_path')
                if path is None or str(path) in str(exc):
                    raise
                raise ValueError(f'label map {path} cannot be read ({type(exc).__name__}: '
                                 f'{exc})') from exc
        return _load_seg_map

    patch_once(LoadAnnotations, '_load_seg_map', wrap)


SHIPPED_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')


def register_config_scope():
    """Let configs inherit ours as ``_base_ = ['ngl_mmseg::ngl/<name>.py']`` (workaround 3).

    Works wherever ``ngl_mmseg`` is imported before the config is read (its
    tools, ``python -m ngl_mmseg.cli.train``, any script that imports it).
    """
    from mmengine.config import config as mmengine_config
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault('ngl_mmseg', 'ngl-mmseg')

    def wrap(original):
        def get_installed_path(package):
            if package == 'ngl-mmseg':
                return osp.dirname(SHIPPED_DIR)
            return original(package)
        return get_installed_path

    patch_once(mmengine_config, 'get_installed_path', wrap)


def dump_test_metrics_on_rank_zero():
    """Only rank 0 writes the test metrics' JSON (workaround 4)."""
    from mmengine import dist
    from mmengine.hooks import LoggerHook

    def wrap(original):
        def after_test_epoch(self, runner, metrics=None):
            if dist.is_main_process():
                return original(self, runner, metrics)
            _, log_str = runner.log_processor.get_log_after_epoch(
                runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
            runner.logger.info(log_str)
        return after_test_epoch

    patch_once(LoggerHook, 'after_test_epoch', wrap)


def _init_dist_pytorch_cpu(backend, init_backend='torch', **kwargs):
    """mmengine's ``_init_dist_pytorch`` without ``torch.cuda.set_device``."""
    import torch.distributed as torch_dist
    if init_backend != 'torch':
        raise ValueError(f'CPU distributed runs support init_backend="torch", got {init_backend}')
    torch_dist.init_process_group(backend=backend, **kwargs)


def sync_bn_to_bn(node):
    """SyncBN/MMSyncBN -> BN everywhere in a (model) config, in place."""
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            sync_bn_to_bn(value)


def setup_cpu_distributed(cfg):
    """Make ``cfg`` train/test distributed on CPU processes (gloo; workaround 5).

    No-op when CUDA is available: GPU runs keep mmseg's behaviour exactly.

    Args:
        cfg (mmengine.Config): The config, edited in place.
    """
    if torch.cuda.is_available() or cfg.get('launcher', 'none') == 'none':
        return
    import mmengine.dist.utils as dist_utils
    dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    sync_bn_to_bn(cfg.model)
    cfg.sync_bn = None
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    # BN replaces SyncBN here, so running statistics would drift apart per
    # rank; broadcasting rank 0's buffers keeps them identical, as SyncBN does,
    # and the checkpoint then holds the statistics that validation used.
    wrapper.setdefault('broadcast_buffers', True)
    wrapper['device_ids'] = None  # DDP on CPU modules takes no device ids
    cfg.model_wrapper_cfg = wrapper
