"""The upstream workarounds: weights-only checkpoint loading, CPU distributed configs."""
import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer

import ngl_mmseg  # noqa: F401  (registers the allowed globals)
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
    """Workaround 5: every rank used to write <log_dir>/<timestamp>.json at once."""
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
