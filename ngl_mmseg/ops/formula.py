"""The facts every implementation shares: the formula's constant and the dtype rule.

Per element, with ``p`` the softmax probabilities over the classes and ``y``
the one-hot target (Akhmedova & Koerber 2024, arXiv 2404.12948)::

    exp(alpha - p (1 + y)) - cos(cos(sin p)),      alpha = 2.4092

Per pixel the loss is the mean of that over the classes.
"""
import numpy as np
import torch

ALPHA = 2.4092


def cos_term_np(q):
    """``h(q) = cos(cos(sin q))``, the part of every term without alpha (float64 numpy)."""
    return np.cos(np.cos(np.sin(np.asarray(q, dtype=np.float64))))


def cos_term_derivative_np(q):
    """``-h'(q) = sin(cos(sin q)) sin(sin q) cos q`` (float64 numpy)."""
    q = np.asarray(q, dtype=np.float64)
    return np.sin(np.cos(np.sin(q))) * np.sin(np.sin(q)) * np.cos(q)


def ngl_terms_np(q, alpha=ALPHA):
    """The per-class terms in float64 numpy: ``(f(q), f_t(q))`` with
    ``f(q) = exp(a - q) - cos(cos(sin q))`` (a class that is not the target)
    and ``f_t(q) = exp(a - 2q) - cos(cos(sin q))`` (the target). The one
    numpy home of the formula in the package (``poly.py`` fits its pieces;
    the tests' float64 reference is written apart on purpose)."""
    q = np.asarray(q, dtype=np.float64)
    h = cos_term_np(q)
    return np.exp(alpha - q) - h, np.exp(alpha - 2 * q) - h


def ngl_term_derivatives_np(q, alpha=ALPHA):
    """``(f'(q), f_t'(q))``: the derivatives of ``ngl_terms_np`` (float64 numpy)."""
    q = np.asarray(q, dtype=np.float64)
    dh = cos_term_derivative_np(q)
    return -np.exp(alpha - q) - dh, -2 * np.exp(alpha - 2 * q) - dh


def compute_dtype(dtype):
    """The dtype the math runs in, and the loss's dtype: float64 for float64
    logits, float32 for everything else (float16/bfloat16 included: exp(alpha)
    and sums over classes need float32's range and precision)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
