"""NGL per-pixel loss in plain PyTorch: analytic gradient, no one-hot, chunked.

Both passes work on logits viewed as ``(B, C, S)`` (class dim 1). Per pixel,
with ``p`` the softmax (or sigmoid) probabilities and ``t`` the label::

    loss = (sum_c f(p_c) + [t has a target] * (exp(a - 2 p_t) - exp(a - p_t))) / C
    f(p) = exp(a - p) - cos(cos(sin(p)))

which equals the mean over classes of ``exp(a - p (1 + y)) - cos(cos(sin p))``
without building ``y``. ``f`` and ``f'`` are evaluated as polynomials (see
``poly.py``); only the target class needs real ``exp`` calls. The same two
functions serve the eager path (on chunks of pixels, so temporaries stay
bounded) and the compiled path (on the whole tensor, fused by inductor).
"""
import torch

from .poly import ngl_coefficients

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


def _targets(label, num_classes, ignore_index):
    """(valid, has_target, target_channel) for labels of shape (B, 1, S).

    With a single sigmoid channel (binary segmentation, as mmseg handles
    ``out_channels=1``) label 1 is the positive class of channel 0 and label 0
    has no target channel.
    """
    valid = label != ignore_index
    if num_classes == 1:
        return valid, valid & (label == 1), torch.zeros_like(label)
    return valid, valid, torch.where(valid, label, 0)


def _probs(z, use_sigmoid):
    return torch.sigmoid(z) if use_sigmoid else torch.softmax(z, dim=1)


def forward_math(z, label, alpha, use_sigmoid, ignore_index, coef_f):
    """Per-pixel loss (B, S) of logits ``z`` (B, C, S) and labels (B, S)."""
    num_classes = z.shape[1]
    compute = torch.float64 if z.dtype == torch.float64 else torch.float32
    p = _probs(z.to(compute), use_sigmoid)
    total = _horner(p, coef_f).sum(dim=1)
    valid, has, idx = _targets(label.unsqueeze(1), num_classes, ignore_index)
    pt = p.gather(1, idx).squeeze(1)
    corr = torch.exp(alpha - 2 * pt) - torch.exp(alpha - pt)
    loss = (total + torch.where(has.squeeze(1), corr, 0.0)) / num_classes
    return torch.where(valid.squeeze(1), loss, 0.0)


def backward_math(z, label, grad_out, alpha, use_sigmoid, ignore_index, coef_df):
    """Gradient w.r.t. ``z`` (B, C, S) given the per-pixel ``grad_out`` (B, S)."""
    num_classes = z.shape[1]
    compute = torch.float64 if z.dtype == torch.float64 else torch.float32
    p = _probs(z.to(compute), use_sigmoid)
    g = _horner(p, coef_df)  # C * dL/dp_c without the target term
    valid, has, idx = _targets(label.unsqueeze(1), num_classes, ignore_index)
    pt = p.gather(1, idx)
    g_target = torch.exp(alpha - pt) - 2 * torch.exp(alpha - 2 * pt)
    channel = torch.arange(num_classes, device=z.device).view(1, -1, 1)
    g = torch.where((channel == idx) & has, g + g_target, g)
    scale = torch.where(valid, grad_out.unsqueeze(1).to(compute), 0.0) / num_classes
    if use_sigmoid:
        dz = g * p * (1 - p)
    else:
        dz = p * (g - (g * p).sum(dim=1, keepdim=True))
    return (dz * scale).to(z.dtype)


def _chunks(num_pixels, per_pixel_elements, chunk):
    step = num_pixels if chunk is None else max(1, chunk // max(1, per_pixel_elements))
    for start in range(0, num_pixels, step):
        yield slice(start, min(start + step, num_pixels))


def _default_chunk(z):
    return CUDA_CHUNK_ELEMENTS if z.is_cuda else CHUNK_ELEMENTS


def forward_chunked(z, label, alpha, use_sigmoid, ignore_index, math=forward_math,
                    chunk='default'):
    """``math`` over chunks of at most ``chunk`` logits (None: all at once)."""
    chunk = _default_chunk(z) if chunk == 'default' else chunk
    coef_f = ngl_coefficients(alpha)[0]
    if chunk is None or z.numel() <= chunk:
        return math(z, label, alpha, use_sigmoid, ignore_index, coef_f)
    out = torch.empty(label.shape, dtype=torch.float64 if z.dtype == torch.float64
                      else torch.float32, device=z.device)
    for s in _chunks(z.shape[2], z.shape[0] * z.shape[1], chunk):
        out[:, s] = math(z[:, :, s], label[:, s], alpha, use_sigmoid, ignore_index, coef_f)
    return out


def backward_chunked(z, label, grad_out, alpha, use_sigmoid, ignore_index, math=backward_math,
                     chunk='default'):
    """``math`` over chunks of at most ``chunk`` logits (None: all at once)."""
    chunk = _default_chunk(z) if chunk == 'default' else chunk
    coef_df = ngl_coefficients(alpha)[1]
    if chunk is None or z.numel() <= chunk:
        return math(z, label, grad_out, alpha, use_sigmoid, ignore_index, coef_df)
    grad = torch.empty(z.shape, dtype=z.dtype, device=z.device)
    for s in _chunks(z.shape[2], z.shape[0] * z.shape[1], chunk):
        grad[:, :, s] = math(z[:, :, s], label[:, s], grad_out[:, s], alpha, use_sigmoid,
                             ignore_index, coef_df)
    return grad
