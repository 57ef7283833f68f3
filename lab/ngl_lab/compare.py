"""Train one config with several losses under identical settings and compare them.

The engine of ``tools/compare_losses.py`` (``python -m ngl_lab.compare``)
and of the demo. Each variant trains through ngl-mmseg's train tool
(``python -m ngl_mmseg.cli.train``; under ``torch.distributed.run`` in ``gpus``
processes), so its logs and progress are mmseg's own; then its last checkpoint
is evaluated with mmseg's ``IoUMetric`` on the validation set by mmengine's test
loop, launched the same way (``ngl_lab.evaluate``), and the
variants are reported side by side (Markdown, JSON) with plots of the training
curves and of predictions next to the ground truth.
"""
import json
import os
import os.path as osp
import sys

import numpy as np

from .presets import LOSS_PRESETS, apply_loss_preset, check_variant_losses, parse_loss_specs
from .runs import (
    DamagedLogError,
    call_logged,
    check_fresh_run_dir,
    last_checkpoint,
    launch_command,
    read_scalars,
    train_run,
)
from .tool_args import (
    add_cfg_options,
    check_count,
    default_work_dir,
    printer,
    refusals_as_usage_errors,
    tool_parser,
)

# What a comparison writes in its work dir, beside one folder per variant.
REPORT_FILES = ('report.md', 'report.json', 'curves.png', 'predictions.png')


class DamagedRunError(ValueError):
    """A run trained, but what it left on disk cannot be read (the file is named)."""


_print = printer('compare_losses')


def prepare_variant(config, parsed, work_dir, cfg_options=None, seed=None):
    """Write the config of one variant (``parsed``: its name and loss dicts)
    in a fresh folder; returns (name, config path, losses).

    ``seed`` replaces the config's ``randomness.seed`` (the quickstarts set
    one); None keeps the config's, or 0 if it sets none."""
    from ngl_mmseg.launch import load_config
    name, losses = parsed
    variant_dir = osp.join(work_dir, name)
    cfg = load_config(config, cfg_options=cfg_options, work_dir=variant_dir)
    apply_loss_preset(cfg, losses)
    cfg.setdefault('randomness', {})
    if seed is None:
        cfg.randomness.setdefault('seed', 0)
    else:
        cfg.randomness.seed = seed
    check_fresh_run_dir(variant_dir)
    os.makedirs(variant_dir, exist_ok=True)
    path = osp.join(variant_dir, f'{name}_config.py')
    cfg.dump(path)
    return name, path, losses


def evaluate_checkpoint(config_path, checkpoint, work_dir, gpus=1, port=None, quiet=True,
                        num_samples=0):
    """mIoU, mAcc, aAcc and per-class IoU of ``checkpoint`` on the val set:
    mmengine's test loop with mmseg's IoUMetric, in ``gpus`` processes
    (``ngl_lab.evaluate``; its log: ``work_dir/eval.log``). With
    ``num_samples``, also ``samples`` (the first predictions) and ``palette``."""
    from .evaluate import load_samples
    out = osp.join(work_dir, 'eval_metrics.json')
    cmd = launch_command('ngl_lab.evaluate',
                         [config_path, checkpoint, '--out', out, '--work-dir',
                          osp.join(work_dir, 'eval'), '--num-samples', num_samples], gpus, port)
    call_logged(cmd, osp.join(work_dir, 'eval.log'), f'evaluating {checkpoint}', quiet=quiet)
    with open(out) as f:
        metrics = json.load(f)
    if num_samples:
        metrics['samples'], metrics['palette'] = load_samples(out)
    return metrics


# Below the table of a comparison of two or more variants: what one seed can show.
ONE_SEED_NOTE = (
    'One seed on one machine: this shows that each loss trains and how to read the runs, not '
    'which is better. The same seed lands up to about 1 mIoU apart on another machine (float '
    'sums in another order), and seeds move more; a comparison needs several seeds, each loss '
    'at its own tuned rate and a paired interval: `tools/study_ngl.py`, and the measured ones '
    'in docs/when-to-use-ngl.md.')


def format_report(results):
    """Markdown: the summary table (with ``ONE_SEED_NOTE`` where it compares variants), then
    per-class IoU of the classes scored."""
    notes = [f"- {r['name']}: {recipe_note(r['losses'])}" for r in results
             if recipe_note(r['losses'])]
    lines = (notes + [''] if notes else []) + [
        '| variant | losses | mIoU | mAcc | aAcc | train time |', '|---|---|---:|---:|---:|---:|']
    for r in results:
        losses = ' + '.join(f"{d['type']}({d.get('loss_weight', 1.0):g})" for d in r['losses'])
        lines.append(f"| {r['name']} | {losses} | {r['mIoU']:.2f} | {r['mAcc']:.2f} | "
                     f"{r['aAcc']:.2f} | {r['train_seconds']:.0f} s |")
    if len(results) > 1:
        lines += ['', ONE_SEED_NOTE]
    classes = [c for c in results[0]['per_class_iou']
               if any(r['per_class_iou'].get(c) is not None for r in results)]
    lines += ['', '| class | ' + ' | '.join(r['name'] for r in results) + ' |',
              '|---|' + '---:|' * len(results)]
    for c in classes:
        cells = [r['per_class_iou'].get(c) for r in results]
        lines.append(f'| {c} | ' + ' | '.join('-' if v is None else f'{v:.2f}' for v in cells)
                     + ' |')
    return '\n'.join(lines)


def training_panel(rows, losses):
    """What a variant's training panel shows, from its logged scalars.

    NGL variants: NGL's progress (``decode.ngl_progress``, logged by
    NGLMonitorHook: 0 at chance, 1 at NGL's minimum), and during a CE warm-up
    the share of cross entropy in the loss; the logged ``loss`` is NGL times
    the CE-matched weight (``auto_weight``) blended with CE, which climbs as
    the warm-up hands over and reads like divergence. Other variants: their
    training loss.

    Returns:
        dict: ``title``, ``ylabel``, ``series`` (a list of (label, steps, values)).
    """
    ngl = [d for d in losses if d.get('type') == 'NGLLoss']
    progress = [row for row in rows if 'decode.ngl_progress' in row]
    if ngl and progress:
        steps = [row['step'] for row in progress]
        series = [('NGL progress', steps, [row['decode.ngl_progress'] for row in progress])]
        warmup = ngl[0].get('ce_warmup', 0.0)
        max_step = max(row['step'] for row in rows)
        if warmup:
            from ngl_mmseg.losses.recipe import warmup_share
            series.append(('CE share of the loss', steps,
                           [warmup_share(s - 1, max_step, warmup) for s in steps]))
        return dict(title='NGL progress (0: chance, 1: minimum)', ylabel='fraction',
                    series=series)
    rows = [row for row in rows if 'loss' in row]
    return dict(title='training loss', ylabel='loss',
                series=[('loss', [row['step'] for row in rows], [row['loss'] for row in rows])])


def recipe_note(losses):
    """One line naming a variant's NGL recipe and what its logged loss is."""
    ngl = [d for d in losses if d.get('type') == 'NGLLoss']
    if not ngl:
        return ''
    d = ngl[0]
    parts = []
    if d.get('auto_weight'):
        parts.append('auto_weight (the CE-matched weight)')
    if d.get('ce_warmup'):
        parts.append(f"ce_warmup={d['ce_warmup']:g} (CE blended in, falling to 0)")
    if d.get('target_bias_warmup'):
        parts.append(f"target_bias_warmup={d['target_bias_warmup']:g}")
    if d.get('scaling'):
        parts.append('scaling (sigmoid of the softmax)')
    recipe = ', '.join(parts) if parts else "the paper's formula alone"
    logged = 'NGL' + (' times the CE-matched weight' if d.get('auto_weight') else '') + \
        (', blended with CE during the warm-up' if d.get('ce_warmup') else '')
    return f'NGL recipe: {recipe}; the logged loss is {logged}.'


def plot_curves(results, path):
    """Per variant, its training panel (``training_panel``: NGL's progress for
    NGL variants, the loss otherwise); then validation mIoU of all."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(results)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.6 * (n + 1), 3.6))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for k, (r, ax) in enumerate(zip(results, axes)):
        panel = training_panel(r['train'], r['losses'])
        for j, (label, steps, values) in enumerate(panel['series']):
            ax.plot(steps, values, color=colours[k % len(colours)],
                    linestyle='-' if j == 0 else '--', label=label)
        if len(panel['series']) > 1:
            ax.legend(fontsize=7)
        ax.set(title=f"{r['name']}: {panel['title']}", xlabel='iteration',
               ylabel=panel['ylabel'])
        ax.title.set_fontsize(8)
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


def check_work_dir(work_dir, names):
    """Refuse a work dir that is a file or holds an earlier comparison's report
    (a new report would replace it), and variant names that are the report's
    file names (the variant's folder would take the file's place)."""
    for name in names:
        if name.lower() in REPORT_FILES:
            raise ValueError(f'variant name {name!r} is the name of a file of the report '
                             f'({", ".join(REPORT_FILES)}), written beside the variant folders '
                             'in the work dir: choose another name')
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise ValueError(f'work dir {work_dir} is a file, not a folder: use a new --work-dir')
    held = [f for f in REPORT_FILES if osp.lexists(osp.join(work_dir, f))]
    if held:
        raise FileExistsError(
            f'{work_dir} already holds the report of an earlier comparison ({", ".join(held)}); '
            'a new comparison would replace it: use a new --work-dir (or move that report '
            'away first)')


def read_run_scalars(run_dir, name):
    """``read_scalars(run_dir)``; a damaged scalars file is named (DamagedRunError)."""
    try:
        return read_scalars(run_dir)
    except DamagedLogError as exc:
        raise DamagedRunError(
            f"variant {name!r} trained, but the scalars mmengine logged are damaged: {exc.damage} "
            '(a full disk or a killed process?); its checkpoints and train.log are in '
            f'{run_dir}: fix or remove that file, or train the variant again in a new '
            '--work-dir') from None


def compare(config, specs=('ce', 'ngl'), *, work_dir='work_dirs/compare', gpus=1,
            cfg_options=None, seed=None, num_samples=4, verbose=False):
    """Train and evaluate every variant; write report.md, report.json,
    curves.png and predictions.png in ``work_dir``. Returns the results.

    Every argument is checked first: the variants (each loss built on the
    config's heads), the work dir (a fresh folder per variant; no earlier
    report there). ``seed`` replaces the config's ``randomness.seed`` (None:
    the config's, else 0). mmengine's logs go to
    ``<work_dir>/<variant>/train.log`` (``verbose``: to the terminal as well)."""
    check_count('gpus', gpus, 1)
    check_count('num_samples', num_samples, 0)
    if seed is not None:
        check_count('seed', seed, 0, 2**32 - 1)
    if not osp.isfile(config):
        raise ValueError(f'config {config!r} is not a file')
    parsed = parse_loss_specs(specs)  # every spec, before anything trains
    check_work_dir(work_dir, [name for name, _ in parsed])
    for name, _ in parsed:
        check_fresh_run_dir(osp.join(work_dir, name))
    from ngl_mmseg.launch import load_config
    check_variant_losses(load_config(config, cfg_options=cfg_options), parsed)
    os.makedirs(work_dir, exist_ok=True)
    results = []
    for k, spec in enumerate(parsed):
        name, cfg_path, losses = prepare_variant(config, spec, work_dir, cfg_options, seed)
        variant_dir = osp.dirname(cfg_path)
        _print(f'({k + 1}/{len(specs)}) training {name}: {losses} -> {variant_dir}')
        seconds = train_run(cfg_path, variant_dir, gpus, quiet=not verbose)
        checkpoint = last_checkpoint(variant_dir)
        _print(f'{name}: trained in {seconds:.0f} s; evaluating its last checkpoint'
               + (f' in {gpus} processes' if gpus > 1 else ''))
        metrics = evaluate_checkpoint(cfg_path, checkpoint, variant_dir, gpus, quiet=not verbose,
                                      num_samples=num_samples)
        train, val = read_run_scalars(variant_dir, name)
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
    """``python -m ngl_lab.compare`` (``tools/compare_losses.py``)."""
    parser = tool_parser(
        'Train a config with several losses (same seed and settings) and compare them; '
        'writes report.md, report.json, curves.png and predictions.png.')
    parser.add_argument('config')
    parser.add_argument('--losses', nargs='+', default=['ce', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per variant, for training and evaluation '
                             '(> 1: under torchrun)')
    parser.add_argument('--work-dir', help='default: work_dirs/compare/<config name>')
    parser.add_argument('--seed', type=int,
                        help="every variant's seed (replaces the config's randomness.seed); "
                             "default: the config's, else 0")
    parser.add_argument('--num-samples', type=int, default=4,
                        help='validation images in predictions.png')
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's logs (always in <work-dir>/<variant>/train.log)")
    add_cfg_options(parser, 'variant')
    args = parser.parse_args()
    work_dir = args.work_dir or default_work_dir('compare', args.config)
    with refusals_as_usage_errors(parser):
        try:
            compare(args.config, args.losses, work_dir=work_dir, gpus=args.gpus,
                    cfg_options=args.cfg_options, seed=args.seed, num_samples=args.num_samples,
                    verbose=args.verbose)
        except DamagedRunError as exc:  # trained, then unreadable: not a usage error
            sys.exit(f'compare_losses: error: {exc}')


if __name__ == '__main__':
    main()
