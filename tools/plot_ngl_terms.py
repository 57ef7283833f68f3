#!/usr/bin/env python
"""Figure for the docs: the per-class NGL term and its gradient as functions of
p, for y=0 and y=1, next to cross entropy.

    python tools/plot_ngl_terms.py --out docs/ngl_terms.png
"""
import argparse

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from ngl_mmseg.ops import ALPHA


def ngl_term(p, y, alpha=ALPHA):
    return np.exp(alpha - p * (1 + y)) - np.cos(np.cos(np.sin(p)))


def ngl_grad(p, y, alpha=ALPHA):
    return (-(1 + y) * np.exp(alpha - p * (1 + y))
            - np.sin(np.cos(np.sin(p))) * np.sin(np.sin(p)) * np.cos(p))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='docs/ngl_terms.png')
    parser.add_argument('--alpha', type=float, default=ALPHA)
    args = parser.parse_args()
    p = np.linspace(1e-3, 1, 500)
    fig, (ax_val, ax_grad) = plt.subplots(1, 2, figsize=(11, 4))
    for y, style in ((1, '-'), (0, '--')):
        ax_val.plot(p, ngl_term(p, y, args.alpha), style, color='C0', label=f'NGL term, y={y}')
        ax_grad.plot(p, ngl_grad(p, y, args.alpha), style, color='C0', label=f'NGL d/dp, y={y}')
    ax_val.plot(p, -np.log(p), color='C1', label='CE term, y=1 (0 for y=0)')
    ax_grad.plot(p, -1 / p, color='C1', label='CE d/dp, y=1 (0 for y=0)')
    ax_val.set(title=f'per-class term (alpha={args.alpha:g})', xlabel='p', ylim=(0, 12))
    ax_grad.set(title='derivative w.r.t. p', xlabel='p', ylim=(-25, 1))
    for ax in (ax_val, ax_grad):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.text(0.5, -0.02, 'NGL averages the term over the C classes; CE sums -y log p. '
             'The softmax Jacobian then scales both gradients by p.', ha='center', fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110, bbox_inches='tight')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
