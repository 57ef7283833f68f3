#!/usr/bin/env python
"""On a CUDA machine (run it first when a GPU is lent): check every NGL path against
the float64 formula on the GPU, the Triton kernels' self-check and its cost, host
syncs per training iteration, a forward and backward past 2^31 logits against the
eager path; then benchmark them against CE and the device's copy bandwidth.

    python tools/gpu_check.py --out work_dirs/gpu_check
    python tools/gpu_check.py --quick      # the checks only (a few minutes)

Needs only torch (and Triton for the kernels); mmseg is used when importable.
"""
from ngl_lab.gpu_check import main

if __name__ == '__main__':
    main()
