# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""The training recipe's math: the CE-matched weight, NGL's reference values
(for reading progress) and the warm-up schedules.

Imported by the loss (``ngl_loss.py``) and by ``NGLMonitorHook``; torch-free.
See docs/training.md for the derivations and the study behind them.
"""
import math
from functools import cache
from typing import Optional

import numpy as np

from ..ops.formula import ALPHA, ngl_term_derivatives_np, ngl_terms_np


@cache
def ce_matched_weight(num_classes: int, alpha: float = ALPHA, scaling: bool = False) -> float:
    """The loss weight that gives NGL cross entropy's gradient at the start.

    With near-uniform logits (a fresh head) ``p = 1/C`` and the softmax
    Jacobian gives ``dL/dz_t = (C - 1) (h_t - h_c) / C^3`` for NGL, where
    ``h = dL/dp`` of the target and of another class: ``h_t - h_c =
    q' (e^(a - q) - 2 e^(a - 2q))`` at ``q = p`` (``q' = 1``) or, with
    ``scaling``, ``q = sigmoid(p)`` (``q' = q (1 - q)``); the cos terms cancel.
    CE's is ``-(C - 1) / C``, so the weight is ``C^2 / |h_t - h_c|``: 45.8 at
    21 classes and 2675 at 171 (``C^2 / e^a``, 40 and 2630, is its limit for
    large C). Under SGD this weight is the difference between NGL training and
    not; under Adam/AdamW a constant weight cancels out.
    """
    p = 1.0 / num_classes
    q = 1.0 / (1.0 + np.exp(-p)) if scaling else p
    dq = q * (1 - q) if scaling else 1.0
    diff = dq * (np.exp(alpha - q) - 2 * np.exp(alpha - 2 * q))
    return float(num_classes ** 2 / abs(diff))


@cache  # NGLMonitorHook asks every iteration; a 1e5-point grid each time
def ngl_reference_values(num_classes: int, alpha: float = ALPHA,
                         scaling: bool = False) -> tuple[float, float]:
    """Per-pixel NGL at chance and at its minimum, for reading training progress.

    Returns:
        tuple[float, float]: ``(at_chance, minimum)``: the loss of a uniform
        softmax (what a fresh head predicts) and the smallest value the loss
        can take (the target at ``p* ~ 0.35``, every other class equal: the
        minimiser is soft).
    """
    c = num_classes

    def pixel(pt):
        pt = np.asarray(pt, dtype=np.float64)
        po = (1 - pt) / (c - 1)
        qt, qo = (1 / (1 + np.exp(-pt)), 1 / (1 + np.exp(-po))) if scaling else (pt, po)
        return (ngl_terms_np(qt, alpha)[1] + (c - 1) * ngl_terms_np(qo, alpha)[0]) / c

    grid = np.linspace(0, 1, 100001)  # the loss is smooth in p_t: a grid is exact to 1e-9
    return float(pixel(1.0 / c)), float(pixel(grid).min())


def ngl_progress(value: float, num_classes: int, alpha: float = ALPHA,
                 scaling: bool = False) -> float:
    """Where a per-pixel NGL value lies from chance (0) to NGL's minimum (1)."""
    at_chance, minimum = ngl_reference_values(num_classes, alpha, scaling)
    return (at_chance - value) / max(at_chance - minimum, 1e-12)


def warmup_share(iteration: Optional[int], max_iters: Optional[int], fraction: float) -> float:
    """1 at iteration 0, falling linearly to 0 at ``fraction`` of ``max_iters``;
    0 after it, and 0 when any of the three is unknown or 0."""
    if not fraction or iteration is None or not max_iters:
        return 0.0
    return max(0.0, 1.0 - iteration / (fraction * max_iters))


@cache
def steepest_target_probability(num_classes: int, alpha: float = ALPHA,
                                scaling: bool = False) -> float:
    """The target probability ``p_t`` (the other classes equal) where NGL's
    gradient on the target logit is largest, below NGL's soft minimum.

    ``dL/dz_t = p_t (1 - p_t) (g_t - g_o) / C`` with ``g = dL/dp`` of the target
    and of another class: ~0.15 at 21 and at 171 classes. Not 1/2, where
    ``p_t (1 - p_t)`` peaks: NGL's minimiser is ``p_t* ~ 0.36``, so at 1/2 its
    gradient already pushes the target logit down.

    At few classes (6 or fewer without ``scaling``) chance, ``p_t = 1/C``, is
    already at or past that point: the push only weakens as ``p_t`` grows, and
    this returns ``1/C`` exactly.
    """
    c = num_classes
    pt = np.linspace(1.0 / c, 1.0, 200001)[1:-1]
    po = (1 - pt) / (c - 1)
    if scaling:
        qt, qo = 1 / (1 + np.exp(-pt)), 1 / (1 + np.exp(-po))
        gt = ngl_term_derivatives_np(qt, alpha)[1] * qt * (1 - qt)
        go = ngl_term_derivatives_np(qo, alpha)[0] * qo * (1 - qo)
    else:
        gt, go = ngl_term_derivatives_np(pt, alpha)[1], ngl_term_derivatives_np(po, alpha)[0]
    grad = pt * (1 - pt) * (gt - go)
    best = int(np.argmin(grad))  # most negative: the strongest push up
    return 1.0 / c if best == 0 else float(pt[best])


def default_target_bias(num_classes: int, alpha: float = ALPHA, scaling: bool = False) -> float:
    """The target-logit bias that puts a uniform softmax at
    ``steepest_target_probability``: ``ln(p / (1 - p) * (C - 1))``, 1.26 at 21
    classes and 3.36 at 171 (not ``ln(C - 1)``, which puts it at 1/2, past NGL's
    minimum: measured, that hurts; see docs/training.md). 0 where chance is
    already the steepest point (6 classes or fewer without ``scaling``):
    ``NGLLoss`` then refuses a target-bias warm-up without an explicit bias."""
    p = steepest_target_probability(num_classes, alpha, scaling)
    return max(0.0, math.log(p / (1 - p) * (num_classes - 1)))
