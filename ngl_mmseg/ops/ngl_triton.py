"""NGL per-pixel loss as Triton kernels (CUDA; on CPU through TRITON_INTERPRET=1).

Each program loads a whole ``[classes, pixels]`` tile once, so the forward pass
reads the logits once and the backward pass reads them once and writes the
gradient once: the loss is bound by memory traffic, as cross entropy is.
Same math as ``ngl_torch`` (its docstring derives it): polynomial f and f',
exact exp for the target term, the sigmoid of ``scaling`` applied to the
softmax probabilities, then the softmax vector-Jacobian product.

Kernel parameters (both kernels):
    z_ptr, lab_ptr        logits viewed as (B, C, S), labels as (B, S)
    out_ptr / grad_ptr    per-pixel loss (B, S) float32 / gradient like z
    gout_ptr              upstream per-pixel gradient (B, S), contiguous float32
    coef_ptr              DEG + 1 polynomial coefficients (f or f'), float32
    C, S                  classes and pixels per image
    s_zb, s_zc, s_zs      strides of z in elements (image, class, pixel);
                          s_lb, s_ls of the labels; s_gb, s_gc, s_gs of grad
    alpha, ignore_index   the formula's constant; the label that contributes 0
    SCALING               q = sigmoid(softmax(z)) instead of softmax(z)
    BLOCK_C, BLOCK_S      tile: every class (power of 2 >= C) x BLOCK_S pixels
Grid: (cdiv(S, BLOCK_S), B); a program owns BLOCK_S pixels of one image. The
pixel blocks are on the grid's first axis, which holds up to 2^31 - 1 programs
(the second holds 65535 at most: images fit there, pixel blocks of a large
image would not).

Addresses are computed in 64 bits: ``_tile`` casts the program ids and the
class offsets to int64 before any product with a stride, so
``b * s_zb + c * s_zc + s * s_zs`` cannot wrap at 2^31 elements (Triton
passes a stride below 2^31 as int32, and int32 * int32 stays int32). Every
pointer of both kernels (logits, labels, loss, upstream gradient, gradient)
goes through ``_tile_offsets`` / ``_pixel_offsets``, which the tests run on
offsets past 2^31.
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
def _tile(BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """This program's image ``b``, classes ``offs_c`` and pixels ``offs_s``, all
    int64: every address below is a sum of their products with strides."""
    b = tl.program_id(1).to(tl.int64)
    offs_s = tl.program_id(0).to(tl.int64) * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)
    offs_c = tl.arange(0, BLOCK_C).to(tl.int64)
    return b, offs_c, offs_s


@triton.jit
def _tile_offsets(b, offs_c, offs_s, s_b, s_c, s_s):
    """Element offsets (BLOCK_C, BLOCK_S) of a tile of a (B, C, S) tensor (int64)."""
    return b * s_b + offs_c[:, None] * s_c + offs_s[None, :] * s_s


@triton.jit
def _pixel_offsets(b, offs_s, s_b, s_s):
    """Element offsets (BLOCK_S,) of a tile of a (B, S) tensor (int64)."""
    return b * s_b + offs_s * s_s


@triton.jit
def _load_probs(z_ptr, b, offs_c, offs_s, C, S, s_zb, s_zc, s_zs):
    """Softmax over the classes (dim 0) of a (BLOCK_C, BLOCK_S) tile, in fp32;
    padded classes and pixels hold 0."""
    mask_c = offs_c < C
    mask = mask_c[:, None] & (offs_s < S)[None, :]
    z = tl.load(z_ptr + _tile_offsets(b, offs_c, offs_s, s_zb, s_zc, s_zs),
                mask=mask, other=0.0).to(tl.float32)
    z = tl.where(mask_c[:, None], z, float('-inf'))
    e = tl.exp(z - tl.max(z, axis=0)[None, :])
    p = e / tl.sum(e, axis=0)[None, :]
    return tl.where(mask, p, 0.0), mask


@triton.jit
def _target(lab_ptr, b, offs_s, S, s_lb, s_ls, ignore_index):
    """(valid, target channel) of each pixel; ignored pixels point at class 0."""
    lab = tl.load(lab_ptr + _pixel_offsets(b, offs_s, s_lb, s_ls), mask=offs_s < S,
                  other=ignore_index).to(tl.int32)
    valid = lab != ignore_index
    return valid, tl.where(valid, lab, 0)


@triton.jit
def _ngl_fwd_kernel(z_ptr, lab_ptr, out_ptr, coef_ptr, C, S,
                    s_zb, s_zc, s_zs, s_lb, s_ls, alpha, ignore_index,
                    SCALING: tl.constexpr, DEG: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    b, offs_c, offs_s = _tile(BLOCK_C, BLOCK_S)
    q, mask = _load_probs(z_ptr, b, offs_c, offs_s, C, S, s_zb, s_zc, s_zs)
    if SCALING:
        q = 1.0 / (1.0 + tl.exp(-q))
    # sum_c f(q_c), then the target's exp(a - 2 q_t) replaces its exp(a - q_t).
    total = tl.sum(tl.where(mask, _horner(q, coef_ptr, DEG), 0.0), axis=0)
    valid, idx = _target(lab_ptr, b, offs_s, S, s_lb, s_ls, ignore_index)
    qt = tl.sum(tl.where(offs_c[:, None] == idx[None, :], q, 0.0), axis=0)
    loss = (total + tl.exp(alpha - 2.0 * qt) - tl.exp(alpha - qt)) / C
    tl.store(out_ptr + _pixel_offsets(b, offs_s, S, 1), tl.where(valid, loss, 0.0),
             mask=offs_s < S)


@triton.jit
def _ngl_bwd_kernel(z_ptr, lab_ptr, gout_ptr, grad_ptr, coef_ptr, C, S,
                    s_zb, s_zc, s_zs, s_lb, s_ls, s_gb, s_gc, s_gs, alpha, ignore_index,
                    SCALING: tl.constexpr, DEG: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    b, offs_c, offs_s = _tile(BLOCK_C, BLOCK_S)
    p, mask = _load_probs(z_ptr, b, offs_c, offs_s, C, S, s_zb, s_zc, s_zs)
    if SCALING:
        q = 1.0 / (1.0 + tl.exp(-p))
    else:
        q = p
    g = _horner(q, coef_ptr, DEG)  # f'(q_c) = C dL/dq_c off the target
    valid, idx = _target(lab_ptr, b, offs_s, S, s_lb, s_ls, ignore_index)
    is_t = offs_c[:, None] == idx[None, :]
    qt = tl.sum(tl.where(is_t, q, 0.0), axis=0)
    # d/dq_t of exp(a - 2 q_t) - exp(a - q_t), the target's correction term.
    g_target = tl.exp(alpha - qt) - 2.0 * tl.exp(alpha - 2.0 * qt)
    g = tl.where(is_t, g + g_target[None, :], g)
    if SCALING:
        g = g * q * (1.0 - q)  # chain rule through q = sigmoid(p): C dL/dp_c
    gout = tl.load(gout_ptr + _pixel_offsets(b, offs_s, S, 1), mask=offs_s < S,
                   other=0.0).to(tl.float32)
    scale = tl.where(valid, gout, 0.0) / C
    # Softmax vector-Jacobian product: dL/dz_c = p_c (dL/dp_c - sum_k dL/dp_k p_k).
    dz = p * (g - tl.sum(tl.where(mask, g * p, 0.0), axis=0)[None, :])
    dz = tl.where(valid[None, :], dz * scale[None, :], 0.0)
    tl.store(grad_ptr + _tile_offsets(b, offs_c, offs_s, s_gb, s_gc, s_gs),
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


def _launch(kernel, z, label, buffers, buffer_strides, coef, alpha, scaling, ignore_index):
    """One program per (image, BLOCK_S pixels); argument order as in the kernels."""
    B, C, S = z.shape
    block_c, block_s, num_warps = _launch_config(C)
    kernel[(triton.cdiv(S, block_s), B)](
        z, label, *buffers, coef, C, S, *z.stride(), *label.stride(), *buffer_strides,
        float(alpha), int(ignore_index), SCALING=bool(scaling), DEG=DEGREE,
        BLOCK_C=block_c, BLOCK_S=block_s, num_warps=num_warps)


def forward(z: torch.Tensor, label: torch.Tensor, alpha: float, scaling: bool,
            ignore_index: int) -> torch.Tensor:
    """Per-pixel loss (B, S) float32 for logits (B, C, S), labels (B, S)."""
    out = torch.empty((z.shape[0], z.shape[2]), dtype=torch.float32, device=z.device)
    coef_f, _ = _coef_tensors(alpha, z.device)
    _launch(_ngl_fwd_kernel, z, label, (out,), (), coef_f, alpha, scaling, ignore_index)
    return out


def backward(z: torch.Tensor, label: torch.Tensor, grad_out: torch.Tensor, alpha: float,
             scaling: bool, ignore_index: int) -> torch.Tensor:
    """Gradient w.r.t. logits (B, C, S), in their dtype."""
    grad = torch.empty_like(z)
    _, coef_df = _coef_tensors(alpha, z.device)
    _launch(_ngl_bwd_kernel, z, label, (grad_out.float().contiguous(), grad), grad.stride(),
            coef_df, alpha, scaling, ignore_index)
    return grad
