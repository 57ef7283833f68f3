"""Fused NGL per-pixel loss: one autograd Function, several implementations.

``impl`` picks the implementation; ``'auto'`` takes the fastest available:

- ``'triton'``: Triton kernels, for float32/16 CUDA tensors (or CPU tensors
  under TRITON_INTERPRET=1);
- ``'compile'``: the torch math fused by ``torch.compile`` (CPU or CUDA);
- ``'torch'``: the same math in eager PyTorch, chunked over pixels;
- ``'reference'``: the literal formula through autograd (slow; for checks).

Every fused implementation saves only the logits and labels for backward
(no extra tensor the size of the logits) and recomputes the probabilities.
The environment variable ``NGL_MMSEG_IMPL`` overrides ``'auto'``.
"""
import functools
import math
import os
import warnings

import torch

from . import ngl_torch
from .ngl_torch import compute_dtype
from .reference import ALPHA, ngl_literal

IMPLS = ('auto', 'triton', 'compile', 'torch', 'reference')
# Below this many logits elements the eager path wins over a compiled kernel
# (launch overhead), and compiling would only cost start-up time.
COMPILE_MIN_ELEMENTS = 1 << 20

_compiled = {}
_compile_failed = False


@functools.lru_cache(maxsize=None)
def _triton_importable():
    try:
        from . import ngl_triton  # noqa: F401
    except Exception:  # ImportError, or a Triton without a usable backend
        return False
    return True


def triton_available(device_type='cuda'):
    """Whether the Triton kernels can run on tensors of ``device_type``."""
    if device_type != 'cuda' and os.environ.get('TRITON_INTERPRET') != '1':
        return False
    return _triton_importable()


def _compiled_fns():
    if not _compiled:
        # Whole tensor at once: inductor fuses the math, so no temporaries.
        _compiled['forward'] = functools.partial(
            ngl_torch.forward_chunked, chunk=None,
            math=torch.compile(ngl_torch.forward_math, dynamic=False))
        _compiled['backward'] = functools.partial(
            ngl_torch.backward_chunked, chunk=None,
            math=torch.compile(ngl_torch.backward_math, dynamic=False))
    return _compiled['forward'], _compiled['backward']


def resolve_impl(impl, logits):
    """The concrete implementation ``impl`` means for ``logits``."""
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    if impl == 'auto':
        impl = os.environ.get('NGL_MMSEG_IMPL', 'auto')
        if impl not in IMPLS:
            raise ValueError(f'NGL_MMSEG_IMPL must be one of {IMPLS}, got {impl!r}')
    if impl != 'auto':
        return impl
    if logits.dtype == torch.float64:
        return 'torch'  # the kernels compute in float32
    if logits.is_cuda and triton_available('cuda'):
        from .ngl_triton import MAX_CLASSES
        if logits.shape[1] <= MAX_CLASSES:
            return 'triton'
    if logits.numel() >= COMPILE_MIN_ELEMENTS and not _compile_failed:
        return 'compile'
    return 'torch'


def _check_triton(logits):
    """Clear errors where Triton's own would be obscure ("0 active drivers")."""
    if logits.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"impl='triton' computes in float32 and takes float32, float16 or "
                         f"bfloat16 logits, got {logits.dtype}; use impl='torch' for float64")
    if not logits.is_cuda and os.environ.get('TRITON_INTERPRET') != '1':
        raise ValueError(f"impl='triton' needs CUDA tensors, got logits on {logits.device} "
                         "(on CPU, Triton kernels run only in its interpreter, "
                         "TRITON_INTERPRET=1); use impl='auto' to pick a CPU path")
    if not _triton_importable():
        raise ValueError("impl='triton' needs Triton, which cannot be imported here; "
                         "install it (pip install triton) or use impl='compile'")


def _run(impl, direction, *args):
    """Run the forward (0) or backward (1) pass of ``impl``.

    A compiled path that fails (no C++ compiler, unsupported platform, ...)
    warns once and falls back to the eager math, which gives the same numbers.
    """
    global _compile_failed
    if impl == 'triton':
        from . import ngl_triton
        return (ngl_triton.forward, ngl_triton.backward)[direction](*args)
    if impl == 'compile' and not _compile_failed:
        try:
            return _compiled_fns()[direction](*args)
        except Exception as exc:
            _compile_failed = True
            warnings.warn(f'NGL: the torch.compile path failed ({type(exc).__name__}: '
                          f'{exc}); falling back to the eager implementation')
    return (ngl_torch.forward_chunked, ngl_torch.backward_chunked)[direction](*args)


def _as_bcs(logits, label):
    """Views of logits as (B, C, S) and labels as (B, S), without copies."""
    if logits.dim() == 2:  # (M, C) classification: pixels are rows
        return logits.t().unsqueeze(0), label.unsqueeze(0)
    n, c = logits.shape[:2]
    s = math.prod(logits.shape[2:])  # not -1: that is ambiguous for an empty batch
    return logits.reshape(n, c, s), label.reshape(n, s)


class _NGLPixelLoss(torch.autograd.Function):

    @staticmethod
    def forward(ctx, logits, label, alpha, scaling, ignore_index, impl):
        ctx.save_for_backward(logits, label)
        ctx.args = (alpha, scaling, ignore_index, impl)
        if label.numel() == 0:  # an empty batch: nothing to launch
            return logits.new_zeros(label.shape, dtype=compute_dtype(logits.dtype))
        z, lab = _as_bcs(logits, label)
        loss = _run(impl, 0, z, lab, alpha, scaling, ignore_index)
        return loss.view(label.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        logits, label = ctx.saved_tensors
        alpha, scaling, ignore_index, impl = ctx.args
        if label.numel() == 0:
            return torch.zeros_like(logits), None, None, None, None, None
        z, lab = _as_bcs(logits, label)
        grad = _run(impl, 1, z, lab, grad_out.reshape(lab.shape), alpha, scaling,
                    ignore_index)
        if logits.dim() == 2:
            grad = grad.squeeze(0).t()
        return grad.view(logits.shape), None, None, None, None, None


def ngl_pixel_loss(logits, label, alpha=ALPHA, scaling=False, ignore_index=255,
                   impl='auto'):
    """Per-pixel NGL: the mean over classes, ignored pixels 0.

    Args:
        logits (Tensor): (N, C, *spatial) or (M, C) scores, any float dtype.
        label (Tensor): int64 labels shaped like ``logits`` without dim 1,
            values in [0, C) or ``ignore_index`` (validated by the caller).
        alpha (float): The constant of the formula. Default: 2.4092.
        scaling (bool): Apply the formula to ``sigmoid(softmax(logits))``,
            the authors' TensorFlow ``NGL(scaling=True)``. Default: False.
        ignore_index (int): Label of pixels that contribute nothing.
        impl (str): One of ``IMPLS``. Default: 'auto'.

    Returns:
        Tensor: float32 (float64 for float64 logits) loss of ``label``'s shape.
    """
    impl = resolve_impl(impl, logits)
    if impl == 'triton':
        _check_triton(logits)
    if impl == 'reference':
        return ngl_literal(logits.to(compute_dtype(logits.dtype)), label, alpha, scaling,
                           ignore_index)
    return _NGLPixelLoss.apply(logits, label, float(alpha), bool(scaling),
                               int(ignore_index), impl)


__all__ = ['ALPHA', 'IMPLS', 'compute_dtype', 'ngl_literal', 'ngl_pixel_loss', 'resolve_impl',
           'triton_available']
