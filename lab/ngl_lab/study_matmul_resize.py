"""The decode heads' bilinear upsampling of their logits as two small matrix products,
for study runs whose config sets ``study_matmul_resize = True`` (a spec's per-study
``cfg_options``; ``study_config.write_run_config`` then imports this module, and the
setting is part of each run's identity, so one row of a table never mixes the two).

Why: every training step upsamples each head's logits from the feature map (8x8 on the
CPU budget model) to the label (64x64) before the loss, twice a step with the auxiliary
head, and on a CPU core ``F.interpolate`` is slow at it: doing it this way instead takes
the budget model's step from 70.7 to 64.4 ms at 21 classes and from 313.3 to 172.4 ms at
171 (COCO-Stuff), measured by ``tools/profile_run.py`` (docs/study-cost.md).

How: bilinear interpolation with ``align_corners=False`` is separable and linear, so
for an input ``x`` of shape (N, C, h, w) and an output of (H, W)::

    y = A_H @ x @ A_W^T       A_H: (H, h), A_W: (W, w)

where row ``i`` of ``A_H`` holds the two weights PyTorch gives output row ``i``
(``aten/src/ATen/native/UpSample.h``, ``area_pixel_compute_source_index``): source
position ``s = max(scale * (i + 0.5) - 0.5, 0)`` with ``scale = h / H``, weight
``1 - l`` on row ``floor(s)`` and ``l = s - floor(s)`` on the next one (the same row at
the last one). Autograd's backward is two more products, ``A_H^T @ g @ A_W``. The
function is the same as ``F.interpolate``'s; the sums run in another order, so values
differ by float rounding (under 1e-6 on logits of unit scale; tested against it,
forward and backward), and a run's weights are not the same to the bit as with mmseg's
``resize``: that is why it is a setting of the run, not one of ``study_run_speedups``.

Anything else (another mode, ``align_corners=True``, a ``scale_factor``, not 4-D, not
floating point) goes to mmseg's ``resize`` unchanged.
"""
import functools

import torch
from mmseg.models.decode_heads import decode_head
from mmseg.models.utils import resize as mmseg_resize

__all__ = ['bilinear_matrix', 'matmul_resize']


@functools.lru_cache(maxsize=64)
def _matrix(n_in, n_out, dtype, device):
    # The source index and weight in the precision PyTorch computes them in for this
    # dtype (its "opmath": float64 for float64, float32 for the others).
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    scale = torch.tensor(n_in / n_out, dtype=opmath)
    dst = torch.arange(n_out, dtype=opmath)
    src = (scale * (dst + 0.5) - 0.5).clamp(min=0)
    lower = src.floor().long().clamp(max=n_in - 1)
    upper = torch.where(lower < n_in - 1, lower + 1, lower)
    frac = (src - lower).clamp(0, 1)
    matrix = torch.zeros(n_out, n_in, dtype=opmath)
    rows = torch.arange(n_out)
    matrix.index_put_((rows, lower), 1 - frac, accumulate=True)
    matrix.index_put_((rows, upper), frac, accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def bilinear_matrix(n_in, n_out, dtype=torch.float32, device='cpu'):
    """The (n_out, n_in) matrix of bilinear interpolation (``align_corners=False``)
    along one axis from ``n_in`` to ``n_out`` samples."""
    return _matrix(int(n_in), int(n_out), dtype, torch.device(device))


def matmul_resize(input, size=None, scale_factor=None, mode='nearest', align_corners=None,
                  warning=True):
    """mmseg's ``resize`` (same arguments and result), with bilinear resizing to a given
    size as ``A_H @ input @ A_W^T``."""
    if mode != 'bilinear' or align_corners or scale_factor is not None or size is None or \
            isinstance(size, int) or input.dim() != 4 or not input.is_floating_point():
        return mmseg_resize(input, size, scale_factor, mode, align_corners, warning)
    out_h, out_w = (int(s) for s in size)
    rows = bilinear_matrix(input.shape[2], out_h, input.dtype, input.device)
    cols = bilinear_matrix(input.shape[3], out_w, input.dtype, input.device)
    return rows @ input @ cols.T


decode_head.resize = matmul_resize
