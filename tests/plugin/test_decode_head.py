"""NGLLoss inside a real mmseg decode head: alone, with OHEM, beside CrossEntropyLoss."""
import pytest
import torch
import torch.nn.functional as F
from helpers import batch
from mmseg.models.decode_heads import FCNHead
from reference import ref_loss

import ngl_mmseg  # noqa: F401

NUM_CLASSES = 6


def head(loss_decode, sampler=None):
    torch.manual_seed(0)
    return FCNHead(in_channels=8, channels=8, num_convs=1, num_classes=NUM_CLASSES,
                   loss_decode=loss_decode, sampler=sampler, norm_cfg=None)


def labels_of(samples):
    return torch.stack([s.gt_sem_seg.data for s in samples]).squeeze(1)


def test_fcn_head_with_ngl_alone():
    feats, samples = batch()
    h = head(dict(type='NGLLoss', loss_weight=1.0))
    logits = h.forward(feats)
    losses = h.loss_by_feat(logits, samples)
    assert set(losses) == {'loss_ngl', 'acc_seg'}
    expected = ref_loss(logits.detach(), labels_of(samples))
    assert torch.allclose(losses['loss_ngl'].double(), expected, rtol=1e-5)
    losses['loss_ngl'].backward()
    assert h.conv_seg.weight.grad is not None and h.conv_seg.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('thresh', [None, 0.17])
def test_fcn_head_with_ohem_sampler(thresh):
    feats, samples = batch()
    h = head(dict(type='NGLLoss'), sampler=dict(type='OHEMPixelSampler', thresh=thresh,
                                                min_kept=100))
    logits = h.forward(feats)
    losses = h.loss_by_feat(logits, samples)
    label = labels_of(samples)
    seg_weight = h.sampler.sample(logits.detach(), label.unsqueeze(1))
    assert 0 < int((seg_weight > 0).sum()) < int((label != 255).sum())
    expected = ref_loss(logits.detach(), label, weight=seg_weight)
    assert torch.allclose(losses['loss_ngl'].double(), expected, rtol=1e-5)
    losses['loss_ngl'].backward()


def test_fcn_head_with_ngl_beside_cross_entropy():
    feats, samples = batch()
    h = head([dict(type='NGLLoss', loss_weight=1.0),
              dict(type='CrossEntropyLoss', loss_weight=0.5, loss_name='loss_ce')])
    logits = h.forward(feats)
    losses = h.loss_by_feat(logits, samples)
    assert {'loss_ngl', 'loss_ce'} <= set(losses)
    label = labels_of(samples)
    assert torch.allclose(losses['loss_ngl'].double(), ref_loss(logits.detach(), label),
                          rtol=1e-5)
    ce = F.cross_entropy(logits.detach(), label, ignore_index=255, reduction='none')
    # mmseg's CE defaults to avg_non_ignore=False: mean over all pixels
    assert torch.allclose(losses['loss_ce'], 0.5 * ce.mean(), rtol=1e-5)
    (losses['loss_ngl'] + losses['loss_ce']).backward()
