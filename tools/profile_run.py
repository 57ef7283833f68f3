#!/usr/bin/env python
"""Where a training run spends its time (start-up, data, step, hooks, validation,
checkpoints), and with --flops where the model's multiply-adds are.

    python tools/profile_run.py CONFIG [--work-dir D] [--threads N] [--flops] [--out F.json]
    python tools/profile_run.py work_dirs/study/tuned/clean-adamw/<run>/config.py --threads 1

(= python -m ngl_lab.run_profile)
"""
from ngl_lab.run_profile import main

if __name__ == '__main__':
    main()
