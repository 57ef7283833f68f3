# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""Noise-robust baselines for the study: the losses a user with noisy labels
would try before NGL, per pixel, in mmseg's loss conventions.

Experiment code, not the plugin: a study run's config imports this module
(``custom_imports``), a training user never needs to. For softmax
probabilities ``p`` over ``C`` classes and target class ``t`` of a pixel:

- ``LabelSmoothingCELoss``: cross entropy against the smoothed target
  ``(1 - eps) * onehot + eps / C`` (``F.cross_entropy(label_smoothing=eps)``),
  eps = 0.1 (Szegedy et al., 2016);
- ``GCELoss``: generalized cross entropy ``(1 - p_t ** q) / q``, q = 0.7
  (Zhang & Sabuncu, NeurIPS 2018); q -> 0 is CE, q = 1 is MAE;
- ``SCELoss``: symmetric cross entropy ``a * CE + b * RCE`` with the reverse
  CE ``RCE = -sum_c p_c log y_c`` and ``log 0`` clipped to ``A = -4``, so
  ``RCE = -A * (1 - p_t)``; a = 0.1, b = 1.0, their CIFAR-10 defaults
  (Wang et al., ICCV 2019).

Every loss averages over the pixels that are not ``ignore_index`` with NGLLoss's
reduction (``ngl_mmseg.losses.utils.reduce_pixel_loss``, through mmseg's
``weight_reduce_loss``), and refuses a ``loss_weight`` that is negative, infinite or
NaN as NGLLoss does.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from ngl_mmseg.losses.utils import (
    REDUCTIONS,
    check_real,
    drop_ignored_logits,
    pixel_cross_entropy,
    reduce_pixel_loss,
)


def _check_labels(pred, label, ignore_index):
    """The mask of non-ignored pixels; labels outside [0, C) refused by value."""
    valid = label != ignore_index
    if pred.shape[1] < 2:
        raise ValueError(f'expected logits with C >= 2 classes in dim 1, got {tuple(pred.shape)}')
    bad = valid & ((label < 0) | (label >= pred.shape[1]))
    if bool(bad.any()):
        raise ValueError(f'labels {sorted(set(label[bad].tolist()))[:5]} are outside '
                         f'[0, {pred.shape[1]}) and not ignore_index={ignore_index}')
    return valid


def _target_prob(pred, label, ignore_index):
    """(p_t in float32, valid mask): p_t of ignored pixels is 1 (a zero loss)."""
    valid = _check_labels(pred, label, ignore_index)
    prob = F.softmax(drop_ignored_logits(pred.float(), label, ignore_index), dim=1)
    safe = torch.where(valid, label, torch.zeros_like(label)).long()
    p_t = prob.gather(1, safe.unsqueeze(1)).squeeze(1)
    return torch.where(valid, p_t, torch.ones_like(p_t)), valid


def gce_pixel_loss(pred, label, q=0.7, ignore_index=255):
    """``(1 - p_t ** q) / q`` per pixel, 0 at ignored pixels."""
    p_t, valid = _target_prob(pred, label, ignore_index)
    return (1.0 - p_t.clamp_min(1e-12).pow(q)) / q * valid


def rce_pixel_loss(pred, label, log_zero=-4.0, ignore_index=255):
    """Reverse CE ``-A * (1 - p_t)`` (``A = log_zero``) per pixel, 0 at ignored pixels."""
    p_t, valid = _target_prob(pred, label, ignore_index)
    return -log_zero * (1.0 - p_t) * valid


def ce_pixel_loss(pred, label, label_smoothing=0.0, ignore_index=255):
    """(Label-smoothed) cross entropy per pixel, 0 at ignored pixels: the plugin's
    ``pixel_cross_entropy`` (NGLLoss's CE warm-up), after the labels' check."""
    _check_labels(pred, label, ignore_index)
    return pixel_cross_entropy(pred, label, ignore_index, label_smoothing)


class _PixelLoss(nn.Module):
    """A per-pixel loss, averaged over the pixels that are not ignored
    (``reduce_pixel_loss``, NGLLoss's reduction)."""

    _name = 'loss_pixel'

    def __init__(self, loss_weight=1.0, reduction='mean', loss_name=None):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        # Checked as NGLLoss checks its own: a negative weight is gradient ascent, and an
        # infinite or NaN one makes the loss NaN.
        self.loss_weight = check_real('loss_weight', loss_weight, low=0.0)
        self.reduction = reduction
        self._loss_name = loss_name or self._name

    def pixel_loss(self, pred, label, ignore_index):
        raise NotImplementedError

    def forward(self, cls_score, label, weight=None, avg_factor=None, reduction_override=None,
                ignore_index=255, **kwargs):
        reduction = reduction_override or self.reduction
        loss = self.pixel_loss(cls_score, label, ignore_index)
        return self.loss_weight * reduce_pixel_loss(loss, label, weight, None, reduction,
                                                    avg_factor, ignore_index)

    @property
    def loss_name(self):
        return self._loss_name


@MODELS.register_module()
class LabelSmoothingCELoss(_PixelLoss):
    """Cross entropy with label smoothing, per pixel.

    Args:
        label_smoothing (float): eps of the smoothed target. Default: 0.1.
        loss_weight (float): Weight of the loss, finite and >= 0. Default: 1.0.
        reduction (str): 'none', 'mean' (over non-ignored pixels) or 'sum'.
        loss_name (str): Name in the logs. Default: 'loss_ls_ce'.
    """

    _name = 'loss_ls_ce'

    def __init__(self, label_smoothing=0.1, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing!r}')
        self.label_smoothing = float(label_smoothing)

    def pixel_loss(self, pred, label, ignore_index):
        return ce_pixel_loss(pred, label, self.label_smoothing, ignore_index)


@MODELS.register_module()
class GCELoss(_PixelLoss):
    """Generalized cross entropy ``(1 - p_t ** q) / q``, per pixel.

    Args:
        q (float): In (0, 1]. Default: 0.7 (the paper's).
        loss_weight (float): Weight of the loss, finite and >= 0. Default: 1.0.
        reduction (str): 'none', 'mean' (over non-ignored pixels) or 'sum'.
        loss_name (str): Name in the logs. Default: 'loss_gce'.
    """

    _name = 'loss_gce'

    def __init__(self, q=0.7, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < q <= 1.0:
            raise ValueError(f'q must be in (0, 1], got {q!r}')
        self.q = float(q)

    def pixel_loss(self, pred, label, ignore_index):
        return gce_pixel_loss(pred, label, self.q, ignore_index)


@MODELS.register_module()
class SCELoss(_PixelLoss):
    """Symmetric cross entropy ``ce_weight * CE + rce_weight * RCE``, per pixel.

    Args:
        ce_weight (float): a, finite and >= 0. Default: 0.1.
        rce_weight (float): b, finite and >= 0. Default: 1.0.
        log_zero (float): A, the value taken for log 0 in RCE; finite and
            negative. Default: -4.
        loss_weight (float): Weight of the loss, finite and >= 0. Default: 1.0.
        reduction (str): 'none', 'mean' (over non-ignored pixels) or 'sum'.
        loss_name (str): Name in the logs. Default: 'loss_sce'.
    """

    _name = 'loss_sce'

    def __init__(self, ce_weight=0.1, rce_weight=1.0, log_zero=-4.0, **kwargs):
        super().__init__(**kwargs)
        self.ce_weight = check_real('ce_weight', ce_weight, low=0.0)
        self.rce_weight = check_real('rce_weight', rce_weight, low=0.0)
        # RCE = -A (1 - p_t) pushes p_t up only for A < 0, and is a number only for a
        # finite A (-inf would make every pixel's loss infinite).
        if check_real('log_zero', log_zero) >= 0:
            raise ValueError(f'log_zero stands for log 0 and must be negative, got {log_zero!r}')
        self.log_zero = float(log_zero)

    def pixel_loss(self, pred, label, ignore_index):
        return (self.ce_weight * ce_pixel_loss(pred, label, 0.0, ignore_index)
                + self.rce_weight * rce_pixel_loss(pred, label, self.log_zero, ignore_index))
