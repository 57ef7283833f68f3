"""On a CUDA machine: every NGL path against the float64 formula on the GPU, then
the benchmark against CE and the device's copy bandwidth (``tools/gpu_check.py``).

    python -m ngl_mmseg.experiments.gpu_check --out work_dirs/gpu_check

Needs only torch (and Triton for the kernels); mmseg is used when importable.
"""
import argparse
import json
import os
import os.path as osp
import sys

import torch

from ..ops import ngl_literal, ngl_pixel_loss
from . import benchmark

CASES = [((2, 21, 33, 47), False), ((2, 171, 16, 20), False), ((2, 4, 9, 9), True),
         ((2, 21, 12, 12), True), ((64, 10), False)]


def check(impl, shape, scaling, dtype):
    x, label = benchmark.make_inputs(shape, 'cpu', seed=0, scale=3.0, ignore_every=7)
    x = x.to(dtype)
    up = torch.rand(label.shape, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    xa = x.cuda().requires_grad_()
    loss = ngl_pixel_loss(xa, label.cuda(), scaling=scaling, impl=impl)
    (loss.double() * up.cuda()).sum().backward()
    # The reference: the literal formula through autograd, in float64 on the CPU.
    xr = x.double().requires_grad_()
    ref = ngl_literal(xr, label, scaling=scaling)
    (ref * up).sum().backward()
    v_err = ((loss.double().cpu() - ref).abs().max() / ref.abs().max()).item()
    g_err = ((xa.grad.double().cpu() - xr.grad).abs().max() / xr.grad.abs().max()).item()
    return v_err, g_err


def main():
    """``python -m ngl_mmseg.experiments.gpu_check`` (``tools/gpu_check.py``)."""
    parser = argparse.ArgumentParser(description='Check every NGL path against the float64 '
                                     'formula on a CUDA GPU, then benchmark them')
    parser.add_argument('--out', default='work_dirs/gpu_check')
    parser.add_argument('--repeats', type=int, default=20)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, checks=[])
    ok = True
    for impl in ('triton', 'compile', 'torch'):
        for shape, sig in CASES:
            v, g = check(impl, shape, sig, torch.float32)
            passed = v < 1e-5 and g < 1e-5
            ok &= passed
            report['checks'].append(dict(impl=impl, shape=shape, scaling=sig, value_rel=v,
                                         grad_rel=g, passed=passed))
            print(f'check {impl:8s} {str(shape):18s} scaling={sig!s:5s} value {v:.1e} '
                  f'grad {g:.1e} {"ok" if passed else "FAIL"}', flush=True)
    report['copy_gbps'] = benchmark.copy_bandwidth_gbps('cuda')
    print(f"device copy bandwidth: {report['copy_gbps']:.0f} GB/s", flush=True)
    for dtype in (torch.float32, torch.bfloat16):
        res = benchmark.run(device='cuda', repeats=args.repeats, warmup=3, dtype=dtype,
                            log=lambda m: print(m, flush=True))
        for row in res['rows']:
            row['bandwidth_fraction'] = row['kernel_gbps'] / report['copy_gbps']
        report[str(dtype)] = res
        print(benchmark.format_table(res), flush=True)
        for row in res['rows']:
            print(f"  {row['shape_name']} {row['variant']}: kernels {row['kernel_gbps']:.0f} GB/s "
                  f"effective ({100 * row['bandwidth_fraction']:.0f}% of copy)", flush=True)
        if dtype == torch.float32:
            benchmark.plot(res, osp.join(args.out, 'benchmark_cuda.png'))
    with open(osp.join(args.out, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print('ALL CHECKS PASSED' if ok else 'SOME CHECKS FAILED')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
