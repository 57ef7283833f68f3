# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""Next Generation Loss (NGL) for semantic segmentation.

Akhmedova & Körber, "Next Generation Loss Function for Image Classification",
2024. For probabilities ``p`` (softmax over classes) and one-hot target ``y``,
per pixel the mean over the C classes of::

    exp(alpha - p * (1 + y)) - cos(cos(sin(p))),   alpha = 2.4092
"""
import io
import pickle

import numpy as np
import torch
import torch.nn as nn

from mmseg.models.losses.utils import weight_reduce_loss
from mmseg.registry import MODELS

from ..ops import ALPHA, IMPLS, ngl_pixel_loss

REDUCTIONS = ('none', 'mean', 'sum')


SIGMOID_ERROR = (
    'NGLLoss(use_sigmoid=True) is refused: with a per-class sigmoid every NGL term '
    'exp(alpha - p) - cos(cos(sin p)) of a negative class decreases in p, so the loss is '
    'minimised by p = 1 for every class and the model learns to predict every class '
    'everywhere. For binary segmentation use num_classes=2 (two softmax channels, '
    'out_channels=2); for the authors\' TensorFlow variant (a sigmoid on the softmax '
    'probabilities) use scaling=True.')


def _check_inputs(pred, label, weight, class_weight, reduction, ignore_index):
    """Raise ValueError naming the first problem with the loss inputs."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
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
        if not bool(torch.isfinite(class_weight).all()) or bool((class_weight < 0).any()):
            raise ValueError(f'class_weight must be finite and >= 0, got '
                             f'{class_weight.tolist()}')
    # Compared as int64: in a narrow dtype 255 would wrap (int8: -1) and slip through.
    label = label.long()
    bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
    if bool(bad.any()):
        values = torch.unique(label[bad]).tolist()
        shown = values[:10] + (['...'] if len(values) > 10 else [])
        raise ValueError(f'label holds values {shown} outside [0, {num_classes}) that are not '
                         f'ignore_index={ignore_index}')


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain lists/tuples of numbers and numpy arrays, nothing else:
    mmseg's ``get_class_weight`` unpickles any ``.pkl`` and so runs its code."""
    ALLOWED = {(module, name)
               for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
               for name in ('_reconstruct', 'scalar')} | {('numpy', 'ndarray'),
                                                          ('numpy', 'dtype')}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'{module}.{name} is not allowed in a class_weight file '
                                     '(only lists of numbers and numpy arrays are loaded)')


def load_class_weight(class_weight):
    """A list of floats from a list, or from a ``.npy``/``.pkl`` file, without
    running code from the file; None stays None."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        path = class_weight
        try:
            if path.endswith('.npy'):
                class_weight = np.load(path, allow_pickle=False)
            elif path.endswith('.pkl'):
                with open(path, 'rb') as f:
                    class_weight = _ArrayUnpickler(io.BytesIO(f.read())).load()
            else:
                raise ValueError(f'class_weight file {path!r} must be a .npy or .pkl file')
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f'cannot load class_weight from {path!r}: {exc}') from None
    try:
        weights = [float(w) for w in np.asarray(class_weight, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        raise ValueError('class_weight must be a list of numbers or a path to a '
                         f'.npy/.pkl file of them, got {class_weight!r}') from None
    return weights


def ngl_loss(pred,
             label,
             weight=None,
             class_weight=None,
             reduction='mean',
             avg_factor=None,
             ignore_index=255,
             avg_non_ignore=True,
             alpha=ALPHA,
             scaling=False,
             impl='auto',
             use_sigmoid=False):
    """Next Generation Loss, per pixel, then reduced.

    Args:
        pred (torch.Tensor): The prediction (logits), shape (N, C, ...) or
            (N, C) with C >= 2; float32, float16 or bfloat16 (math runs in
            float32) or float64.
        label (torch.Tensor): The learning label of the prediction, shape of
            ``pred`` without dim 1, integer class indices.
        weight (torch.Tensor, optional): Per-pixel weight of the loss, shape
            of ``label``. Default: None.
        class_weight (torch.Tensor, optional): Weight of each class; a pixel
            weighs ``class_weight[its label]``. Default: None.
        reduction (str, optional): 'none' (per-pixel loss), 'mean' or 'sum'.
            Default: 'mean'.
        avg_factor (int | float | torch.Tensor, optional): Divisor of the sum
            for 'mean'. Default: None (see ``avg_non_ignore``).
        ignore_index (int): Label value that contributes nothing. Default: 255.
        avg_non_ignore (bool): With 'mean' and no ``avg_factor``, divide by
            the number of non-ignored pixels (by their summed class weights
            when ``class_weight`` is set) instead of by all pixels.
            Default: True.
        alpha (float): The constant in ``exp(alpha - p * (1 + y))``.
            Default: 2.4092.
        scaling (bool): Apply the formula to ``sigmoid(softmax(pred))``
            instead of ``softmax(pred)``: the authors' TensorFlow
            ``NGL(scaling=True)`` on a softmax output layer. Default: False.
        impl (str): Implementation, one of 'auto', 'triton', 'compile',
            'torch', 'reference'. Default: 'auto'.
        use_sigmoid (bool): Only False is accepted (a per-class sigmoid makes
            NGL degenerate; see ``SIGMOID_ERROR``). Default: False.

    Returns:
        torch.Tensor: The loss, float32 (float64 for float64 ``pred``): sums
        of many pixels would overflow float16.
    """
    if use_sigmoid:
        raise ValueError(SIGMOID_ERROR)
    if class_weight is not None and not torch.is_tensor(class_weight):
        class_weight = torch.as_tensor(class_weight, dtype=torch.float32)
    _check_inputs(pred, label, weight, class_weight, reduction, ignore_index)
    label = label.long()
    loss = ngl_pixel_loss(pred, label, alpha=alpha, scaling=scaling,
                          ignore_index=ignore_index, impl=impl)
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


@MODELS.register_module()
class NGLLoss(nn.Module):
    """Next Generation Loss (NGL).

    Per pixel, the mean over classes of
    ``exp(alpha - p * (1 + y)) - cos(cos(sin(p)))`` with ``p`` the softmax of
    the logits and ``y`` the one-hot label; then the mean over the
    non-ignored pixels. Found by genetic programming in Akhmedova & Körber,
    "Next Generation Loss Function for Image Classification", 2024.

    Args:
        use_sigmoid (bool): Accepted only as False, for configs written for
            CrossEntropyLoss: a per-class sigmoid makes NGL minimised by p = 1
            for every class. Binary segmentation: two softmax channels
            (``num_classes=2``). Default: False.
        scaling (bool): The authors' TensorFlow ``NGL(scaling=True)``: the
            formula on ``sigmoid(softmax(logits))``, which their own training
            used (softmax output layer, sigmoid scaling, Adam). Default: False.
        alpha (float): The constant of the formula. Default: 2.4092.
        reduction (str, optional): 'none', 'mean' or 'sum'. Default: 'mean'.
        class_weight (list[float] | str, optional): Weight of each class, or
            a path to a .npy/.pkl file of them. Default: None.
        loss_weight (float): Weight of the loss. Default: 1.0.
        loss_name (str): Name of the loss item; must start with ``loss_`` to
            be backpropagated. Default: 'loss_ngl'.
        avg_non_ignore (bool): Average over non-ignored pixels only (True) or
            over all pixels, as mmseg's CrossEntropyLoss does by default
            (False). Default: True.
        impl (str): Implementation: 'auto' (fastest available), 'triton',
            'compile', 'torch' or 'reference'. Default: 'auto'.
    """

    def __init__(self,
                 use_sigmoid=False,
                 scaling=False,
                 alpha=ALPHA,
                 reduction='mean',
                 class_weight=None,
                 loss_weight=1.0,
                 loss_name='loss_ngl',
                 avg_non_ignore=True,
                 impl='auto'):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
        if impl not in IMPLS:
            raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
        if use_sigmoid:
            raise ValueError(SIGMOID_ERROR)
        self.scaling = bool(scaling)
        self.alpha = float(alpha)
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.class_weight = load_class_weight(class_weight)
        self.avg_non_ignore = avg_non_ignore
        self.impl = impl
        self._loss_name = loss_name

    def extra_repr(self):
        return (f'scaling={self.scaling}, alpha={self.alpha}, '
                f'reduction={self.reduction!r}, avg_non_ignore={self.avg_non_ignore}, '
                f'impl={self.impl!r}')

    def forward(self,
                cls_score,
                label,
                weight=None,
                avg_factor=None,
                reduction_override=None,
                ignore_index=255,
                **kwargs):
        """Forward function.

        Args:
            cls_score (torch.Tensor): Logits, (N, C, H, W) or (N, C).
            label (torch.Tensor): Labels, (N, H, W) or (N, ).
            weight (torch.Tensor, optional): Per-pixel weight (e.g. from a
                sampler), shape of ``label``. Default: None.
            avg_factor (int, optional): Divisor for 'mean'. Default: None.
            reduction_override (str, optional): Overrides ``self.reduction``.
            ignore_index (int): Label value to ignore. Default: 255.

        Returns:
            torch.Tensor: The weighted loss.
        """
        reduction = reduction_override if reduction_override else self.reduction
        class_weight = None
        if self.class_weight is not None:
            class_weight = cls_score.new_tensor(self.class_weight, dtype=torch.float32)
        return self.loss_weight * ngl_loss(
            cls_score,
            label,
            weight,
            class_weight=class_weight,
            reduction=reduction,
            avg_factor=avg_factor,
            ignore_index=ignore_index,
            avg_non_ignore=self.avg_non_ignore,
            alpha=self.alpha,
            scaling=self.scaling,
            impl=self.impl)

    @property
    def loss_name(self):
        """Loss name, used as the key of this loss in the log.

        Returns:
            str: The name of this loss item.
        """
        return self._loss_name
