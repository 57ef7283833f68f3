"""NGL per-pixel loss in plain PyTorch: analytic gradient, no one-hot, chunked.

Both passes work on logits viewed as ``(B, C, S)`` (class dim 1). Per pixel,
with ``p = softmax(z)`` over the classes, ``q`` what the formula is applied to
(``q = p``; with ``scaling``, ``q = sigmoid(p)``, the authors' TensorFlow
``NGL(scaling=True)``) and ``t`` the label::

    loss = (sum_c f(q_c) + (exp(a - 2 q_t) - exp(a - q_t))) / C
    f(q) = exp(a - q) - cos(cos(sin(q)))

which equals the mean over classes of ``exp(a - q (1 + y)) - cos(cos(sin q))``
without building ``y``. Backward, with ``g_c = C dL/dq_c`` (``f'(q_c)``, plus
``2 e^(a - 2 q_t)``'s and ``e^(a - q_t)``'s derivatives on the target)::

    h_c   = g_c                    (no scaling)
    h_c   = g_c q_c (1 - q_c)      (scaling: the sigmoid's derivative)
    dL/dz = p * (h - sum_c h_c p_c) / C      (the softmax vector-Jacobian product)

Both q = p and q = sigmoid(p) lie in [0, 1], where the polynomials are fitted.
``f`` and ``f'`` are evaluated as polynomials (see
``poly.py``); only the target class needs real ``exp`` calls. The same two
functions serve the eager path (on chunks of pixels, so temporaries stay
bounded) and the compiled path (on the whole tensor, fused by inductor), and
inside a caller's ``torch.compile`` graph they run unchunked, traced into it.
"""
import torch

from .compiling import constant_result, is_compiling
from .formula import compute_dtype
from .poly import ngl_coefficients


@constant_result  # inside a graph: constants of the graph, not numpy traced into it
def _coefficients(alpha):
    return ngl_coefficients(alpha)

# Elements of logits processed at once by the eager path. On CPU the
# temporaries of one chunk (a few fp32 copies) stay in cache; on CUDA chunks
# must be large, or kernel launches dominate (measured: 180x CE with 2^18).
CHUNK_ELEMENTS = 1 << 18
CUDA_CHUNK_ELEMENTS = 1 << 24


def _horner(p, coefs):
    acc = p * coefs[0] + coefs[1]
    for c in coefs[2:]:
        acc = acc.mul_(p).add_(c)  # in place: eager allocates nothing per step
    return acc


def _probs(z):
    # Ignored pixels may hold anything (even NaN): they are zeroed, never read.
    return torch.softmax(z.to(compute_dtype(z.dtype)), dim=1)


def _targets(label, ignore_index):
    """(valid, target channel) for labels of shape (B, 1, S)."""
    valid = label != ignore_index
    return valid, torch.where(valid, label, 0)


def forward_math(z, label, alpha, scaling, ignore_index, coef_f):
    """Per-pixel loss (B, S) of logits ``z`` (B, C, S) and labels (B, S)."""
    num_classes = z.shape[1]
    q = _probs(z)
    if scaling:
        q = torch.sigmoid(q)
    total = _horner(q, coef_f).sum(dim=1)
    valid, idx = _targets(label.unsqueeze(1), ignore_index)
    qt = q.gather(1, idx).squeeze(1)
    corr = torch.exp(alpha - 2 * qt) - torch.exp(alpha - qt)
    loss = (total + corr) / num_classes
    return torch.where(valid.squeeze(1), loss, 0.0)


def backward_math(z, label, grad_out, alpha, scaling, ignore_index, coef_df):
    """Gradient w.r.t. ``z`` (B, C, S) given the per-pixel ``grad_out`` (B, S)."""
    num_classes = z.shape[1]
    p = _probs(z)
    q = torch.sigmoid(p) if scaling else p
    g = _horner(q, coef_df)  # C * dL/dq_c without the target term
    valid, idx = _targets(label.unsqueeze(1), ignore_index)
    qt = q.gather(1, idx)
    g_target = torch.exp(alpha - qt) - 2 * torch.exp(alpha - 2 * qt)
    channel = torch.arange(num_classes, device=z.device).view(1, -1, 1)
    g = torch.where(channel == idx, g + g_target, g)
    if scaling:
        g = g * q * (1 - q)  # C * dL/dp_c
    scale = torch.where(valid, grad_out.unsqueeze(1).to(p.dtype), 0.0) / num_classes
    dz = p * (g - (g * p).sum(dim=1, keepdim=True))
    # where, not a product: a NaN logit in an ignored pixel must give 0, not NaN.
    return torch.where(valid, dz * scale, 0.0).to(z.dtype)


def _chunks(num_pixels, per_pixel_elements, chunk):
    step = num_pixels if chunk is None else max(1, chunk // max(1, per_pixel_elements))
    for start in range(0, num_pixels, step):
        yield slice(start, min(start + step, num_pixels))


def _default_chunk(z):
    return CUDA_CHUNK_ELEMENTS if z.is_cuda else CHUNK_ELEMENTS


def _run_chunked(math, z, per_pixel, args, out_shape, out_dtype, chunk):
    """``math(z, *per_pixel, *args)`` on chunks of at most ``chunk`` logits
    (None: all at once). Pixels are the last dim of ``z`` (B, C, S), of each
    ``per_pixel`` tensor (B, S) and of the output."""
    chunk = _default_chunk(z) if chunk == 'default' else chunk
    if chunk is None or is_compiling() or z.numel() <= chunk:
        return math(z, *per_pixel, *args)
    out = torch.empty(out_shape, dtype=out_dtype, device=z.device)
    for s in _chunks(z.shape[2], z.shape[0] * z.shape[1], chunk):
        out[..., s] = math(z[..., s], *(t[..., s] for t in per_pixel), *args)
    return out


def forward_chunked(z, label, alpha, scaling, ignore_index, math=forward_math,
                    chunk='default'):
    """Per-pixel loss (B, S) in the compute dtype; ``math`` over chunks of pixels."""
    coef_f = _coefficients(alpha)[0]
    return _run_chunked(math, z, (label,), (alpha, scaling, ignore_index, coef_f),
                        label.shape, compute_dtype(z.dtype), chunk)


def backward_chunked(z, label, grad_out, alpha, scaling, ignore_index, math=backward_math,
                     chunk='default'):
    """Gradient w.r.t. ``z`` (B, C, S) in its dtype; ``math`` over chunks of pixels."""
    coef_df = _coefficients(alpha)[1]
    return _run_chunked(math, z, (label, grad_out), (alpha, scaling, ignore_index, coef_df),
                        z.shape, z.dtype, chunk)
