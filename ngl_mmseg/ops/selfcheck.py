"""A fused implementation checked against the eager math on a small probe.

``backends.resolve_impl`` runs this once per device, dtype and kernel variant
(classes, ``scaling``) before it lets ``impl='auto'`` take the Triton kernels:
a kernel that does not compile or launch on this GPU, or that computes
something else (a Triton or driver release the kernels were never run on),
is caught on the first call instead of training a model on wrong gradients.

The probe: 2 images x C classes x 67 pixels (not a multiple of any tile, so
masked lanes are exercised), logits ``3 N(0, 1)`` in the call's dtype, every
7th pixel ignored, a random upstream gradient. The reference: the same pair of
functions of the eager path (``ngl_torch``) in float64 on the probe's
(rounded) logits. The tolerances are the float64 tests': value within 1e-5
of the largest value, gradient within 3e-5 of the largest entry (twice the
dtype's epsilon for float16/bfloat16 gradients, which come back in that
dtype). The cost is one small forward and backward of each; see
docs/usage.md for what it measured.
"""
import dataclasses
import time
from typing import Callable, Optional

import torch

from . import ngl_torch
from .formula import ALPHA

PROBE_IMAGES, PROBE_PIXELS = 2, 67
IGNORE_INDEX = 255
VALUE_RTOL = 1e-5
GRAD_RTOL = 3e-5


@dataclasses.dataclass(frozen=True)
class Result:
    """What the probe found.

    Attributes:
        failure: None when the implementation agreed, else what went wrong
            (an exception raised by it, or the error that broke the tolerance).
        seconds: wall time of the check (the implementation's first call
            included: for Triton, compiling the kernels).
        value_error, grad_error: relative errors measured (None after an exception).
    """
    failure: Optional[str]
    seconds: float
    value_error: Optional[float] = None
    grad_error: Optional[float] = None


def probe(num_classes: int, device, dtype: torch.dtype):
    """The probe's logits (B, C, S) in ``dtype`` on ``device``, labels (B, S) and
    the upstream gradient (B, S, float32)."""
    g = torch.Generator().manual_seed(0)
    shape = (PROBE_IMAGES, num_classes, PROBE_PIXELS)
    z = (torch.randn(shape, generator=g) * 3).to(device=device, dtype=dtype)
    label = torch.randint(0, num_classes, (PROBE_IMAGES, PROBE_PIXELS), generator=g)
    label.view(-1)[::7] = IGNORE_INDEX
    up = torch.rand((PROBE_IMAGES, PROBE_PIXELS), generator=g)
    return z, label.to(device), up.to(device)


def _relative(got, want):
    return ((got.double().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


def check_kernels(forward: Callable, backward: Callable, device, dtype: torch.dtype,
                  num_classes: int, scaling: bool, alpha: float = ALPHA) -> Result:
    """Check a forward/backward pair (the contract of ``backends``) on the probe."""
    start = time.perf_counter()
    with torch.inference_mode(False), torch.no_grad():
        z, label, up = probe(num_classes, device, dtype)
        try:
            value = forward(z, label, alpha, scaling, IGNORE_INDEX)
            grad = backward(z, label, up, alpha, scaling, IGNORE_INDEX)
        except Exception as exc:  # a kernel that does not compile or launch here
            return Result(f'it raised {type(exc).__name__}: {exc}',
                          time.perf_counter() - start)
        z64, label64, up64 = z.double().cpu(), label.cpu(), up.double().cpu()
        want = ngl_torch.forward_chunked(z64, label64, alpha, scaling, IGNORE_INDEX)
        want_grad = ngl_torch.backward_chunked(z64, label64, up64, alpha, scaling, IGNORE_INDEX)
        if tuple(value.shape) != tuple(want.shape) or tuple(grad.shape) != tuple(z.shape) \
                or grad.dtype != z.dtype:
            return Result(f'it returned a loss of shape {tuple(value.shape)} and a gradient of '
                          f'shape {tuple(grad.shape)} and dtype {grad.dtype}, expected '
                          f'{tuple(want.shape)} and {tuple(z.shape)}, {z.dtype}',
                          time.perf_counter() - start)
        v_err, g_err = _relative(value, want), _relative(grad, want_grad)
    grad_rtol = GRAD_RTOL if dtype in (torch.float32, torch.float64) else \
        max(GRAD_RTOL, 2 * torch.finfo(dtype).eps)
    failure = None
    if not v_err <= VALUE_RTOL:  # NaN fails too
        failure = (f'its loss disagrees with the eager math by {v_err:.2e} of the largest '
                   f'value (tolerance {VALUE_RTOL:.0e})')
    elif not g_err <= grad_rtol:
        failure = (f'its gradient disagrees with the eager math by {g_err:.2e} of the largest '
                   f'entry (tolerance {grad_rtol:.0e})')
    return Result(failure, time.perf_counter() - start, v_err, g_err)
