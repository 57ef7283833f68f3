"""On a CUDA machine: every NGL path against the float64 formula on the GPU, the
Triton kernels' self-check and its cost, host syncs per training iteration, a
forward and backward past 2^31 logits against the eager path, then the benchmark
against CE and the device's copy bandwidth (``tools/gpu_check.py``).

    python -m ngl_lab.gpu_check --out work_dirs/gpu_check
    python -m ngl_lab.gpu_check --quick     # the checks only, no benchmark

Needs only torch (and Triton for the kernels); mmseg is used when importable.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
import warnings

import torch

from ngl_mmseg.ops import backends, checks, ngl_literal, ngl_pixel_loss

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


def self_check_costs(cases=((21, False, torch.float32), (171, False, torch.float32),
                             (21, True, torch.bfloat16), (171, False, torch.float16)),
                     device='cuda'):
    """The Triton kernels' self-check per variant: passed or why not, and its seconds
    (the kernels' first compile included, which the first call pays anyway)."""
    out = []
    for classes, scaling, dtype in cases:
        probe = torch.empty(1, classes, 1, device=device, dtype=dtype)
        result = backends.triton_self_check(probe, scaling)
        out.append(dict(classes=classes, scaling=scaling, dtype=str(dtype),
                        failure=result.failure, seconds=result.seconds,
                        value_error=result.value_error, grad_error=result.grad_error))
    again = time.perf_counter()
    backends.triton_self_check(torch.empty(1, 21, 1, device=device), False)  # cached
    return out, time.perf_counter() - again


def _training_step(model, loss, x, label, optimizer):
    optimizer.zero_grad(set_to_none=True)
    loss(model(x), label).backward()
    optimizer.step()


def host_syncs_per_iteration(iterations=10, classes=21, size=128, batch=4, device='cuda'):
    """Host syncs (``torch.cuda.set_sync_debug_mode('warn')``) per training iteration of
    a one-layer model with NGLLoss and the recipe, both warm-ups running (or, without
    mmseg, ``ngl_pixel_loss`` and the ops' label check), after the first
    ``checks.EXACT_DEVICE_CHECKS`` calls (which check labels exactly, with syncs).

    Returns ``(syncs in the first iterations, syncs per steady-state iteration, what ran)``.
    """
    device = torch.device(device)
    model = torch.nn.Conv2d(3, classes, 3, padding=1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 3, size, size, device=device)
    label = torch.randint(0, classes, (batch, size, size), device=device)
    label[:, ::7] = 255
    try:
        from mmengine.logging import MessageHub

        from ngl_mmseg.losses import NGLLoss
        hub = MessageHub.get_instance('gpu_check')
        hub.update_info('max_iters', 10 ** 6)
        hub.update_info('iter', 0)
        loss = NGLLoss(auto_weight=True, ce_warmup=0.1, target_bias_warmup=0.1).train()
        what = 'NGLLoss(auto_weight, ce_warmup, target_bias_warmup), impl auto'
    except ImportError:
        def loss(logits, target):
            checks.check_labels(target, logits.shape[1], 255)
            return ngl_pixel_loss(logits, target).sum() / (target != 255).sum()
        what = 'ngl_pixel_loss (mmseg not importable), impl auto'

    def count(n):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            if device.type == 'cuda':
                torch.cuda.set_sync_debug_mode('warn')
            try:
                for _ in range(n):
                    _training_step(model, loss, x, label, optimizer)
            finally:
                if device.type == 'cuda':
                    torch.cuda.set_sync_debug_mode(0)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return sum('synchronizing' in str(w.message) for w in caught)
    first = count(1)
    for _ in range(checks.EXACT_DEVICE_CHECKS):
        _training_step(model, loss, x, label, optimizer)
    return first, count(iterations) / iterations, what


def check_beyond_2_31(classes=65, pixels=2 ** 24 + 3, images=2, device='cuda'):
    """A forward and backward on logits of more than 2^31 elements (fp32, ~8.7 GB),
    Triton against the eager path: largest relative differences, value and gradient,
    overall and in the last image (whose addresses pass 2^31). (Smaller sizes only
    for the tests' run on CPU.)"""
    g = torch.Generator(device=device).manual_seed(0)
    z = torch.randn(images, classes, pixels, device=device, generator=g)
    label = torch.randint(0, classes, (images, pixels), device=device, generator=g)
    label[:, ::7] = 255
    up = torch.rand(images, pixels, device=device, generator=g)
    out = {}
    for impl in ('triton', 'torch'):
        x = z.clone().requires_grad_()
        loss = ngl_pixel_loss(x, label, impl=impl)
        (loss * up).sum().backward()
        out[impl] = (loss.detach(), x.grad)
        del x
    (lt, gt), (le, ge) = out['triton'], out['torch']

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()
    return dict(elements=images * classes * pixels, value_rel=rel(lt, le), grad_rel=rel(gt, ge),
                last_image_value_rel=rel(lt[-1], le[-1]), last_image_grad_rel=rel(gt[-1], ge[-1]))


def run_checks(report):
    """Every NGL path against the float64 formula, the Triton self-check and its cost,
    host syncs per training iteration and a pass past 2^31 logits: each printed and
    added to ``report``. Returns whether all passed."""
    report['checks'] = []
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
    costs, cached = self_check_costs()
    report['self_check'] = dict(cases=costs, cached_seconds=cached)
    for case in costs:
        ok &= case['failure'] is None
        print(f"self-check triton {case['classes']} classes scaling={case['scaling']} "
              f"{case['dtype']}: {case['seconds'] * 1e3:.0f} ms "
              f"{'ok' if case['failure'] is None else 'FAIL: ' + case['failure']}", flush=True)
    print(f'self-check once cached: {cached * 1e6:.0f} us', flush=True)
    first, steady, what = host_syncs_per_iteration()
    report['host_syncs'] = dict(first_iteration=first, per_steady_iteration=steady, loss=what)
    ok &= steady == 0
    print(f'host syncs per training iteration ({what}): first {first}, steady state {steady:g} '
          f"{'ok' if steady == 0 else 'FAIL'}", flush=True)
    big = check_beyond_2_31()
    assert big['elements'] > 2 ** 31
    report['beyond_2_31'] = big
    big_ok = max(big['value_rel'], big['last_image_value_rel']) < 1e-5 and \
        max(big['grad_rel'], big['last_image_grad_rel']) < 3e-5
    ok &= big_ok
    print(f"> 2^31 logits ({big['elements']}): triton vs eager value {big['value_rel']:.1e} "
          f"(last image {big['last_image_value_rel']:.1e}), grad {big['grad_rel']:.1e} "
          f"(last image {big['last_image_grad_rel']:.1e}) {'ok' if big_ok else 'FAIL'}",
          flush=True)
    return ok


def run_benchmark(report, out, repeats):
    """The device's copy bandwidth and the benchmark in float32 and bfloat16, printed
    and added to ``report``; the float32 figure written to ``out``."""
    report['copy_gbps'] = benchmark.copy_bandwidth_gbps('cuda')
    print(f"device copy bandwidth: {report['copy_gbps']:.0f} GB/s", flush=True)
    for dtype in (torch.float32, torch.bfloat16):
        res = benchmark.benchmark_losses(device='cuda', repeats=repeats, warmup=3, dtype=dtype,
                            log=lambda m: print(m, flush=True))
        for row in res['rows']:
            row['bandwidth_fraction'] = row['kernel_gbps'] / report['copy_gbps']
        report[str(dtype)] = res
        print(benchmark.format_table(res), flush=True)
        for row in res['rows']:
            print(f"  {row['shape_name']} {row['variant']}: kernels {row['kernel_gbps']:.0f} GB/s "
                  f"effective ({100 * row['bandwidth_fraction']:.0f}% of copy)", flush=True)
        if dtype == torch.float32:
            benchmark.plot(res, osp.join(out, 'benchmark_cuda.png'))


def finish(report, out, ok):
    """Write ``report`` to ``<out>/gpu_check.json``, print the verdict and exit: 0 when
    every check passed, else 1."""
    with open(osp.join(out, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print('ALL CHECKS PASSED' if ok else 'SOME CHECKS FAILED')
    sys.exit(0 if ok else 1)


def main():
    """``python -m ngl_lab.gpu_check`` (``tools/gpu_check.py``)."""
    parser = argparse.ArgumentParser(description='Check every NGL path against the float64 '
                                     'formula on a CUDA GPU, then benchmark them')
    parser.add_argument('--out', default='work_dirs/gpu_check')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--quick', action='store_true',
                        help='the checks only (no benchmark, no bandwidth)')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__)
    ok = run_checks(report)
    torch.cuda.empty_cache()
    if not args.quick:
        run_benchmark(report, args.out, args.repeats)
    finish(report, args.out, ok)


if __name__ == '__main__':
    main()
