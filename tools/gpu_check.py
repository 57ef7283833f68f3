#!/usr/bin/env python
"""On a CUDA machine: check every NGL path against the float64 formula on the
GPU, then benchmark them against CE and the device's copy bandwidth.

    python tools/gpu_check.py --out work_dirs/gpu_check

Needs only torch (and Triton for the kernels); mmseg is used when importable.
"""
from ngl_mmseg.experiments.gpu_check import main

if __name__ == '__main__':
    main()
