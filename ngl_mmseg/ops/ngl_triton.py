"""NGL per-pixel loss as Triton kernels (CUDA; on CPU through TRITON_INTERPRET=1).

Each program loads a whole ``[classes, pixels]`` tile once, so the forward pass
reads the logits once and the backward pass reads them once and writes the
gradient once: the loss is bound by memory traffic, as cross entropy is.
Same math as ``ngl_torch`` (polynomial f and f', target term with exp).
"""
from functools import lru_cache

import torch
import triton
import triton.language as tl

from .poly import DEGREE, ngl_coefficients

MAX_CLASSES = 1024  # one tile holds every class of a pixel


@triton.jit
def _horner(p, coef_ptr, DEG: tl.constexpr):
    acc = p * tl.load(coef_ptr) + tl.load(coef_ptr + 1)
    for i in tl.static_range(2, DEG + 1):
        acc = acc * p + tl.load(coef_ptr + i)
    return acc


@triton.jit
def _load_probs(z_ptr, b, offs_c, offs_s, C, S, s_zb, s_zc, s_zs,
                SIGMOID: tl.constexpr):
    mask_c = offs_c < C
    mask = mask_c[:, None] & (offs_s < S)[None, :]
    z = tl.load(z_ptr + b * s_zb + offs_c[:, None] * s_zc + offs_s[None, :] * s_zs,
                mask=mask, other=0.0).to(tl.float32)
    if SIGMOID:
        p = 1.0 / (1.0 + tl.exp(-z))
    else:
        z = tl.where(mask_c[:, None], z, float('-inf'))
        e = tl.exp(z - tl.max(z, axis=0)[None, :])
        p = e / tl.sum(e, axis=0)[None, :]
    return tl.where(mask, p, 0.0), mask


@triton.jit
def _target(lab_ptr, b, offs_s, S, s_lb, s_ls, ignore_index, ONE_CHANNEL: tl.constexpr):
    lab = tl.load(lab_ptr + b * s_lb + offs_s * s_ls, mask=offs_s < S,
                  other=ignore_index).to(tl.int32)
    valid = lab != ignore_index
    if ONE_CHANNEL:
        has = valid & (lab == 1)
        idx = tl.zeros_like(lab)
    else:
        has = valid
        idx = tl.where(valid, lab, 0)
    return valid, has, idx


@triton.jit
def _ngl_fwd_kernel(z_ptr, lab_ptr, out_ptr, coef_ptr, C, S,
                    s_zb, s_zc, s_zs, s_lb, s_ls, alpha, ignore_index,
                    SIGMOID: tl.constexpr, ONE_CHANNEL: tl.constexpr, DEG: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    b = tl.program_id(0)
    offs_s = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_c = tl.arange(0, BLOCK_C)
    p, mask = _load_probs(z_ptr, b, offs_c, offs_s, C, S, s_zb, s_zc, s_zs, SIGMOID)
    total = tl.sum(tl.where(mask, _horner(p, coef_ptr, DEG), 0.0), axis=0)
    valid, has, idx = _target(lab_ptr, b, offs_s, S, s_lb, s_ls, ignore_index, ONE_CHANNEL)
    pt = tl.sum(tl.where(offs_c[:, None] == idx[None, :], p, 0.0), axis=0)
    corr = tl.exp(alpha - 2.0 * pt) - tl.exp(alpha - pt)
    loss = (total + tl.where(has, corr, 0.0)) / C
    tl.store(out_ptr + b * S + offs_s, tl.where(valid, loss, 0.0), mask=offs_s < S)


@triton.jit
def _ngl_bwd_kernel(z_ptr, lab_ptr, gout_ptr, grad_ptr, coef_ptr, C, S,
                    s_zb, s_zc, s_zs, s_lb, s_ls, s_gb, s_gc, s_gs, alpha, ignore_index,
                    SIGMOID: tl.constexpr, ONE_CHANNEL: tl.constexpr, DEG: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    b = tl.program_id(0)
    offs_s = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_c = tl.arange(0, BLOCK_C)
    p, mask = _load_probs(z_ptr, b, offs_c, offs_s, C, S, s_zb, s_zc, s_zs, SIGMOID)
    g = _horner(p, coef_ptr, DEG)
    valid, has, idx = _target(lab_ptr, b, offs_s, S, s_lb, s_ls, ignore_index, ONE_CHANNEL)
    is_t = offs_c[:, None] == idx[None, :]
    pt = tl.sum(tl.where(is_t, p, 0.0), axis=0)
    g_target = tl.exp(alpha - pt) - 2.0 * tl.exp(alpha - 2.0 * pt)
    g = tl.where(is_t & has[None, :], g + g_target[None, :], g)
    gout = tl.load(gout_ptr + b * S + offs_s, mask=offs_s < S, other=0.0).to(tl.float32)
    scale = tl.where(valid, gout, 0.0) / C
    if SIGMOID:
        dz = g * p * (1.0 - p)
    else:
        dz = p * (g - tl.sum(tl.where(mask, g * p, 0.0), axis=0)[None, :])
    dz = dz * scale[None, :]
    tl.store(grad_ptr + b * s_gb + offs_c[:, None] * s_gc + offs_s[None, :] * s_gs,
             dz.to(grad_ptr.dtype.element_ty), mask=mask)


@lru_cache(maxsize=64)
def _launch_config(num_classes):
    if num_classes > MAX_CLASSES:
        raise ValueError(f'the Triton NGL kernel supports up to {MAX_CLASSES} classes, '
                         f'got {num_classes}')
    block_c = triton.next_power_of_2(num_classes)
    # Measured on an H200 (fwd + bwd, fp32): small tiles with few warps win;
    # 21 classes: 32 pixels x 2 warps; 171 classes: 16 pixels x 4 warps.
    block_s = max(16, min(64, 1024 // block_c))
    num_warps = 4 if block_c * block_s >= 4096 else 2
    return block_c, block_s, num_warps


@lru_cache(maxsize=16)
def _coef_tensors(alpha, device):
    f, df = ngl_coefficients(alpha)
    return (torch.tensor(f, dtype=torch.float32, device=device),
            torch.tensor(df, dtype=torch.float32, device=device))


def forward(z, label, alpha, use_sigmoid, ignore_index):
    """Per-pixel loss (B, S) float32 for logits (B, C, S), labels (B, S)."""
    B, C, S = z.shape
    out = torch.empty((B, S), dtype=torch.float32, device=z.device)
    block_c, block_s, num_warps = _launch_config(C)
    coef_f, _ = _coef_tensors(alpha, z.device)
    grid = (B, triton.cdiv(S, block_s))
    _ngl_fwd_kernel[grid](z, label, out, coef_f, C, S, *z.stride(), *label.stride(),
                          float(alpha), int(ignore_index), SIGMOID=bool(use_sigmoid),
                          ONE_CHANNEL=C == 1, DEG=DEGREE, BLOCK_C=block_c, BLOCK_S=block_s,
                          num_warps=num_warps)
    return out


def backward(z, label, grad_out, alpha, use_sigmoid, ignore_index):
    """Gradient w.r.t. logits (B, C, S), in their dtype."""
    B, C, S = z.shape
    grad = torch.empty_like(z)
    grad_out = grad_out.float().contiguous()
    block_c, block_s, num_warps = _launch_config(C)
    _, coef_df = _coef_tensors(alpha, z.device)
    grid = (B, triton.cdiv(S, block_s))
    _ngl_bwd_kernel[grid](z, label, grad_out, grad, coef_df, C, S, *z.stride(),
                          *label.stride(), *grad.stride(), float(alpha), int(ignore_index),
                          SIGMOID=bool(use_sigmoid), ONE_CHANNEL=C == 1, DEG=DEGREE,
                          BLOCK_C=block_c, BLOCK_S=block_s, num_warps=num_warps)
    return grad
