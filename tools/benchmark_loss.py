#!/usr/bin/env python
"""Benchmark NGL's implementations against mmseg's CrossEntropyLoss.

    python tools/benchmark_loss.py                       # CPU, VOC and COCO-Stuff shapes
    python tools/benchmark_loss.py --device cuda         # on a GPU (adds the Triton kernels)
    python tools/benchmark_loss.py --iteration \
        configs/ngl/deeplabv3plus_r50-d8_ngl_4xb4-20k_voc12aug-512x512.py
    python tools/benchmark_loss.py --iteration \
        configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py \
        --iter-size 64 --iter-batch 8 --iter-repeats 9   # the training step of the quickstart

Prints a Markdown table (ratios to CE measured in this run) and, with --iteration,
the training step's time with NGL and with CE; writes benchmark.json and
benchmark.png under --out-dir.
"""
from ngl_lab.benchmark import main

if __name__ == '__main__':
    main()
