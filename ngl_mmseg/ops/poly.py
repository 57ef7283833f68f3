"""Polynomial forms of the per-class NGL term, to float32 accuracy on p in [0, 1].

Per class the loss is ``f(p) = exp(alpha - p) - cos(cos(sin(p)))`` (plus a
target-class correction handled separately), and the backward pass needs
``f'(p)``. Evaluating these as polynomials replaces five transcendental calls
per element with a dozen fused multiply-adds. Both pieces are fitted once, in
float64 on Chebyshev nodes, without alpha; ``exp(alpha)`` only scales the
exponential part, so coefficients for any alpha are a linear combination.
"""
import math
from functools import lru_cache

import numpy as np
from numpy.polynomial import chebyshev, polynomial

from .formula import cos_term_derivative_np, cos_term_np

DEGREE = 11  # max error ~1e-9 (f) and ~1e-7 (f') in float64; fp32 rounding dominates


def _fit(fn):
    """Monomial coefficients in p (lowest first) of a Chebyshev fit on [0, 1]."""
    nodes = np.cos(np.pi * (np.arange(4 * DEGREE) + 0.5) / (4 * DEGREE))
    cheb = chebyshev.chebfit(nodes, fn((nodes + 1) / 2), DEGREE)
    in_u = chebyshev.cheb2poly(cheb)  # polynomial in u = 2p - 1
    in_p = np.zeros(1)
    for coef in in_u[::-1]:  # Horner substitution of u = 2p - 1
        in_p = polynomial.polyadd(polynomial.polymul(in_p, [-1.0, 2.0]), [coef])
    return in_p


_EXP_NEG = _fit(lambda p: np.exp(-p))  # exp(-p); its derivative is -exp(-p)
_H = _fit(cos_term_np)  # cos(cos(sin p))
_DH = _fit(cos_term_derivative_np)  # minus its derivative


@lru_cache(maxsize=32)
def ngl_coefficients(alpha):
    """Coefficients (highest degree first, for Horner) of f(p) and f'(p).

    Returns:
        tuple[tuple[float], tuple[float]]: ``(f, df)`` with
        ``f(p) = exp(alpha - p) - cos(cos(sin p))`` and its derivative.
    """
    scale = math.exp(alpha)
    f = scale * _EXP_NEG - _H
    df = -scale * _EXP_NEG - _DH
    return tuple(float(c) for c in f[::-1]), tuple(float(c) for c in df[::-1])
