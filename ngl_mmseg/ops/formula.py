"""The facts every implementation shares: the formula's constant and the dtype rule.

Per element, with ``p`` the softmax probabilities over the classes and ``y``
the one-hot target (Akhmedova & Koerber 2024, arXiv 2404.12948)::

    exp(alpha - p (1 + y)) - cos(cos(sin p)),      alpha = 2.4092

Per pixel the loss is the mean of that over the classes.
"""
import torch

ALPHA = 2.4092


def compute_dtype(dtype):
    """The dtype the math runs in, and the loss's dtype: float64 for float64
    logits, float32 for everything else (float16/bfloat16 included: exp(alpha)
    and sums over classes need float32's range and precision)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
