# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""Next Generation Loss (NGL) for semantic segmentation.

Akhmedova & Körber, "Next Generation Loss Function for Image Classification",
2024. For probabilities ``p`` (softmax over classes) and one-hot target ``y``,
per pixel the mean over the C classes of::

    exp(alpha - p * (1 + y)) - cos(cos(sin(p))),   alpha = 2.4092
"""
import numbers
import warnings
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmseg.registry import MODELS

from ..ops import ALPHA, IMPLS, ngl_pixel_loss
from ..ops.compiling import constant_result, outside_graph
from ..ops.formula import compute_dtype
from . import monitor
from .class_weight import load_class_weight
from .recipe import (
    ce_matched_weight,
    default_target_bias,
    steepest_target_probability,
    warmup_share,
)
from .utils import (
    REDUCTIONS,
    check_bool,
    check_inputs,
    check_real,
    mean_over_summed_pixels,
    pixel_cross_entropy,
    reduce_pixel_loss,
)

# exp(alpha) must stay far inside float32's range once summed over millions of pixels.
MAX_ABS_ALPHA = 20.0
MAX_WARMUP = 0.1  # the recipe's warm-ups: at most 10% of training, NGL is the loss after

SIGMOID_ERROR = (
    'NGLLoss(use_sigmoid=True) is refused: with a per-class sigmoid every NGL term '
    'exp(alpha - p) - cos(cos(sin p)) of a negative class decreases in p, so the loss is '
    'minimised by p = 1 for every class and the model learns to predict every class '
    'everywhere. For binary segmentation use num_classes=2 (two softmax channels, '
    'out_channels=2); for the authors\' TensorFlow variant (a sigmoid on the softmax '
    'probabilities) use scaling=True.')


def ngl_loss(pred: torch.Tensor,
             label: torch.Tensor,
             weight: Optional[torch.Tensor] = None,
             class_weight: Optional[Union[Sequence[float], torch.Tensor]] = None,
             reduction: str = 'mean',
             avg_factor: Optional[Union[int, float, torch.Tensor]] = None,
             ignore_index: int = 255,
             avg_non_ignore: bool = True,
             alpha: float = ALPHA,
             scaling: bool = False,
             impl: str = 'auto',
             use_sigmoid: bool = False) -> torch.Tensor:
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
            'torch', 'literal' (alias 'reference'). Default: 'auto'.
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
    check_inputs(pred, label, weight, class_weight, reduction, ignore_index)
    label = label.long()
    loss = ngl_pixel_loss(pred, label, alpha=alpha, scaling=scaling,
                          ignore_index=ignore_index, impl=impl)
    return reduce_pixel_loss(loss, label, weight, class_weight, reduction, avg_factor,
                             ignore_index, avg_non_ignore)


def shift_target_logit(logits: torch.Tensor, label: torch.Tensor, bias: float,
                       ignore_index: int = 255) -> torch.Tensor:
    """``logits`` with ``bias`` added to each pixel's target logit (ignored
    pixels unchanged): NGL evaluated there sees the target ``bias`` nats more
    likely. The gradient passes through unchanged (d/dz of z + b y is 1).

    Computed and returned in the compute dtype (float32 for float16/bfloat16
    logits), as the rest of the loss: in float16 a logit near its largest
    value (65504) plus the bias would overflow to inf and the loss to NaN.
    """
    logits = logits.to(compute_dtype(logits.dtype))
    valid = label != ignore_index
    index = torch.where(valid, label, 0).unsqueeze(1)
    add = (valid.unsqueeze(1) * bias).to(logits.dtype)
    return logits.scatter_add(1, index, add)


@lru_cache(maxsize=256)
def _shares_at_iteration(iteration, max_iters, ce_warmup, target_bias_warmup):
    """``(CE share, target-bias share)`` at ``iteration``: ``recipe.warmup_share``
    of each warm-up, cached, so the decode and auxiliary heads' losses of an
    iteration compute them once."""
    return (warmup_share(iteration, max_iters, ce_warmup),
            warmup_share(iteration, max_iters, target_bias_warmup))


@outside_graph
def _shares_at_runner_iteration(ce_warmup: float,
                                target_bias_warmup: float) -> tuple[float, float]:
    """:func:`_shares_at_iteration` at the Runner's iteration, read from mmengine's
    MessageHub ((0, 0) outside a Runner). Runs outside any compiled graph: with a
    warm-up and mmengine's ``compile = True`` this is one graph break, and the
    shares enter the graph as numbers."""
    hub = MessageHub.get_current_instance()
    return _shares_at_iteration(hub.get_info('iter'), hub.get_info('max_iters'), ce_warmup,
                                target_bias_warmup)


# Numbers computed on the host from constants: inside a compiled graph, constants of it.
@constant_result
def _ce_matched_weight(num_classes, alpha, scaling):
    return ce_matched_weight(num_classes, alpha, scaling)


@constant_result
def _default_target_bias(num_classes, alpha, scaling):
    return default_target_bias(num_classes, alpha, scaling)


@outside_graph
@cache  # once per setting
def _warn_no_default_bias(warmup, num_classes, alpha, scaling):
    p = steepest_target_probability(num_classes, alpha, scaling)
    warnings.warn(
        f'NGLLoss: target_bias_warmup={warmup} does nothing at {num_classes} classes: a '
        f'uniform softmax (p_t = 1/{num_classes}) is already at or past p_t = {p:.3f}, where '
        "NGL's gradient on the target logit is steepest, so the default target_bias is 0 and "
        'the warm-up adds no bias. Give target_bias explicitly to use one, or drop '
        'target_bias_warmup (docs/usage.md)', stacklevel=2)


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
        alpha (float): The constant of the formula, in [-20, 20].
            Default: 2.4092.
        reduction (str, optional): 'none', 'mean' or 'sum'. Default: 'mean'.
        class_weight (list[float] | str, optional): Weight of each class, or
            a path to a .npy/.pkl file of them (1-D, finite, >= 0; loaded
            without running code). Default: None.
        loss_weight (float): Weight of the loss. Default: 1.0.
        auto_weight (bool): Multiply ``loss_weight`` by
            ``ce_matched_weight(C)`` (45.8 at 21 classes, 2675 at 171), so
            that a fresh head gets cross entropy's gradient. NGL's own gradient
            is that much smaller, which under SGD is a learning-rate cut of
            that size; under Adam/AdamW a constant weight cancels out.
            Default: False.
        ce_warmup (float): Fraction of ``max_iters`` (at most 0.1) over which
            the loss goes linearly from cross entropy (weighted by
            ``loss_weight``) to NGL; read from the Runner's iteration, so it
            survives resuming; 0 outside a Runner. Default: 0.
        target_bias_warmup (float): Fraction of ``max_iters`` (at most 0.1)
            over which NGL is evaluated at logits whose target entry is raised
            by a bias that falls linearly from ``target_bias`` to 0: NGL stays
            the loss, but a pixel at chance gets the gradient of a pixel where
            NGL's gradient is steepest (the logit-bias remedy for losses whose
            gradient is weighted by ``p_t``, arXiv 2306.05497). Computed in
            float32 for float16/bfloat16 logits. While it runs, each training
            call also evaluates NGL (forward only) at the model's own logits,
            for the monitor. Default: 0.
        target_bias (float, optional): The bias at the start of that warm-up,
            in [0, 20]; only with ``target_bias_warmup`` > 0 (else refused).
            Default: None (``recipe.default_target_bias(C)``: a uniform
            softmax then sits at ``p_t ~ 0.15``, where NGL's target-logit
            gradient peaks; 1.26 at 21 classes, 3.36 at 171). At 6 classes or
            fewer (without ``scaling``) chance is already past that point and
            the default is 0: the warm-up then adds no bias, and the first
            call warns once saying so (give ``target_bias`` to use one).
        loss_name (str): Name of the loss item; must start with ``loss_`` to
            be backpropagated. Default: 'loss_ngl'.
        avg_non_ignore (bool): Average over non-ignored pixels only (True) or
            over all pixels, as mmseg's CrossEntropyLoss does by default
            (False). Default: True.
        impl (str): Implementation: 'auto' (fastest available), 'triton',
            'compile', 'torch' or 'literal' (alias 'reference').
            Default: 'auto'.
    """

    def __init__(self,
                 use_sigmoid: bool = False,
                 scaling: bool = False,
                 alpha: float = ALPHA,
                 reduction: str = 'mean',
                 class_weight: Optional[Union[Sequence[float], str]] = None,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_ngl',
                 avg_non_ignore: bool = True,
                 impl: str = 'auto',
                 auto_weight: bool = False,
                 ce_warmup: float = 0.0,
                 target_bias_warmup: float = 0.0,
                 target_bias: Optional[float] = None) -> None:
        super().__init__()
        if check_bool('use_sigmoid', use_sigmoid):
            raise ValueError(SIGMOID_ERROR)
        for name, value in (('ce_warmup', ce_warmup), ('target_bias_warmup',
                                                        target_bias_warmup)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not 0.0 <= value <= MAX_WARMUP:
                raise ValueError(f'{name} is a fraction of training and must be in '
                                 f'[0, {MAX_WARMUP}], got {value!r}: NGL must stay the loss '
                                 'that trains the model')
        if target_bias is not None and not target_bias_warmup:
            raise ValueError(f'target_bias={target_bias!r} is the bias at the start of the '
                             'target-bias warm-up, which is off (target_bias_warmup=0): set '
                             'target_bias_warmup (e.g. 0.1) or drop target_bias')
        if reduction not in REDUCTIONS:
            raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
        if impl not in IMPLS:
            raise ValueError(f'impl must be one of {IMPLS}, got {impl!r} (docs/usage.md)')
        if not isinstance(loss_name, str) or not loss_name:
            raise ValueError(f'loss_name must be a non-empty string, got {loss_name!r}')
        self.scaling = check_bool('scaling', scaling)
        self.avg_non_ignore = check_bool('avg_non_ignore', avg_non_ignore)
        self.auto_weight = check_bool('auto_weight', auto_weight)
        self.alpha = check_real('alpha', alpha, -MAX_ABS_ALPHA, MAX_ABS_ALPHA)
        self.loss_weight = check_real('loss_weight', loss_weight, low=0.0)
        self.target_bias = (None if target_bias is None else
                            check_real('target_bias', target_bias, 0.0, 20.0))
        self.reduction = reduction
        self.ce_warmup = float(ce_warmup)
        self.target_bias_warmup = float(target_bias_warmup)
        self.class_weight: Optional[list[float]] = load_class_weight(class_weight)
        # On the module's device, moved with it: no copy to the device per call.
        self.register_buffer(
            'class_weight_tensor', None if self.class_weight is None else
            torch.tensor(self.class_weight, dtype=torch.float32), persistent=False)
        self.impl = impl
        self._loss_name = loss_name
        # Where training calls post what NGLMonitorHook reads (losses/monitor.py):
        # a number given at construction, not state kept between calls.
        self.monitor_key = monitor.new_key()

    def extra_repr(self) -> str:
        return (f'scaling={self.scaling}, alpha={self.alpha}, loss_weight={self.loss_weight}, '
                f'auto_weight={self.auto_weight}, ce_warmup={self.ce_warmup}, '
                f'target_bias_warmup={self.target_bias_warmup}, '
                f'reduction={self.reduction!r}, '
                f'avg_non_ignore={self.avg_non_ignore}, impl={self.impl!r}')

    def effective_weight(self, num_classes: int) -> float:
        """``loss_weight``, times the CE-matched factor with ``auto_weight``."""
        if not self.auto_weight:
            return self.loss_weight
        return self.loss_weight * _ce_matched_weight(num_classes, self.alpha, self.scaling)

    def start_bias(self, num_classes: int) -> float:
        """The target bias at the start of the target-bias warm-up: ``target_bias``,
        else ``recipe.default_target_bias(C)``. Where that default is 0 (6 classes
        or fewer without ``scaling``) the warm-up does nothing: one warning says so."""
        if self.target_bias is not None:
            return self.target_bias
        bias = _default_target_bias(num_classes, self.alpha, self.scaling)
        if bias <= 0:
            _warn_no_default_bias(self.target_bias_warmup, num_classes, self.alpha,
                                  self.scaling)
        return bias

    def ce_and_bias_shares(self) -> tuple[float, float]:
        """``(CE share, target-bias share)`` at the Runner's current iteration:
        each falls linearly from 1 at the start of training to 0 at its fraction
        of ``max_iters`` (``recipe.warmup_share``), read from mmengine's
        MessageHub (so it survives resuming); (0, 0) outside a Runner, and
        without reading anything when neither warm-up is configured."""
        if not (self.ce_warmup or self.target_bias_warmup):
            return 0.0, 0.0
        return _shares_at_runner_iteration(self.ce_warmup, self.target_bias_warmup)

    def _class_weight_for(self, cls_score):
        if self.class_weight is None:
            return None
        if len(self.class_weight) != cls_score.shape[1]:
            raise ValueError(f'NGLLoss has {len(self.class_weight)} class weights but the '
                             f'head predicts {cls_score.shape[1]} classes')
        return self.class_weight_tensor.to(device=cls_score.device, dtype=torch.float32)

    @property
    def last_value(self) -> Optional[torch.Tensor]:
        """NGL's mean over the pixels the last training call summed, at the
        model's own logits (None when it summed none, or before any training
        call). The loss does not keep it: this reads the call's post
        (``losses/monitor.py``), and waits for the device to compute it."""
        posted = monitor.peek(self.monitor_key)
        if posted is None or not bool(posted[1] > 0):
            return None
        return posted[0]

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[Union[int, float, torch.Tensor]] = None,
                reduction_override: Optional[str] = None,
                ignore_index: int = 255,
                **kwargs) -> torch.Tensor:
        """Forward function.

        Queues work on the device and returns: nothing is read on the host in
        a steady-state training iteration (labels are checked as
        ``ngl_mmseg.ops.checks`` describes), and nothing is kept on the module.
        In training mode the call posts NGL's value for ``NGLMonitorHook``
        (``losses/monitor.py``).

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
        class_weight = self._class_weight_for(cls_score)
        check_inputs(cls_score, label, weight, class_weight, reduction, ignore_index,
                     class_weight_checked=True)
        label = label.long()
        num_classes = cls_score.shape[1]
        start_bias = self.start_bias(num_classes) if self.target_bias_warmup else 0.0
        ce_share, bias_share = self.ce_and_bias_shares() if self.training else (0.0, 0.0)
        bias_share = bias_share if start_bias > 0 else 0.0
        logits = cls_score
        if bias_share > 0:
            logits = shift_target_logit(cls_score, label, bias_share * start_bias, ignore_index)
        pixel = ngl_pixel_loss(logits, label, alpha=self.alpha, scaling=self.scaling,
                               ignore_index=ignore_index, impl=self.impl)
        ngl = reduce_pixel_loss(pixel, label, weight, class_weight, reduction, avg_factor,
                                ignore_index, self.avg_non_ignore)
        if self.training:
            if bias_share > 0:  # the monitor reads NGL at the model's own logits
                with torch.no_grad():
                    pixel = ngl_pixel_loss(cls_score.detach(), label, alpha=self.alpha,
                                           scaling=self.scaling, ignore_index=ignore_index,
                                           impl=self.impl)
            mean, total = mean_over_summed_pixels(pixel.detach(), label, weight, ignore_index)
            monitor.post(self.monitor_key, mean, total, num_classes)
        loss = self.effective_weight(num_classes) * ngl
        if ce_share > 0:
            ce = pixel_cross_entropy(cls_score, label, ignore_index)
            ce = reduce_pixel_loss(ce, label, weight, class_weight, reduction,
                                   avg_factor, ignore_index, self.avg_non_ignore)
            loss = ce_share * self.loss_weight * ce + (1 - ce_share) * loss
        return loss

    @property
    def loss_name(self) -> str:
        """Loss name, used as the key of this loss in the log.

        Returns:
            str: The name of this loss item.
        """
        return self._loss_name
