#!/usr/bin/env python
"""Train an mmseg config with several losses (same seed, same settings) and compare.

    python tools/compare_losses.py CONFIG [--losses ce ngl ...] [--gpus N]
                                   [--work-dir D] [--cfg-options k=v ...]

Losses are presets (ce, ngl, ngl+ce, ngl-scaling, ce-avg-non-ignore) or
NAME=<dict literal>, e.g. "ngl_a2={'type': 'NGLLoss', 'alpha': 2.0}".
Writes report.md, report.json, curves.png and predictions.png in --work-dir.
"""
from ngl_mmseg.experiments.compare import main  # filters pkg_resources' warning itself

if __name__ == '__main__':
    main()
