"""Fused NGL per-pixel loss: the public names.

``impl`` picks the implementation (``backends.IMPLEMENTATIONS``); ``'auto'``
takes the fastest available:

- ``'triton'``: Triton kernels, for float32/16 CUDA tensors (or CPU tensors
  under TRITON_INTERPRET=1);
- ``'compile'``: the torch math fused by ``torch.compile`` (CPU or CUDA);
- ``'torch'``: the same math in eager PyTorch, chunked over pixels;
- ``'literal'`` (alias ``'reference'``): the literal formula through autograd (slow; for checks).

Every fused implementation saves only the logits and labels for backward
(no extra tensor the size of the logits) and recomputes the probabilities.
The environment variable ``NGL_MMSEG_IMPL`` overrides ``'auto'``. With
``'auto'`` the first Triton call per device, dtype and kernel variant checks
the kernels against the eager math on a small probe (``selfcheck.py``).
Inside a ``torch.compile`` graph the fused paths run the torch math traced
into the graph (``compiling.py``). See docs/architecture.md for how the
modules fit together.
"""
import torch

from .backends import IMPLS, MIN_TRITON, resolve_impl, triton_available
from .checks import check_ignore_index, check_labels
from .formula import ALPHA, compute_dtype
from .function import NGLPixelLossFunction
from .literal import ngl_literal


def ngl_pixel_loss(logits: torch.Tensor,
                   label: torch.Tensor,
                   alpha: float = ALPHA,
                   scaling: bool = False,
                   ignore_index: int = 255,
                   impl: str = 'auto') -> torch.Tensor:
    """Per-pixel NGL: the mean over classes, ignored pixels 0.

    Args:
        logits (Tensor): (N, C, *spatial) or (M, C) scores, any float dtype.
        label (Tensor): int64 labels shaped like ``logits`` without dim 1,
            values in [0, C) or ``ignore_index`` (validated by the caller, e.g.
            with ``check_labels``).
        alpha (float): The constant of the formula. Default: 2.4092.
        scaling (bool): Apply the formula to ``sigmoid(softmax(logits))``,
            the authors' TensorFlow ``NGL(scaling=True)``. Default: False.
        ignore_index (int): Label of pixels that contribute nothing.
        impl (str): One of ``IMPLS``. Default: 'auto'.

    Returns:
        Tensor: float32 (float64 for float64 logits) loss of ``label``'s shape.
    """
    ignore_index = check_ignore_index(ignore_index)
    chosen = resolve_impl(impl, logits, scaling=bool(scaling))
    if not chosen.fused:
        return ngl_literal(logits.to(compute_dtype(logits.dtype)), label, alpha, scaling,
                           ignore_index)
    return NGLPixelLossFunction.apply(logits, label, float(alpha), bool(scaling),
                                      ignore_index, chosen.name)


__all__ = ['ALPHA', 'IMPLS', 'MIN_TRITON', 'check_ignore_index', 'check_labels', 'compute_dtype',
           'ngl_literal', 'ngl_pixel_loss', 'resolve_impl', 'triton_available']
