"""Time and peak memory of NGL's implementations against mmseg's CrossEntropyLoss.

Everything runs in one process on the same tensors: forward + backward of the
loss on logits of a given shape, median over repeats after warm-up. Peak extra
memory is what the pass allocates beyond the inputs: on CUDA from the caching
allocator's peak statistics; on CPU from the kernel's high-water mark of the
process. On CPU the timed passes keep freed memory in the process and the memory
passes count every byte anew (``cpu_heap``: glibc's thresholds, and why).
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import time

import torch

from .cpu_heap import PeakMemory, keep_freed_memory

SHAPES = {
    'voc': (2, 21, 512, 512),  # Pascal VOC 2012: 21 classes, 512x512 crops, 2 a GPU
    'coco-stuff': (2, 171, 256, 256),  # COCO-Stuff164k: 171 classes
    # The plateau study's CPU budget model: a batch of 8 at 64x64, a head's logits
    # (docs/study-cost.md); asked for by name, not part of the default run.
    'budget-voc': (8, 21, 64, 64),
    'budget-coco-stuff': (8, 171, 64, 64),
}
DEFAULT_SHAPES = ('voc', 'coco-stuff')

def _ce_loss():
    """mmseg's CrossEntropyLoss(avg_non_ignore=True); where mmseg can't be
    imported (a bare GPU box), the same computation written with torch."""
    try:
        from mmseg.models.losses import CrossEntropyLoss
        loss = CrossEntropyLoss(avg_non_ignore=True)
        return (lambda logits, label: loss(logits, label, ignore_index=255),
                'mmseg CrossEntropyLoss(avg_non_ignore=True)')
    except ImportError:
        import torch.nn.functional as F

        def ce(logits, label):
            loss = F.cross_entropy(logits, label, ignore_index=255, reduction='none')
            return loss.sum() / (label != 255).sum().clamp_min(1)
        return ce, 'F.cross_entropy (mmseg CE semantics; mmseg not importable)'


def variants(device):
    """name -> loss callable (logits, label) -> scalar, and a note per name."""
    from ngl_mmseg.ops import ngl_pixel_loss, triton_available

    def ngl(impl):
        def fn(logits, label):
            loss = ngl_pixel_loss(logits, label, impl=impl)
            return loss.sum() / (label != 255).sum().clamp_min(1)
        return fn

    ce, ce_note = _ce_loss()
    out = {'ce': (ce, ce_note), 'ngl-literal': (ngl('literal'), 'literal formula, autograd'),
           'ngl-torch': (ngl('torch'), 'fused, eager chunks'),
           'ngl-compile': (ngl('compile'), 'fused, torch.compile')}
    if torch.device(device).type == 'cuda' and triton_available('cuda'):
        out['ngl-triton'] = (ngl('triton'), 'fused, Triton kernels')
    return out


def make_inputs(shape, device, dtype=torch.float32, seed=0, scale=2.0, ignore_every=None):
    """Random logits ``scale * N(0, 1)`` of ``shape`` (N, C, ...) and labels, 255 on 5%
    of the pixels (or on every ``ignore_every``-th one): the inputs of the benchmark
    and of ``gpu_check``."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g).mul_(scale).to(device=device, dtype=dtype)
    label_shape = (shape[0], ) + tuple(shape[2:])
    label = torch.randint(0, shape[1], label_shape, generator=g)
    if ignore_every:
        label.view(-1)[::ignore_every] = 255
    else:
        label[torch.rand(label_shape, generator=g) < 0.05] = 255
    return logits, label.to(device)


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def _timed_call(fn, x, label, device):
    x.grad = None
    _sync(device)
    t0 = time.perf_counter()
    fn(x, label).backward()
    _sync(device)
    return time.perf_counter() - t0


def time_losses(fns, logits, label, device, repeats, warmup):
    """Per loss: (median seconds, peak extra bytes, first-call seconds) of
    forward+backward. Timed calls are interleaved round by round across the
    losses, so drift of the machine (clocks, neighbours) hits all alike."""
    xs = {name: logits.detach().clone().requires_grad_() for name in fns}
    first, times, peaks = {}, {name: [] for name in fns}, {}
    for name, fn in fns.items():
        first[name] = _timed_call(fn, xs[name], label, device)
        for _ in range(max(0, warmup - 1)):
            _timed_call(fn, xs[name], label, device)
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed_call(fn, xs[name], label, device))
    for name, fn in fns.items():
        measured = []
        for _ in range(2):
            xs[name].grad = None
            with PeakMemory(device) as mem:
                fn(xs[name], label).backward()
            measured.append(mem.peak)
        peaks[name] = max(0, min(measured))
    return {name: (statistics.median(times[name]), peaks[name], first[name]) for name in fns}


def gpu_kernel_seconds(fn, logits, label, repeats=10):
    """Device time of the kernels of one forward+backward (profiler, summed).

    Wall time of a lone loss call on a GPU is mostly the host launching small
    kernels; in training the host runs ahead and that cost hides behind the
    network's kernels. This is the part that does not hide.
    """
    from torch.profiler import ProfilerActivity, profile
    x = logits.detach().clone().requires_grad_()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            x.grad = None
            fn(x, label).backward()
        torch.cuda.synchronize()
    total_us = sum(e.self_device_time_total for e in prof.key_averages()
                   if e.device_type == torch.autograd.DeviceType.CUDA)
    return total_us / repeats / 1e6


def bandwidth_gbps(shape, seconds, dtype=torch.float32):
    """Effective GB/s of a fused NGL: logits read forward, read + grad written backward."""
    elements = 1
    for s in shape:
        elements *= s
    return 3 * elements * torch.tensor([], dtype=dtype).element_size() / seconds / 1e9


def benchmark_losses(shapes=DEFAULT_SHAPES, device='cpu', repeats=5, warmup=2, only=None,
        dtype=torch.float32, log=print):
    """Benchmark every variant on each of ``shapes`` (names in ``SHAPES``); returns a
    JSON-ready dict."""
    if torch.device(device).type == 'cpu':
        keep_freed_memory()
    results = {'device': str(device), 'torch': torch.__version__, 'threads':
               torch.get_num_threads(), 'machine': platform.processor() or platform.machine(),
               'repeats': repeats, 'dtype': str(dtype), 'rows': []}
    if torch.device(device).type == 'cuda':
        results['gpu'] = torch.cuda.get_device_name(device)
    for shape_name in shapes:
        shape = SHAPES[shape_name]
        logits, label = make_inputs(shape, device, dtype)
        rows = []
        chosen = {name: v for name, v in variants(device).items()
                  if not only or name in only or name == 'ce'}
        log(f'  {shape_name} {tuple(shape)}: {", ".join(chosen)} ...')
        measured = time_losses({name: fn for name, (fn, _) in chosen.items()}, logits, label,
                               device, repeats, warmup)
        for name, (fn, note) in chosen.items():
            seconds, peak, first = measured[name]
            row = dict(shape_name=shape_name, shape=list(shape), variant=name, note=note,
                       ms=seconds * 1e3, peak_mb=peak / 2**20, first_call_ms=first * 1e3,
                       gbps=bandwidth_gbps(shape, seconds, dtype))
            if torch.device(device).type == 'cuda':
                kernel = gpu_kernel_seconds(fn, logits, label)
                row.update(kernel_ms=kernel * 1e3, kernel_gbps=bandwidth_gbps(shape, kernel, dtype))
            rows.append(row)
        ce = next(r for r in rows if r['variant'] == 'ce')
        for r in rows:
            r['time_ratio'] = r['ms'] / ce['ms']
            if 'kernel_ms' in r:
                r['kernel_ratio'] = r['kernel_ms'] / ce['kernel_ms']
            r['mem_ratio'] = r['peak_mb'] / ce['peak_mb'] if ce['peak_mb'] > 0 else float('nan')
        results['rows'] += rows
    return results


def format_table(results):
    gpu = any('kernel_ms' in r for r in results['rows'])
    head = '| shape | variant | fwd+bwd ms | x CE | peak extra MB | x CE | first call ms |'
    rule = '|---|---|---:|---:|---:|---:|---:|'
    if gpu:
        head += ' GPU kernel ms | x CE | kernel GB/s |'
        rule += '---:|---:|---:|'
    lines = [head, rule]
    for r in results['rows']:
        line = (f"| {r['shape_name']} {'x'.join(map(str, r['shape']))} | {r['variant']} | "
                f"{r['ms']:.2f} | {r['time_ratio']:.2f} | {r['peak_mb']:.0f} | "
                f"{r['mem_ratio']:.2f} | {r['first_call_ms']:.0f} |")
        if gpu:
            line += f" {r['kernel_ms']:.3f} | {r['kernel_ratio']:.2f} | {r['kernel_gbps']:.0f} |"
        lines.append(line)
    return '\n'.join(lines)


def save(results, json_path, png_path=None):
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(results, f, indent=2)
    if png_path:
        plot(results, png_path)


def plot(results, png_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shapes = list(dict.fromkeys(r['shape_name'] for r in results['rows']))
    names = list(dict.fromkeys(r['variant'] for r in results['rows']))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(names)
    for key, ax, title in (('time_ratio', axes[0], 'forward+backward time / CE'),
                           ('mem_ratio', axes[1], 'peak extra memory / CE')):
        for i, name in enumerate(names):
            vals = [next((r[key] for r in results['rows']
                          if r['variant'] == name and r['shape_name'] == s), 0) for s in shapes]
            ax.bar([j + i * width for j in range(len(shapes))], vals, width, label=name)
        ax.axhline(1.0, color='k', lw=0.8, ls='--')
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(shapes))])
        ax.set_xticklabels(shapes)
        ax.set_title(title)
        ax.set_yscale('log')
    axes[0].legend(fontsize=8)
    fig.suptitle(f"NGL vs mmseg CrossEntropyLoss on {results.get('gpu', results['device'])}")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def iteration_benchmark(config, size=512, batch=2, repeats=3, device='cpu', log=print):
    """One training step (forward, backward and an SGD step of a real model) with
    its loss as configured (NGL) and with mmseg's CE swapped in: same weights,
    same batch, steps alternated between the two; median of ``repeats``. Outside a
    Runner the warm-ups are off: this is a steady-state step."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from ngl_mmseg.compat import sync_bn_to_bn

    from .presets import apply_loss_preset
    register_all_modules()
    models, times = {}, {}
    for preset in ('ce', 'ngl'):
        cfg = Config.fromfile(config)
        apply_loss_preset(cfg, preset)
        cfg.model.pretrained = None
        if cfg.model.get('backbone', {}).get('init_cfg'):
            cfg.model.backbone.init_cfg = None
        sync_bn_to_bn(cfg.model)
        cfg.model.data_preprocessor.size = (size, size)
        torch.manual_seed(0)
        models[preset] = MODELS.build(cfg.model).to(device).train()
        times[preset] = []
    optimizers = {preset: torch.optim.SGD(model.parameters(), lr=1e-6)
                  for preset, model in models.items()}
    num_classes = cfg.model.decode_head.num_classes
    inputs, samples = fake_batch(batch, size, num_classes, device)

    def step(preset):
        model = models[preset]
        model.zero_grad(set_to_none=True)
        _sync(device)
        t0 = time.perf_counter()
        losses = model.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizers[preset].step()
        _sync(device)
        return time.perf_counter() - t0

    for preset in models:
        step(preset)  # warm-up
    for _ in range(repeats):
        for preset in models:
            times[preset].append(step(preset))
    out = []
    for preset in models:
        ms = statistics.median(times[preset]) * 1e3
        log(f'  iteration {preset}: {ms:.0f} ms')
        out.append(dict(config=os.path.basename(config), preset=preset, size=size, batch=batch,
                        repeats=repeats, ms=ms, ms_all=[t * 1e3 for t in times[preset]]))
    out[1]['ratio'] = out[1]['ms'] / out[0]['ms']
    return out


def fake_batch(batch, size, num_classes, device):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, generator=g).to(device)
    samples = []
    for _ in range(batch):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size),
                                                    generator=g).to(device))
        s.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size),
                            ori_shape=(size, size)))
        samples.append(s)
    return inputs, samples


def copy_bandwidth_gbps(device, nbytes=1 << 30, repeats=20):
    """The device's measured memory bandwidth: a large device-to-device copy,
    bytes read plus bytes written per second (the ceiling for a fused loss)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    _sync(device)
    return 2 * nbytes * repeats / (time.perf_counter() - t0) / 1e9


def parse_args():
    parser = argparse.ArgumentParser(
        description="Benchmark NGL against mmseg's CrossEntropyLoss (ratios in one process).")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--shapes', nargs='+', default=list(DEFAULT_SHAPES),
                        choices=list(SHAPES))
    parser.add_argument('--only', nargs='+', help='NGL variants to run (CE always runs)')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float16', 'bfloat16'])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--iteration', metavar='CONFIG',
                        help='also time one training step of CONFIG with NGL and with CE')
    parser.add_argument('--iter-size', type=int, default=512)
    parser.add_argument('--iter-batch', type=int, default=2)
    parser.add_argument('--iter-repeats', type=int, default=3)
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    return parser.parse_args()


def main():
    """``python -m ngl_lab.benchmark`` (``tools/benchmark_loss.py``)."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'NGL benchmark: device={args.device}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, median of {args.repeats}', flush=True)
    results = benchmark_losses(args.shapes, args.device, args.repeats, args.warmup, args.only,
                  getattr(torch, args.dtype), log=lambda m: print(m, flush=True))
    if args.iteration:
        results['iteration'] = iteration_benchmark(
            args.iteration, args.iter_size, args.iter_batch, args.iter_repeats,
            device=args.device, log=lambda m: print(m, flush=True))
    table = format_table(results)
    print(table)
    for row in results.get('iteration', []):
        print(f"iteration {row['config']} {row['batch']}x{row['size']}^2 {row['preset']}: "
              f"{row['ms']:.0f} ms" + (f" ({row['ratio']:.3f}x CE)" if 'ratio' in row else ''))
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = osp.join(args.out_dir, 'benchmark.json')
    save(results, json_path, osp.join(args.out_dir, 'benchmark.png'))
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(table + '\n')
    print(f'wrote {json_path}, benchmark.md and benchmark.png in {args.out_dir}')


if __name__ == '__main__':
    main()
