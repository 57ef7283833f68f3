"""Train one config with several losses under identical settings and compare them.

The engine of ``tools/compare_losses.py`` (``python -m ngl_mmseg.experiments.compare``)
and of the demo. Each variant trains through ngl-mmseg's train tool
(``python -m ngl_mmseg.cli.train``; under ``torch.distributed.run`` in ``gpus``
processes), so its logs and progress are mmseg's own; then its last checkpoint
is evaluated with mmseg's ``IoUMetric`` on the validation set by mmengine's test
loop, launched the same way (``ngl_mmseg.experiments.evaluate``), and the
variants are reported side by side (Markdown, JSON) with plots of the training
curves and of predictions next to the ground truth.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
import warnings

import numpy as np

from .presets import LOSS_PRESETS, apply_loss_preset, parse_loss_spec


def _print(msg):
    print(f'[compare_losses] {msg}', flush=True)


def prepare_variant(config, spec, work_dir, cfg_options=None, seed=0):
    """Write the config of one variant; returns (name, config path, losses)."""
    from mmengine.config import Config
    name, losses = parse_loss_spec(spec)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_loss_preset(cfg, losses)
    cfg.setdefault('randomness', {})
    cfg.randomness.setdefault('seed', seed)
    variant_dir = osp.join(work_dir, name)
    os.makedirs(variant_dir, exist_ok=True)
    cfg.work_dir = variant_dir
    path = osp.join(variant_dir, f'{name}_config.py')
    cfg.dump(path)
    return name, path, losses


def launch_command(module, args, gpus=1, port=None):
    """``python -m module args`` in one process, or in ``gpus`` processes under
    torchrun (``torch.distributed.run``, the launcher of ``tools/dist_train.sh``)
    with ``--launcher pytorch``; without CUDA they run on CPU with gloo."""
    if gpus <= 1:
        return [sys.executable, '-m', module, *map(str, args)]
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
            f'--master_port={port or 29500}', '-m', module, *map(str, args),
            '--launcher', 'pytorch']


def run_logged(cmd, log_path, what, progress_name=None, quiet=True):
    """Run ``cmd`` with its output in ``log_path``; on failure, raise with the log's end.
    Not ``quiet``: the output goes to the terminal instead."""
    if not quiet:
        subprocess.run(cmd, check=True)
        return
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if progress_name:
            _follow_progress(proc, log_path, progress_name)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = ''.join(log.readlines()[-30:])
        raise RuntimeError(f'{what} failed (exit {proc.returncode}); the end of '
                           f'{log_path}:\n{tail}')


def train_variant(config_path, work_dir, gpus=1, port=None, quiet=False, progress=True):
    """Train with ngl-mmseg's train tool in ``gpus`` processes; returns seconds.

    ``quiet``: mmengine's output goes to ``work_dir/train.log`` instead of the
    terminal (with ``progress``, one progress line stands in for it); if
    training fails, its last lines are shown in the error.
    """
    cmd = launch_command('ngl_mmseg.cli.train', [config_path, '--work-dir', work_dir], gpus,
                         port)
    start = time.time()
    run_logged(cmd, osp.join(work_dir, 'train.log'), f'training {config_path}',
               osp.basename(osp.normpath(work_dir)) if progress else None, quiet)
    return time.time() - start


_ITER = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?eta: (\S+).*?loss: ([\d.e+-]+)')
_PROGRESS = re.compile(r'ngl_progress: ([\d.e+-]+)')


def _follow_progress(proc, log_path, name, every=2.0):
    """One progress line per run while ``proc`` trains: redrawn in place on a
    terminal, else printed at each quarter of the iterations."""
    tty = sys.stdout.isatty()
    shown_quarter = 0
    last = ''
    while proc.poll() is None:
        time.sleep(every)
        with open(log_path, errors='replace') as f:
            tail = f.read()[-20000:]
        matches = _ITER.findall(tail)
        if not matches:
            continue
        it, total, eta, loss = matches[-1]
        progress = _PROGRESS.findall(tail)
        extra = f', NGL progress {float(progress[-1]):.2f}' if progress else ''
        line = (f'[compare_losses] {name}: iter {it}/{total}, loss {float(loss):.4g}{extra}, '
                f'eta {eta}')
        if tty and line != last:
            print('\r' + line.ljust(100), end='', flush=True)
        elif not tty and int(it) * 4 // int(total) > shown_quarter:
            shown_quarter = int(it) * 4 // int(total)
            print(line, flush=True)
        last = line
    if tty and last:
        print(flush=True)


def read_scalars(work_dir):
    """Training and validation scalars that mmengine's LocalVisBackend logged."""
    train, val = [], []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                (val if 'mIoU' in row else train).append(row)
    return train, val


def last_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no checkpoint was saved in {work_dir} (missing {path})')
    with open(path) as f:
        return f.read().strip()


def evaluate(config_path, checkpoint, work_dir, gpus=1, port=None, quiet=True,
             num_samples=0):
    """mIoU, mAcc, aAcc and per-class IoU of ``checkpoint`` on the val set:
    mmengine's test loop with mmseg's IoUMetric, in ``gpus`` processes
    (``ngl_mmseg.experiments.evaluate``; its log: ``work_dir/eval.log``). With
    ``num_samples``, also ``samples`` (the first predictions) and ``palette``."""
    from .evaluate import load_samples
    out = osp.join(work_dir, 'eval_metrics.json')
    cmd = launch_command('ngl_mmseg.experiments.evaluate',
                         [config_path, checkpoint, '--out', out, '--work-dir',
                          osp.join(work_dir, 'eval'), '--num-samples', num_samples], gpus, port)
    run_logged(cmd, osp.join(work_dir, 'eval.log'), f'evaluating {checkpoint}', quiet=quiet)
    with open(out) as f:
        metrics = json.load(f)
    if num_samples:
        metrics['samples'], metrics['palette'] = load_samples(out)
    return metrics


def format_report(results):
    """Markdown: the summary table, then per-class IoU of the classes scored."""
    lines = ['| variant | losses | mIoU | mAcc | aAcc | train time |',
             '|---|---|---:|---:|---:|---:|']
    for r in results:
        losses = ' + '.join(f"{d['type']}({d.get('loss_weight', 1.0):g})" for d in r['losses'])
        lines.append(f"| {r['name']} | {losses} | {r['mIoU']:.2f} | {r['mAcc']:.2f} | "
                     f"{r['aAcc']:.2f} | {r['train_seconds']:.0f} s |")
    classes = [c for c in results[0]['per_class_iou']
               if any(r['per_class_iou'].get(c) is not None for r in results)]
    lines += ['', '| class | ' + ' | '.join(r['name'] for r in results) + ' |',
              '|---|' + '---:|' * len(results)]
    for c in classes:
        cells = [r['per_class_iou'].get(c) for r in results]
        lines.append(f'| {c} | ' + ' | '.join('-' if v is None else f'{v:.2f}' for v in cells)
                     + ' |')
    return '\n'.join(lines)


def plot_curves(results, path):
    """Training loss of each variant (own axis: NGL sits near 10 and moves in
    the decimals, CE falls from ~3), and validation mIoU of all."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(results)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.6 * (n + 1), 3.6))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for k, (r, ax) in enumerate(zip(results, axes)):
        rows = [row for row in r['train'] if 'loss' in row]
        ax.plot([row['step'] for row in rows], [row['loss'] for row in rows],
                color=colours[k % len(colours)])
        ax.set(title=f"{r['name']}: training loss", xlabel='iteration')
        axes[n].plot([row['step'] for row in r['val']], [row['mIoU'] for row in r['val']],
                     marker='o', color=colours[k % len(colours)], label=r['name'])
    axes[n].set(title='validation mIoU', xlabel='iteration', ylabel='mIoU (%)')
    axes[n].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictions(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from PIL import Image
    palette = np.array(results[0]['palette'] + [[255, 255, 255]] * 256, dtype=np.uint8)

    def colour(label):
        return palette[np.where(label == 255, len(results[0]['palette']), label)]

    rows = len(results[0]['samples'])
    cols = 2 + len(results)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.0 * rows), squeeze=False)
    for i in range(rows):
        sample = results[0]['samples'][i]
        panels = [np.array(Image.open(sample['img_path']).convert('RGB')), colour(sample['gt'])]
        titles = ['image', 'ground truth']
        for r in results:
            panels.append(colour(r['samples'][i]['pred']))
            titles.append(f"{r['name']}")
        for j, (panel, title) in enumerate(zip(panels, titles)):
            axes[i, j].imshow(panel, interpolation='nearest')
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(config, specs=('ce', 'ngl'), work_dir='work_dirs/compare', gpus=1,
            cfg_options=None, seed=0, num_samples=4, verbose=False):
    """Train and evaluate every variant; write report.md, report.json,
    curves.png and predictions.png in ``work_dir``. Returns the results.

    mmengine's logs go to ``<work_dir>/<variant>/train.log`` (``verbose``:
    to the terminal as well)."""
    os.makedirs(work_dir, exist_ok=True)
    results = []
    for k, spec in enumerate(specs):
        name, cfg_path, losses = prepare_variant(config, spec, work_dir, cfg_options, seed)
        variant_dir = osp.dirname(cfg_path)
        _print(f'({k + 1}/{len(specs)}) training {name}: {losses} -> {variant_dir}')
        seconds = train_variant(cfg_path, variant_dir, gpus, port=29500 + 17 * k,
                                quiet=not verbose)
        checkpoint = last_checkpoint(variant_dir)
        _print(f'{name}: trained in {seconds:.0f} s; evaluating its last checkpoint'
               + (f' in {gpus} processes' if gpus > 1 else ''))
        metrics = evaluate(cfg_path, checkpoint, variant_dir, gpus, port=29501 + 17 * k,
                           quiet=not verbose, num_samples=num_samples)
        train, val = read_scalars(variant_dir)
        results.append(dict(name=name, losses=losses, config=cfg_path, train_seconds=seconds,
                            train=train, val=val, **metrics))
    report = format_report(results)
    with open(osp.join(work_dir, 'report.md'), 'w') as f:
        f.write(f'# {osp.basename(config)}\n\n{report}\n')
    with open(osp.join(work_dir, 'report.json'), 'w') as f:
        json.dump([{k: v for k, v in r.items() if k not in ('samples', 'palette')}
                   for r in results], f, indent=2)
    plot_curves(results, osp.join(work_dir, 'curves.png'))
    written = 'report.md, report.json, curves.png'
    if num_samples > 0:
        plot_predictions(results, osp.join(work_dir, 'predictions.png'))
        written += ' and predictions.png'
    print('\n' + report + '\n', flush=True)
    _print(f'wrote {written} in {work_dir}')
    return results


def main():
    """``python -m ngl_mmseg.experiments.compare`` (``tools/compare_losses.py``)."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Train a config with several losses (same seed and settings) and compare '
                    'them; writes report.md, report.json, curves.png and predictions.png.')
    parser.add_argument('config')
    parser.add_argument('--losses', nargs='+', default=['ce', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per variant, for training and evaluation '
                             '(> 1: under torchrun)')
    parser.add_argument('--work-dir', help='default: work_dirs/compare/<config name>')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-samples', type=int, default=4,
                        help='validation images in predictions.png')
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's logs (always in <work-dir>/<variant>/train.log)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every variant, as in tools/train.py')
    args = parser.parse_args()
    work_dir = args.work_dir or osp.join('work_dirs', 'compare',
                                         osp.splitext(osp.basename(args.config))[0])
    compare(args.config, args.losses, work_dir, args.gpus, args.cfg_options, args.seed,
            args.num_samples, args.verbose)


if __name__ == '__main__':
    main()
