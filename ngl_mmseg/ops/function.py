"""The autograd Function around a fused implementation's forward/backward pair."""
import math

import torch

from .backends import IMPLEMENTATIONS
from .formula import compute_dtype


def as_bcs(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of logits as (B, C, S) and labels as (B, S), without copies.

    (N, C, *spatial) keeps images as B; (M, C) classification rows become the
    pixels of one image (a transposed view: the kernels take any strides).
    """
    if logits.dim() == 2:
        return logits.t().unsqueeze(0), label.unsqueeze(0)
    n, c = logits.shape[:2]
    s = math.prod(logits.shape[2:])  # not -1: that is ambiguous for an empty batch
    return logits.reshape(n, c, s), label.reshape(n, s)


class NGLPixelLossFunction(torch.autograd.Function):
    """Per-pixel NGL through the implementation named ``impl`` (a key of
    ``IMPLEMENTATIONS`` with a forward/backward pair). Saves only the logits
    and labels; backward recomputes the rest."""

    @staticmethod
    def forward(ctx, logits, label, alpha, scaling, ignore_index, impl):
        ctx.save_for_backward(logits, label)
        ctx.args = (alpha, scaling, ignore_index)
        ctx.impl = impl
        if label.numel() == 0:  # an empty batch: nothing to launch
            return logits.new_zeros(label.shape, dtype=compute_dtype(logits.dtype))
        z, lab = as_bcs(logits, label)
        return IMPLEMENTATIONS[impl].forward(z, lab, alpha, scaling, ignore_index).view(
            label.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        logits, label = ctx.saved_tensors
        no_grad_args = (None,) * 5  # label, alpha, scaling, ignore_index, impl
        if label.numel() == 0:
            return (torch.zeros_like(logits),) + no_grad_args
        z, lab = as_bcs(logits, label)
        grad = IMPLEMENTATIONS[ctx.impl].backward(z, lab, grad_out.reshape(lab.shape),
                                                  *ctx.args)
        if logits.dim() == 2:
            grad = grad.squeeze(0).t()
        return (grad.view(logits.shape),) + no_grad_args
