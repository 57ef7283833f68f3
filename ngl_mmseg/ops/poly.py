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

from .formula import (
    cos_term_derivative_np,
    cos_term_np,
    ngl_term_derivatives_np,
    ngl_terms_np,
)

DEGREE = 11
# The fits' largest absolute error on [0, 1] in float64 (``fit_errors``, measured on a
# 10^6-point grid and tested): 1.5e-10 for f and 4.2e-9 for f' at the default alpha and
# any |alpha| <= 8 (the cos(cos(sin p)) part sets it; the exp part fits to ~4e-15 e^alpha,
# which only matters near alpha = 20). These bounds are what docs/benchmark.md states;
# float32 rounding of the terms themselves (~1e-6 at alpha = 2.4) is far larger.
MAX_ERROR_F = 2e-10
MAX_ERROR_DF = 5e-9


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
def ngl_coefficients(alpha: float):
    """Coefficients (highest degree first, for Horner) of f(p) and f'(p).

    Returns:
        tuple[tuple[float], tuple[float]]: ``(f, df)`` with
        ``f(p) = exp(alpha - p) - cos(cos(sin p))`` and its derivative.
    """
    scale = math.exp(alpha)
    f = scale * _EXP_NEG - _H
    df = -scale * _EXP_NEG - _DH
    return tuple(float(c) for c in f[::-1]), tuple(float(c) for c in df[::-1])


def fit_errors(alpha: float = 2.4092, points: int = 1000001):
    """The largest absolute error of the polynomial f and f' on [0, 1] against
    the functions in float64 numpy: ``(error_f, error_df)``."""
    p = np.linspace(0.0, 1.0, points)
    f, df = ngl_coefficients(alpha)
    return (float(np.abs(np.polyval(f, p) - ngl_terms_np(p, alpha)[0]).max()),
            float(np.abs(np.polyval(df, p) - ngl_term_derivatives_np(p, alpha)[0]).max()))
