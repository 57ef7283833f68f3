"""NGLMonitorHook: its progress is the mean over the pixels actually summed (OHEM,
``avg_non_ignore=False``), its arguments are checked when it is built, and its warning names a
NaN loss and float16. (The warning itself, on a stuck run and not on a moving one:
``test_training_recipe.py``.)"""
import pytest
import torch
from helpers import FakeRunner, batch, head_with_loss
from mmseg.models.decode_heads import FCNHead

import ngl_mmseg  # noqa: F401
from ngl_mmseg import NGLLoss
from ngl_mmseg.hooks import NGLMonitorHook
from ngl_mmseg.losses.recipe import ngl_progress


@pytest.mark.parametrize('setting', ['ohem', 'avg_non_ignore=False'])
def test_monitor_progress_is_zero_at_chance_with_ohem_or_all_pixel_averaging(setting):
    feats, samples = batch(size=(32, 32))
    for s in samples:  # a quarter of the pixels ignored
        s.gt_sem_seg.data[:, :8] = 255
    loss_cfg = dict(type='NGLLoss', avg_non_ignore=setting != 'avg_non_ignore=False')
    sampler = dict(type='OHEMPixelSampler', min_kept=200) if setting == 'ohem' else None
    torch.manual_seed(0)
    head = FCNHead(in_channels=8, channels=8, num_convs=1, num_classes=6,
                   loss_decode=loss_cfg, sampler=sampler, norm_cfg=None)
    torch.nn.init.zeros_(head.conv_seg.weight)  # logits 0: every pixel at chance
    torch.nn.init.zeros_(head.conv_seg.bias)
    head.train()
    head.loss_by_feat(head.forward(feats), samples)
    loss = head.loss_decode
    assert abs(ngl_progress(float(loss.last_value), 6)) < 1e-4


@pytest.mark.parametrize('kwargs, message', [
    (dict(window=-5), 'window must be a positive integer'),
    (dict(window='20'), 'window must be a positive integer'),
    (dict(min_progress='0.05'), 'min_progress must be a number'),
    (dict(min_progress=float('nan')), 'min_progress must be a number'),
    (dict(check_iter=0), 'check_iter must be a positive integer'),
    (dict(check_iter=-3), 'check_iter must be a positive integer'),
    (dict(check_iter='100'), 'check_iter must be a positive integer'),
])
def test_monitor_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NGLMonitorHook(**kwargs)


def test_monitor_names_a_nan_loss_as_nan(message_hub):
    loss = NGLLoss(impl='torch')
    loss.last_num_classes = 21
    message = NGLMonitorHook.stuck_message(FakeRunner(head_with_loss(loss)), loss,
                                           float('nan'))
    assert 'NaN or inf' in message and 'smaller than cross entropy' not in message


def test_monitor_warning_names_float16_when_the_run_uses_it(message_hub):
    loss = NGLLoss(impl='torch')
    loss.last_num_classes = 171
    runner = FakeRunner(head_with_loss(loss))
    assert 'float16' not in NGLMonitorHook.stuck_message(runner, loss, 0.0)
    amp = type('AmpOptimWrapper', (), {'optimizer': runner.optim_wrapper.optimizer,
                                       'cast_dtype': None})
    runner.optim_wrapper = amp()
    message = NGLMonitorHook.stuck_message(runner, loss, 0.0)
    assert 'float16' in message and 'bfloat16' in message
    runner.optim_wrapper.cast_dtype = torch.bfloat16
    assert 'flushes to zero' not in NGLMonitorHook.stuck_message(runner, loss, 0.0)
