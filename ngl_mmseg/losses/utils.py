# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""What NGLLoss shares with mmseg's losses (and the lab's baseline losses): argument
and input checks, cross entropy with ignored pixels, and the reduction. The checks of
``ignore_index`` and of the labels' values are the ops' (``ngl_mmseg.ops.checks``),
reused here; class weights are loaded by ``class_weight.py`` (its names are
re-exported here for code that imports them from this module; the re-exports go in
0.6.0)."""
import math
import numbers
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmseg.models.losses.utils import weight_reduce_loss

from ..ops.checks import INT32, check_ignore_index, check_labels, checks_exactly, require
from .class_weight import (  # noqa: F401  (re-exported until 0.6.0, see above)
    MAX_CLASS_WEIGHT_FILE_BYTES,
    MAX_CLASS_WEIGHTS,
    REAL_KINDS,
    load_class_weight,
)

REDUCTIONS = ('none', 'mean', 'sum')
__all__ = ['INT32', 'MAX_CLASS_WEIGHTS', 'MAX_CLASS_WEIGHT_FILE_BYTES', 'REAL_KINDS',
           'REDUCTIONS', 'check_bool', 'check_ignore_index', 'check_inputs', 'check_real',
           'drop_ignored_logits', 'load_class_weight', 'mean_over_summed_pixels',
           'pixel_cross_entropy', 'reduce_pixel_loss']


def check_bool(name: str, value: bool) -> bool:
    """``value`` if it is a bool (numpy's included), else a ValueError: a string such as
    ``'False'`` would otherwise count as True."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f'{name} must be True or False, got {value!r}')


def check_real(name: str, value: float, low: float = -math.inf,
               high: float = math.inf) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]``, else a
    ValueError naming ``name`` and the value: bools, strings, NaN and infinities are
    refused whatever the bounds (a weight of inf or NaN turns the loss into NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or not low <= value <= high:
        if math.isinf(low) and math.isinf(high):
            expected = 'a finite number'
        elif math.isinf(high):
            expected = f'a finite number >= {low}'
        elif math.isinf(low):
            expected = f'a finite number <= {high}'
        else:
            expected = f'a number in [{low}, {high}]'
        raise ValueError(f'{name} must be {expected}, got {value!r}')
    return float(value)


def check_inputs(pred: torch.Tensor,
                 label: torch.Tensor,
                 weight: Optional[torch.Tensor],
                 class_weight: Optional[torch.Tensor],
                 reduction: str,
                 ignore_index: int,
                 class_weight_checked: bool = False) -> None:
    """Raise ValueError naming the first problem with the loss inputs.

    Shapes, dtypes and devices are checked on the host; the values of the
    labels (and of a ``class_weight`` tensor, unless ``class_weight_checked``:
    NGLLoss checks its own when it is built) by ``ops.checks``, which names them
    on CPU and on a GPU's first calls and asserts on the device after that,
    without waiting for it (see docs/usage.md).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
    check_ignore_index(ignore_index)
    if not torch.is_tensor(pred) or not pred.is_floating_point():
        raise ValueError('cls_score must be a floating-point tensor, got '
                         f'{getattr(pred, "dtype", type(pred))}')
    if pred.dim() < 2:
        raise ValueError('cls_score must be (N, C, ...) or (N, C), got shape '
                         f'{tuple(pred.shape)}')
    if not torch.is_tensor(label):
        raise ValueError(f'label must be a tensor, got {type(label)}')
    if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
        raise ValueError('label must hold integer class indices, got dtype '
                         f'{label.dtype} (floating-point or bool labels are not accepted)')
    expected = (pred.shape[0], ) + tuple(pred.shape[2:])
    if tuple(label.shape) != expected:
        raise ValueError(f'label shape {tuple(label.shape)} does not match cls_score shape '
                         f'{tuple(pred.shape)}: expected label shape {expected}')
    if label.device != pred.device:
        raise ValueError(f'label is on {label.device} but cls_score is on {pred.device}')
    num_classes = pred.shape[1]
    if num_classes == 1:
        raise ValueError('cls_score has a single channel, and the softmax over one class '
                         'is always 1: for binary segmentation set num_classes=2 '
                         '(out_channels=2) so that NGL sees two softmax channels')
    if weight is not None and tuple(weight.shape) != tuple(label.shape):
        raise ValueError(f'weight shape {tuple(weight.shape)} does not match label shape '
                         f'{tuple(label.shape)}')
    if class_weight is not None:
        if class_weight.dim() != 1 or class_weight.numel() != num_classes:
            raise ValueError(f'class_weight has {class_weight.numel()} entries but there are '
                             f'{num_classes} classes')
        if not class_weight_checked:
            exact = checks_exactly(class_weight)
            ok = torch.isfinite(class_weight).all() & (class_weight >= 0).all()
            shown = class_weight.tolist() if exact else 'a tensor with a NaN, inf or < 0'
            require(ok, f'class_weight must be finite and >= 0, got {shown}', exact=exact)
    check_labels(label, num_classes, ignore_index)


def drop_ignored_logits(logits: torch.Tensor, label: torch.Tensor,
                        ignore_index: int = 255) -> torch.Tensor:
    """``logits`` (N, C, ...) with the ignored pixels' logits set to 0, so that a NaN
    or inf there reaches neither a loss value nor (through 0 * NaN) its gradient."""
    valid = (label != ignore_index).unsqueeze(1)
    return torch.where(valid, logits, torch.zeros((), dtype=logits.dtype,
                                                  device=logits.device))


def pixel_cross_entropy(logits: torch.Tensor,
                        label: torch.Tensor,
                        ignore_index: int = 255,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross entropy per pixel in float32, 0 at ignored pixels, whose logits
    (even NaN) reach neither the value nor the gradient (:func:`drop_ignored_logits`).

    Args:
        logits (torch.Tensor): (N, C, ...) or (N, C); computed in float32.
        label (torch.Tensor): Integer class indices, shape of ``logits`` without dim 1.
        ignore_index (int): Label value of the pixels that contribute nothing.
            Default: 255.
        label_smoothing (float): ``F.cross_entropy``'s: the target is
            ``(1 - eps) * onehot + eps / C``. Default: 0.

    Returns:
        torch.Tensor: The loss per pixel, shape of ``label``.
    """
    return F.cross_entropy(drop_ignored_logits(logits.float(), label, ignore_index),
                           label.long(), reduction='none', ignore_index=ignore_index,
                           label_smoothing=label_smoothing)


def reduce_pixel_loss(loss: torch.Tensor,
                      label: torch.Tensor,
                      weight: Optional[torch.Tensor] = None,
                      class_weight: Optional[torch.Tensor] = None,
                      reduction: str = 'mean',
                      avg_factor: Optional[Union[int, float, torch.Tensor]] = None,
                      ignore_index: int = 255,
                      avg_non_ignore: bool = True) -> torch.Tensor:
    """Weight a per-pixel loss by class and pixel weights, then reduce it, as
    mmseg's losses do (``weight_reduce_loss``); ignored pixels weigh 0. Nothing
    is read on the host: with every pixel ignored the mean is 0 / (0 + eps) = 0,
    and its gradient 0."""
    valid = label != ignore_index
    if class_weight is not None:
        # A zero weight for ignore_index keeps ignored pixels out of the
        # indexing (mmseg's CrossEntropyLoss crashes on them there).
        padded = torch.cat([class_weight.to(loss), loss.new_zeros(1)])
        pixel_weight = padded[torch.where(valid, label, class_weight.numel())]
        loss = loss * pixel_weight
    if weight is not None:
        weight = weight.to(loss.dtype)
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        avg_factor = pixel_weight.sum() if class_weight is not None else valid.sum()
    return weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)


def mean_over_summed_pixels(loss: torch.Tensor,
                            label: torch.Tensor,
                            weight: Optional[torch.Tensor] = None,
                            ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean per-pixel loss over the pixels a reduction actually sums (not
    ignored, with a nonzero pixel weight: OHEM keeps only hard pixels), each
    counted by its weight, and that summed weight: what the monitor compares
    with NGL's reference values, whatever ``avg_non_ignore`` says.

    Returns two 0-d tensors, nothing read on the host: ``(mean, total)``; the
    mean is 0 when no pixel is summed (``total`` 0), which the reader checks.
    """
    with torch.no_grad():
        w = (label != ignore_index).to(loss.dtype)
        if weight is not None:
            w = w * weight.to(loss.dtype)
        total = w.sum()
        return (loss * w).sum() / total.clamp_min(torch.finfo(total.dtype).tiny), total
