"""The upstream workarounds (``ngl_mmseg/compat.py``): weights-only checkpoint loading,
CPU distributed configs, test metrics from rank 0, each patch applied once, numbered alike."""
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer

import ngl_mmseg  # (registers the allowed globals)
from ngl_mmseg import compat
from ngl_mmseg.compat import setup_cpu_distributed


def test_history_buffer_loads_weights_only(tmp_path):
    buf = HistoryBuffer()
    for v in (1.0, 2.0, 4.0):
        buf.update(v)
    path = tmp_path / 'ckpt.pth'
    torch.save({'message_hub': {'log_scalars': {'train/loss': buf}}, 'x': torch.ones(2)}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(7 / 3)


def test_getattr_beyond_history_buffer_statistics_is_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, 'update'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(Exception, match='only HistoryBuffer statistics'):
        torch.load(path, weights_only=True)


class Custom:
    pass


def test_other_globals_stay_refused(tmp_path):
    path = tmp_path / 'custom.pth'
    torch.save({'x': Custom(), 'config': Config(dict(a=1))}, path)
    with pytest.raises(Exception, match='Unsupported global'):
        torch.load(path, weights_only=True)


def test_setup_cpu_distributed(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='pytorch', model=dict(
        backbone=dict(norm_cfg=dict(type='SyncBN')),
        decode_head=[dict(norm_cfg=dict(type='SyncBN'))]), env_cfg=dict(dist_cfg=dict(
            backend='nccl'))))
    import mmengine.dist.utils as dist_utils
    original = dist_utils._init_dist_pytorch
    try:
        setup_cpu_distributed(cfg)
        assert dist_utils._init_dist_pytorch is not original
    finally:
        dist_utils._init_dist_pytorch = original
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head[0].norm_cfg.type == 'BN'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.broadcast_buffers is True


def test_setup_cpu_distributed_is_a_noop_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(launcher='pytorch', model=dict(backbone=dict(norm_cfg=dict(type='SyncBN')))))
    setup_cpu_distributed(cfg)
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert 'model_wrapper_cfg' not in cfg and 'env_cfg' not in cfg


def test_only_rank_zero_dumps_the_test_metrics(tmp_path, monkeypatch):
    """Workaround 4: mmengine writes <log_dir>/<timestamp>.json on every rank at once."""
    import mmengine.dist
    from mmengine.hooks import LoggerHook

    assert getattr(LoggerHook.after_test_epoch, 'ngl_mmseg_patched', False)
    logged = []
    runner = type('R', (), {})()
    runner.log_dir = str(tmp_path)
    runner.test_dataloader = [0, 1]
    runner.logger = type('L', (), {'info': staticmethod(logged.append)})()
    runner.log_processor = type('P', (), {'get_log_after_epoch': staticmethod(
        lambda runner, n, mode, with_non_scalar: ({'mIoU': 1.0}, 'Iter(test) mIoU: 1.0'))})()
    hook = LoggerHook()
    hook.json_log_path = 'metrics.json'
    monkeypatch.setattr(mmengine.dist, 'is_main_process', lambda: False)
    hook.after_test_epoch(runner)
    assert logged == ['Iter(test) mIoU: 1.0'] and not (tmp_path / 'metrics.json').exists()
    monkeypatch.setattr(mmengine.dist, 'is_main_process', lambda: True)
    hook.after_test_epoch(runner)
    assert (tmp_path / 'metrics.json').read_text().strip() == '{"mIoU": 1.0}'


def test_each_patch_is_applied_once():
    """Running the patches again keeps the one wrapper of each (no wrapper around a wrapper)."""
    from mmengine.config import config as mmengine_config
    from mmengine.hooks import LoggerHook
    from mmseg.datasets.transforms import LoadAnnotations
    patched = [(LoadAnnotations, '_load_seg_map'), (mmengine_config, 'get_installed_path'),
               (LoggerHook, 'after_test_epoch')]
    before = [getattr(owner, name) for owner, name in patched]
    assert all(getattr(fn, compat.PATCH_MARK, False) for fn in before)
    compat.name_unreadable_label_maps()
    compat.register_config_scope()
    compat.dump_test_metrics_on_rank_zero()
    assert [getattr(owner, name) for owner, name in patched] == before


def test_patch_once_wraps_the_original_once():
    class Owner:
        @staticmethod
        def greet():
            return 'hello'

    def wrap(original):
        return lambda: original() + '!'
    compat.patch_once(Owner, 'greet', wrap)
    compat.patch_once(Owner, 'greet', wrap)
    assert Owner.greet() == 'hello!'


def _numbers(text):
    return [int(n) for n in re.findall(r'^ *(\d)\. ', text, flags=re.M)]


def test_workarounds_are_numbered_alike_in_compat_and_the_package_docstring():
    documented = _numbers(compat.__doc__)
    assert documented == list(range(1, len(documented) + 1)) and len(documented) >= 5
    function_docs = '\n'.join(fn.__doc__ or '' for fn in vars(compat).values()
                              if getattr(fn, '__module__', None) == compat.__name__)
    named = sorted(int(n) for n in re.findall(r'workaround (\d)\)', function_docs))
    assert named == documented  # each patching function names its number, once
    at_import = _numbers(ngl_mmseg.__doc__)
    assert at_import and at_import == documented[:len(at_import)]
