#!/usr/bin/env python
"""Figure for the docs: the per-class NGL term and its gradient as functions of
p, for y=0 and y=1, next to cross entropy.

    python tools/plot_ngl_terms.py --out docs/ngl_terms.png
"""
from ngl_lab.figures import main

if __name__ == '__main__':
    main()
