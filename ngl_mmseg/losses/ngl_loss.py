# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""Next Generation Loss (NGL) for semantic segmentation.

Akhmedova & Körber, "Next Generation Loss Function for Image Classification",
2024. For probabilities ``p`` (softmax over classes) and one-hot target ``y``,
per pixel the mean over the C classes of::

    exp(alpha - p * (1 + y)) - cos(cos(sin(p))),   alpha = 2.4092
"""
import io
import pickle
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmseg.models.losses.utils import weight_reduce_loss
from mmseg.registry import MODELS

from ..ops import ALPHA, IMPLS, ngl_pixel_loss

REDUCTIONS = ('none', 'mean', 'sum')


def _formula_terms(q, alpha):
    """f(q) = exp(a - q) - cos(cos(sin q)) (a non-target class) and f_t(q) =
    exp(a - 2q) - cos(cos(sin q)) (the target), elementwise, float64 numpy."""
    h = np.cos(np.cos(np.sin(q)))
    return np.exp(alpha - q) - h, np.exp(alpha - 2 * q) - h


@lru_cache(maxsize=None)
def ce_matched_weight(num_classes, alpha=ALPHA, scaling=False):
    """The loss weight that gives NGL cross entropy's gradient at the start.

    With near-uniform logits (a fresh head) ``p = 1/C`` and the softmax
    Jacobian gives ``dL/dz_t = (C - 1) (h_t - h_c) / C^3`` for NGL, where
    ``h = dL/dp`` of the target and of another class: ``h_t - h_c =
    q' (e^(a - q) - 2 e^(a - 2q))`` at ``q = p`` (``q' = 1``) or, with
    ``scaling``, ``q = sigmoid(p)`` (``q' = q (1 - q)``); the cos terms cancel.
    CE's is ``-(C - 1) / C``, so the weight is ``C^2 / |h_t - h_c|``: about
    ``C^2 / e^a`` (40 at 21 classes, 2630 at 171). Under SGD this weight is
    the difference between NGL training and not (see the README).
    """
    p = 1.0 / num_classes
    q = 1.0 / (1.0 + np.exp(-p)) if scaling else p
    dq = q * (1 - q) if scaling else 1.0
    diff = dq * (np.exp(alpha - q) - 2 * np.exp(alpha - 2 * q))
    return float(num_classes ** 2 / abs(diff))


@lru_cache(maxsize=None)  # NGLMonitorHook asks every iteration; a 1e5-point grid each time
def ngl_reference_values(num_classes, alpha=ALPHA, scaling=False):
    """Per-pixel NGL at chance and at its minimum, for reading training progress.

    Returns:
        tuple[float, float]: ``(at_chance, minimum)``: the loss of a uniform
        softmax (what a fresh head predicts) and the smallest value the loss
        can take (the target at ``p* ~ 0.35``, every other class equal: the
        minimiser is soft, see the README).
    """
    c = num_classes

    def pixel(pt):
        pt = np.asarray(pt, dtype=np.float64)
        po = (1 - pt) / (c - 1)
        qt, qo = (1 / (1 + np.exp(-pt)), 1 / (1 + np.exp(-po))) if scaling else (pt, po)
        return (_formula_terms(qt, alpha)[1] + (c - 1) * _formula_terms(qo, alpha)[0]) / c

    grid = np.linspace(0, 1, 100001)  # the loss is smooth in p_t: a grid is exact to 1e-9
    return float(pixel(1.0 / c)), float(pixel(grid).min())


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
    return reduce_pixel_loss(loss, label, weight, class_weight, reduction, avg_factor,
                             ignore_index, avg_non_ignore)


def reduce_pixel_loss(loss, label, weight=None, class_weight=None, reduction='mean',
                      avg_factor=None, ignore_index=255, avg_non_ignore=True):
    """Weight a per-pixel loss by class and pixel weights, then reduce it, as
    mmseg's losses do (``weight_reduce_loss``); ignored pixels weigh 0."""
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
        auto_weight (bool): Multiply ``loss_weight`` by
            ``ce_matched_weight(C)`` (about ``C^2 / e^alpha``: 46 at 21
            classes, 2675 at 171), so that a fresh head gets cross entropy's
            gradient. NGL's own gradient is that much smaller, which under SGD
            is a learning-rate cut of that size. Default: False.
        ce_warmup (float): Fraction of ``max_iters`` (at most 0.1) over which
            the loss goes linearly from cross entropy (weighted by
            ``loss_weight``) to NGL; read from the Runner's iteration, so it
            survives resuming; 0 outside a Runner. Default: 0.
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
                 impl='auto',
                 auto_weight=False,
                 ce_warmup=0.0):
        super().__init__()
        if not 0.0 <= ce_warmup <= 0.1:
            raise ValueError('ce_warmup is the fraction of training that blends cross entropy '
                             f'into NGL and must be in [0, 0.1], got {ce_warmup!r}: NGL must '
                             'stay the loss that trains the model')
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
        self.auto_weight = bool(auto_weight)
        self.ce_warmup = float(ce_warmup)
        self.class_weight = load_class_weight(class_weight)
        # What the last training call saw, for NGLMonitorHook: the unweighted
        # mean per-pixel loss (None unless reduced by 'mean') and the classes.
        self.last_value = None
        self.last_num_classes = None
        self.avg_non_ignore = avg_non_ignore
        self.impl = impl
        self._loss_name = loss_name

    def extra_repr(self):
        return (f'scaling={self.scaling}, alpha={self.alpha}, loss_weight={self.loss_weight}, '
                f'auto_weight={self.auto_weight}, ce_warmup={self.ce_warmup}, '
                f'reduction={self.reduction!r}, '
                f'avg_non_ignore={self.avg_non_ignore}, impl={self.impl!r}')

    def effective_weight(self, num_classes):
        """``loss_weight``, times the CE-matched factor with ``auto_weight``."""
        if not self.auto_weight:
            return self.loss_weight
        return self.loss_weight * ce_matched_weight(num_classes, self.alpha, self.scaling)

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
        ngl = ngl_loss(
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
        if self.training:
            self.last_num_classes = int(cls_score.shape[1])
            self.last_value = ngl.detach() if reduction == 'mean' and ngl.dim() == 0 else None
        loss = self.effective_weight(cls_score.shape[1]) * ngl
        ce_share = self.ce_share() if self.training else 0.0
        if ce_share > 0:
            ce = F.cross_entropy(cls_score.float(), label.long(), reduction='none',
                                 ignore_index=ignore_index)
            ce = reduce_pixel_loss(ce, label.long(), weight, class_weight, reduction,
                                   avg_factor, ignore_index, self.avg_non_ignore)
            loss = ce_share * self.loss_weight * ce + (1 - ce_share) * loss
        return loss

    def ce_share(self):
        """The share of cross entropy in the warm-up at the runner's current
        iteration: 1 at the start, falling linearly to 0 at ``ce_warmup`` of
        ``max_iters``; 0 after it and outside an mmengine Runner."""
        if not self.ce_warmup:
            return 0.0
        hub = MessageHub.get_current_instance()
        it, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        if it is None or not max_iters:
            return 0.0
        return max(0.0, 1.0 - it / (self.ce_warmup * max_iters))

    @property
    def loss_name(self):
        """Loss name, used as the key of this loss in the log.

        Returns:
            str: The name of this loss item.
        """
        return self._loss_name
