#!/usr/bin/env python
"""Train an mmseg config with several losses (same seed, same settings) and compare.

    python tools/compare_losses.py CONFIG [--losses ce ngl ...] [--gpus N]
                                   [--work-dir D] [--cfg-options k=v ...]

Losses are presets (the keys of LOSS_PRESETS in lab/ngl_lab/presets.py;
--help lists them) or NAME=<dict literal>, e.g. "ngl_a2={'type': 'NGLLoss', 'alpha': 2.0}"
(NAME: letters, digits and _ . + - only).
Writes report.md, report.json, curves.png and predictions.png in --work-dir.
"""
from ngl_lab.compare import main  # filters pkg_resources' warning itself

if __name__ == '__main__':
    main()
