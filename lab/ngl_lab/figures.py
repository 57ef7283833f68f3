"""The figure of the docs: the per-class NGL term and its derivative against p,
for y = 0 and y = 1, next to cross entropy (``tools/plot_ngl_terms.py``).

    python -m ngl_lab.figures --out docs/ngl_terms.png
"""
import argparse

import numpy as np

from ngl_mmseg.ops.formula import ALPHA, ngl_term_derivatives_np, ngl_terms_np


def plot_ngl_terms(out, alpha=ALPHA):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    p = np.linspace(1e-3, 1, 500)
    (f, f_t), (df, df_t) = ngl_terms_np(p, alpha), ngl_term_derivatives_np(p, alpha)
    fig, (ax_val, ax_grad) = plt.subplots(1, 2, figsize=(11, 4))
    for y, term, grad, style in ((1, f_t, df_t, '-'), (0, f, df, '--')):
        ax_val.plot(p, term, style, color='C0', label=f'NGL term, y={y}')
        ax_grad.plot(p, grad, style, color='C0', label=f'NGL d/dp, y={y}')
    ax_val.plot(p, -np.log(p), color='C1', label='CE term, y=1 (0 for y=0)')
    ax_grad.plot(p, -1 / p, color='C1', label='CE d/dp, y=1 (0 for y=0)')
    ax_val.set(title=f'per-class term (alpha={alpha:g})', xlabel='p', ylim=(0, 12))
    ax_grad.set(title='derivative w.r.t. p', xlabel='p', ylim=(-25, 1))
    for ax in (ax_val, ax_grad):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.text(0.5, -0.02, 'NGL averages the term over the C classes; CE sums -y log p. '
             'The softmax Jacobian then scales both gradients by p.', ha='center', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches='tight')
    plt.close(fig)


def main():
    """``python -m ngl_lab.figures`` (``tools/plot_ngl_terms.py``)."""
    parser = argparse.ArgumentParser(description='The per-class NGL term and its gradient '
                                     'as functions of p, next to cross entropy')
    parser.add_argument('--out', default='docs/ngl_terms.png')
    parser.add_argument('--alpha', type=float, default=ALPHA)
    args = parser.parse_args()
    plot_ngl_terms(args.out, args.alpha)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
