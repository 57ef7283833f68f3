#!/usr/bin/env python
"""Benchmark NGL's implementations against mmseg's CrossEntropyLoss.

    python tools/benchmark_loss.py                       # CPU, VOC and COCO-Stuff shapes
    python tools/benchmark_loss.py --device cuda         # on a GPU (adds the Triton kernels)
    python tools/benchmark_loss.py --iteration configs/ngl/deeplabv3plus_r50-d8_ngl_4xb4-20k_voc12aug-512x512.py

Prints a Markdown table (ratios to CE measured in this run) and writes
benchmark.json and benchmark.png under --out-dir.
"""
import argparse
import os
import os.path as osp

import torch

from ngl_mmseg.experiments import benchmark


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--shapes', nargs='+', default=list(benchmark.SHAPES),
                        choices=list(benchmark.SHAPES))
    parser.add_argument('--only', nargs='+', help='NGL variants to run (CE always runs)')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float16', 'bfloat16'])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--iteration', metavar='CONFIG',
                        help='also time one training step of CONFIG with NGL and with CE')
    parser.add_argument('--iter-size', type=int, default=512)
    parser.add_argument('--iter-batch', type=int, default=2)
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'NGL benchmark: device={args.device}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, median of {args.repeats}', flush=True)
    results = benchmark.run(args.shapes, args.device, args.repeats, args.warmup, args.only,
                            getattr(torch, args.dtype),
                            log=lambda m: print(m, flush=True))
    if args.iteration:
        results['iteration'] = benchmark.iteration_benchmark(
            args.iteration, args.iter_size, args.iter_batch, device=args.device,
            log=lambda m: print(m, flush=True))
    table = benchmark.format_table(results)
    print(table)
    for row in results.get('iteration', []):
        print(f"iteration {row['config']} {row['batch']}x{row['size']}^2 {row['preset']}: "
              f"{row['ms']:.0f} ms" + (f" ({row['ratio']:.3f}x CE)" if 'ratio' in row else ''))
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = osp.join(args.out_dir, 'benchmark.json')
    benchmark.save(results, json_path, osp.join(args.out_dir, 'benchmark.png'))
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(table + '\n')
    print(f'wrote {json_path}, benchmark.md and benchmark.png in {args.out_dir}')


if __name__ == '__main__':
    main()
