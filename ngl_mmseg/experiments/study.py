"""The trainability study: one config, a grid of loss variants x optimizers x seeds.

The engine of ``tools/study_ngl.py``. Every run trains through ngl-mmseg's
train tool (``python -m ngl_mmseg.cli.train``, under torchrun with
``gpus > 1``), exactly as a user would, with mmseg's validation every
``val_interval`` iterations; the study reads the mIoU-vs-iteration curve each run logged and writes

- ``study.md``: per variant and optimizer, the final mIoU of every seed,
  their mean and spread, the mIoU at each validation, and the wall time;
- ``study.json``: the same, with every curve;
- ``study.png``: mIoU against iteration, the mean over seeds per variant with
  the seeds' range shaded, one panel per optimizer.

With ``pretrain_iters``, the config is first trained with CE on other
synthetic scenes (``pretrain_data_root``) and each run starts from that
backbone with a fresh decode head: the situation of real configs, which start
from ImageNet weights. ``regime`` labels every run of a study (say
``uniform-40``, for a dataset with label noise), so that merged studies give
one row per regime, variant and optimizer; ``train_miou`` also scores each
run on its training labels as written at every validation (``train_miou.py``),
to see a model fit label noise while its clean validation mIoU falls.
"""
import argparse
import copy
import datetime
import glob
import json
import os
import os.path as osp
import re
import statistics
import time
import warnings

from .compare import check_count
from .presets import LOSS_PRESETS, apply_loss_preset, parse_loss_spec, parse_loss_specs
from .runs import check_fresh_run_dir, read_scalars, train_run

# Optimizers the study can put under any config. 'config' keeps the config's own.
OPTIMIZERS = {
    # mmseg's schedule for its VOC / COCO-Stuff CNN configs.
    'sgd': dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005),
    # What the quickstarts use; the authors trained with Adam.
    'adamw': dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4),
}


def _print(msg):
    print(f'[study] {msg}', flush=True)


def _replace_values(node, old, new):
    """Every string equal to ``old`` in a nested config becomes ``new``."""
    if isinstance(node, (dict, list)):
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if value == old:
                node[key] = new
            else:
                _replace_values(value, old, new)


def load_config(config, cfg_options=None, data_root=None, iters=None):
    """The config with ``cfg_options``, its ``data_root`` replaced in every
    dataloader, and ``iters`` iterations (validation every quarter, the
    schedulers ending there)."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        old_root = cfg.get('data_root')
        if not old_root:
            raise ValueError(f'{config} has no top-level data_root to replace')
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            _replace_values(cfg[key], old_root, data_root)
        cfg.data_root = data_root
    if iters is not None:
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = max(1, iters // 4)
        for sched in cfg.param_scheduler:
            sched['end'] = iters
    return cfg


def run_config(config, losses, optimizer, seed, work_dir, cfg_options=None, backbone=None,
               data_root=None, iters=None, train_miou=False):
    """Write the config of one run (``losses``: its loss dicts); returns its path."""
    cfg = load_config(config, cfg_options, data_root, iters)
    apply_loss_preset(cfg, losses)
    if train_miou:
        imports = list(cfg.get('custom_imports', {}).get('imports', []))
        cfg.custom_imports = dict(imports=imports + ['ngl_mmseg.experiments.train_miou'],
                                  allow_failed_imports=False)
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='TrainSetMIoUHook')]
    if optimizer != 'config':
        cfg.optim_wrapper.optimizer = copy.deepcopy(OPTIMIZERS[optimizer])
    cfg.randomness = dict(seed=seed)
    if backbone:
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=backbone,
                                           prefix='backbone.')
    return _dump_run(cfg, work_dir)


def _dump_run(cfg, work_dir):
    """Write ``work_dir/config.py`` for a run that keeps only its last
    checkpoint (the study needs the curve, and pretraining the end)."""
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=cfg.train_cfg.max_iters, max_keep_ckpts=1)
    cfg.work_dir = work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'config.py')
    cfg.dump(path)
    return path


def pretrain_backbone(config, work_dir, iters, data_root, cfg_options=None, gpus=1):
    """Train ``config`` with CE for ``iters`` on ``data_root``; returns the checkpoint."""
    cfg = load_config(config, cfg_options, data_root, iters)
    apply_loss_preset(cfg, parse_loss_spec('ce')[1])
    cfg.train_cfg.val_interval = iters
    path = _dump_run(cfg, work_dir)
    _print(f'pretraining the backbone with CE for {iters} iterations on {data_root}')
    train_run(path, work_dir, gpus, quiet=True, progress=False)
    ckpt = osp.join(work_dir, f'iter_{iters}.pth')
    if not osp.isfile(ckpt):
        raise FileNotFoundError(f'pretraining wrote no {ckpt}')
    return ckpt


def summarise(runs):
    """Group runs by (variant, optimizer): final mIoU per seed, mean, spread."""
    groups = {}
    for run in runs:
        groups.setdefault((run.get('regime', ''), run['variant'], run['optimizer']),
                          []).append(run)
    rows = []
    for (regime, variant, optimizer), members in groups.items():
        finals = [m['curve'][-1][1] for m in members if m['curve']]
        train_curves = [m.get('train_curve') for m in members if m.get('train_curve')]
        rows.append(dict(
            regime=regime, variant=variant, optimizer=optimizer,
            seeds=[m['seed'] for m in members],
            final_miou=finals,
            mean=statistics.fmean(finals) if finals else float('nan'),
            std=statistics.pstdev(finals) if len(finals) > 1 else 0.0,
            steps=[step for step, _ in members[0]['curve']],
            mean_curve=[statistics.fmean(vals) for vals in zip(*[[v for _, v in m['curve']]
                                                                 for m in members])],
            train_mean_curve=[statistics.fmean(vals) for vals in zip(
                *[[v for _, v in c] for c in train_curves])] if train_curves else [],
            peak=statistics.fmean(max(v for _, v in m['curve']) for m in members
                                  if m['curve']) if finals else float('nan'),
            seconds=statistics.fmean(m['seconds'] for m in members)))
    return rows


def format_table(rows, reference='ce'):
    """Markdown: one row per (regime, variant, optimizer); the gap to CE's mean
    under the same regime and optimizer; with training-set mIoU (labels as
    written) where the runs scored it."""
    ce = {(r['regime'], r['optimizer']): r['mean'] for r in rows if r['variant'] == reference}
    regimes = any(r['regime'] for r in rows)
    train = any(r['train_mean_curve'] for r in rows)
    head = (['regime'] if regimes else []) + [
        'variant', 'optimizer', 'final mIoU (mean of seeds)', 'vs CE', 'best along training',
        'per seed'] + (['train mIoU (labels as written)'] if train else []) + [
        'mIoU along training', 's / run']
    align = {'final mIoU (mean of seeds)', 'vs CE', 'best along training', 's / run',
             'train mIoU (labels as written)'}
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join('---:' if h in align else '---' for h in head) + '|']
    for r in rows:
        key = (r['regime'], r['optimizer'])
        gap = r['mean'] - ce[key] if key in ce else float('nan')
        along = ', '.join(f'{s}: {v:.1f}' for s, v in zip(r['steps'], r['mean_curve']))
        seeds = ', '.join(f'{v:.1f}' for v in r['final_miou'])
        cells = ([r['regime']] if regimes else []) + [
            r['variant'], r['optimizer'], f"{r['mean']:.2f} (± {r['std']:.2f})",
            f'{gap:+.2f}', f"{r['peak']:.2f}", seeds]
        if train:
            cells.append(f"{r['train_mean_curve'][-1]:.2f}" if r['train_mean_curve'] else '-')
        cells += [along, f"{r['seconds']:.0f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_regime_table(rows, reference='ce'):
    """Markdown, one row per (regime, optimizer): the final validation mIoU of
    each variant (mean ± spread of seeds; the gap to CE in brackets) and, where
    scored, each variant's final training-set mIoU on the labels as written."""
    variants = list(dict.fromkeys(r['variant'] for r in rows))
    others = [v for v in variants if v != reference]
    train = any(r['train_mean_curve'] for r in rows)
    by_key = {(r['regime'], r['optimizer'], r['variant']): r for r in rows}
    head = ['regime', 'optimizer', f'{reference} (val)'] + [f'{v} (val, vs {reference})'
                                                           for v in others]
    if train:
        head += [f'{v} (train labels)' for v in variants]
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---|' + '---:|' * (len(head) - 2)]
    for regime, optimizer in dict.fromkeys((r['regime'], r['optimizer']) for r in rows):
        ce = by_key.get((regime, optimizer, reference))
        cells = [regime or '-', optimizer,
                 f"{ce['mean']:.1f} ± {ce['std']:.1f}" if ce else '-']
        for v in others:
            r = by_key.get((regime, optimizer, v))
            cells.append('-' if r is None else f"{r['mean']:.1f} ± {r['std']:.1f} "
                         f"({r['mean'] - ce['mean']:+.1f})" if ce else f"{r['mean']:.1f}")
        if train:
            for v in variants:
                r = by_key.get((regime, optimizer, v))
                cells.append(f"{r['train_mean_curve'][-1]:.1f}" if r and r['train_mean_curve']
                             else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot(rows, runs, path, title=''):
    """mIoU against iteration: one panel per (regime, optimizer), the mean over
    seeds per variant with the seeds' range shaded; training-set mIoU dashed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = list(dict.fromkeys((r['regime'], r['optimizer']) for r in rows))
    cols = min(len(panels), 4)
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.8 * nrows), squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    variants = list(dict.fromkeys(r['variant'] for r in rows))
    for ax, (regime, optimizer) in zip(axes.flat, panels):
        for r in rows:
            if (r['regime'], r['optimizer']) != (regime, optimizer):
                continue
            colour = colours[variants.index(r['variant']) % len(colours)]
            curves = [m['curve'] for m in runs if m.get('regime', '') == regime and
                      m['variant'] == r['variant'] and m['optimizer'] == optimizer]
            steps = r['steps']
            ax.plot(steps, r['mean_curve'], marker='o', color=colour,
                    label=f"{r['variant']} ({r['mean']:.1f})")
            if len(curves) > 1:
                lo = [min(vals) for vals in zip(*[[v for _, v in c] for c in curves])]
                hi = [max(vals) for vals in zip(*[[v for _, v in c] for c in curves])]
                ax.fill_between(steps, lo, hi, color=colour, alpha=0.15)
            if r['train_mean_curve']:
                ax.plot(steps[:len(r['train_mean_curve'])], r['train_mean_curve'],
                        linestyle='--', color=colour, label=f"{r['variant']}: train labels")
        name = f'{regime}, {optimizer}' if regime else f'optimizer: {optimizer}'
        ax.set(title=name, xlabel='iteration', ylabel='mIoU (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(work_dir, config, title, runs):
    """study.md, study.json and study.png of ``runs`` in ``work_dir``; returns the rows."""
    rows = summarise(runs)
    table = format_table(rows)
    if any(r['regime'] for r in rows):
        table = ('By regime (final validation mIoU on clean labels, mean ± spread of the seeds; '
                 'training-set mIoU on the labels as written):\n\n'
                 f'{format_regime_table(rows)}\n\nEvery variant:\n\n{table}')
    with open(osp.join(work_dir, 'study.md'), 'w') as f:
        f.write(f'# {title or osp.basename(config)}\n\n{table}\n')
    with open(osp.join(work_dir, 'study.json'), 'w') as f:
        json.dump(dict(config=config, title=title, rows=rows, runs=runs), f, indent=1)
    plot(rows, runs, osp.join(work_dir, 'study.png'), title)
    print('\n' + table + '\n', flush=True)
    _print(f'wrote study.md, study.json and study.png in {work_dir}')
    return rows


def _load_study(work_dir):
    """A finished study's study.json, its curves as (step, mIoU) tuples again."""
    with open(osp.join(work_dir, 'study.json')) as f:
        data = json.load(f)
    data['runs'] = [dict(r, curve=[tuple(p) for p in r['curve']]) for r in data['runs']]
    return data


def replot(work_dir):
    """Rewrite the table and figure of a finished study from its study.json."""
    data = _load_study(work_dir)
    return write_report(work_dir, data['config'], data['title'], data['runs'])


_LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine', re.M)


def _logged_seconds(run_dir):
    """Wall time between the first and the last line mmengine logged in the run."""
    stamps = []
    for path in glob.glob(osp.join(run_dir, '*', '*.log')):
        with open(path, errors='replace') as f:
            stamps += _LOG_TIME.findall(f.read())
    if len(stamps) < 2:
        return float('nan')
    first, last = (datetime.datetime.strptime(t, '%Y/%m/%d %H:%M:%S')
                   for t in (min(stamps), max(stamps)))
    return (last - first).total_seconds()


def collect(work_dir, config='', title='', regime=''):
    """Rebuild a study's report from the run folders in ``work_dir``
    (``<variant>_<optimizer>_seed<seed>``, each holding one finished run): for a
    study that was interrupted, or run in parts. Returns the rows."""
    runs = []
    for run_dir in sorted(glob.glob(osp.join(work_dir, '*_seed*'))):
        name = osp.basename(run_dir)
        match = re.fullmatch(r'(.+)_([A-Za-z0-9]+)_seed(\d+)', name)
        if not match or not osp.isfile(osp.join(run_dir, 'config.py')):
            continue
        _, val = read_scalars(run_dir)
        if not val:
            raise ValueError(f'{run_dir} holds no validation results: an unfinished run')
        train, _ = read_scalars(run_dir)
        runs.append(dict(regime=regime, variant=match.group(1), optimizer=match.group(2),
                         seed=int(match.group(3)),
                         curve=[(row['step'], float(row['mIoU'])) for row in val],
                         train_curve=[(row['step'], float(row['train_mIoU'])) for row in train
                                      if 'train_mIoU' in row],
                         seconds=_logged_seconds(run_dir), work_dir=run_dir))
    if not runs:
        raise ValueError(f'{work_dir} holds no run folders (<variant>_<optimizer>_seed<seed>)')
    lengths = {run['curve'][-1][0] for run in runs}
    if len(lengths) > 1:
        raise ValueError(f'the runs in {work_dir} end at different iterations {sorted(lengths)}'
                         ': not one study')
    return write_report(work_dir, config, title, runs)


def merge(work_dir, sources, title=''):
    """One table and figure from the runs of several finished studies (each
    named once, none of them ``work_dir``; no run twice)."""
    real = [osp.realpath(source) for source in sources]
    for k, path in enumerate(real):
        if path in real[:k]:
            raise ValueError(f'study {sources[k]!r} is named twice in --merge')
    if osp.realpath(work_dir) in real:
        raise ValueError(f'--work-dir {work_dir!r} is one of the merged studies: the merged '
                         'table goes to a folder of its own')
    studies = [_load_study(source) for source in sources]
    runs = [run for data in studies for run in data['runs']]
    seen = set()
    for run in runs:
        key = (run.get('regime', ''), run['variant'], run['optimizer'], run['seed'])
        if key in seen:
            raise ValueError(f'run {key} appears in more than one merged study: give each '
                             'study its own --regime, or merge each run once')
        seen.add(key)
    os.makedirs(work_dir, exist_ok=True)
    return write_report(work_dir, studies[0]['config'], title, runs)


def check_study_args(variants, optimizers, seeds, gpus=1, iters=None, pretrain_iters=0):
    """Every argument checked before the first run; returns the parsed variants."""
    for optimizer in optimizers:
        if optimizer != 'config' and optimizer not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {optimizer!r}: use config or one of '
                             f'{sorted(OPTIMIZERS)}')
    for name, values in (('optimizer', optimizers), ('seed', seeds)):
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        if repeated:
            raise ValueError(f'{name} {repeated[0]!r} is given more than once: each run '
                             'must be one row of the results')
    for seed in seeds:
        check_count('seed', seed, 0)
    check_count('gpus', gpus, 1)
    if iters is not None:
        check_count('iters', iters, 1)
    check_count('pretrain_iters', pretrain_iters, 0)
    return parse_loss_specs(variants)


def study(config, variants=('ce', 'ngl-plain', 'ngl'), *, optimizers=('sgd', ), seeds=(0, ),
          work_dir='work_dirs/study', gpus=1, cfg_options=None, pretrain_iters=0,
          pretrain_data_root=None, title='', data_root=None, iters=None, regime='',
          train_miou=False):
    """Train every (variant, optimizer, seed); write study.md/.json/.png. Returns the rows."""
    parsed = check_study_args(variants, optimizers, seeds, gpus, iters, pretrain_iters)
    if not osp.isfile(config):
        raise ValueError(f'config {config!r} is not a file')
    if pretrain_iters and not pretrain_data_root:
        raise ValueError('pretrain_iters needs pretrain_data_root (other scenes)')
    grid = [(name, losses, o, s) for o in optimizers for name, losses in parsed for s in seeds]
    run_dirs = [osp.join(work_dir, f'{name}_{o}_seed{s}') for name, _, o, s in grid]
    for run_dir in run_dirs + ([osp.join(work_dir, 'pretrain')] if pretrain_iters else []):
        check_fresh_run_dir(run_dir)
    os.makedirs(work_dir, exist_ok=True)
    backbone = None
    if pretrain_iters:
        backbone = pretrain_backbone(config, osp.join(work_dir, 'pretrain'), pretrain_iters,
                                     pretrain_data_root, cfg_options, gpus)
    runs = []
    started = time.time()
    for k, ((name, losses, optimizer, seed), run_dir) in enumerate(zip(grid, run_dirs)):
        path = run_config(config, losses, optimizer, seed, run_dir, cfg_options, backbone,
                          data_root, iters, train_miou)
        seconds = train_run(path, run_dir, gpus, quiet=True, progress=False)
        train, val = read_scalars(run_dir)
        curve = [(row['step'], float(row['mIoU'])) for row in val]
        train_curve = [(row['step'], float(row['train_mIoU'])) for row in train
                       if 'train_mIoU' in row]
        runs.append(dict(regime=regime, variant=name, optimizer=optimizer, seed=seed,
                         curve=curve, train_curve=train_curve, seconds=seconds,
                         work_dir=run_dir))
        final = f'{curve[-1][1]:.2f}' if curve else 'n/a'
        elapsed = time.time() - started
        eta = elapsed / (k + 1) * (len(grid) - k - 1)
        _print(f'({k + 1}/{len(grid)}) {regime + " " if regime else ""}{name} {optimizer} '
               f'seed {seed}: mIoU {final} ({seconds:.0f} s; eta {eta / 60:.0f} min)')
    return write_report(work_dir, config, title, runs)


def main():
    """``python -m ngl_mmseg.experiments.study`` (``tools/study_ngl.py``)."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Does NGL train? One config under a grid of loss variants x optimizers x '
                    'seeds; writes study.md, study.json and study.png.')
    parser.add_argument('config', nargs='?', help='the config to train (not with --merge)')
    parser.add_argument('--variants', nargs='+', default=['ce', 'ngl-plain', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--optimizers', nargs='+', default=['sgd'],
                        help=f"config (the config's own) or {sorted(OPTIMIZERS)}")
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--work-dir', help='default: work_dirs/study/<config name>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run (> 1: under torchrun)')
    parser.add_argument('--pretrain-iters', type=int, default=0,
                        help='first train the backbone with CE this long on other scenes')
    parser.add_argument('--pretrain-data-root', help='the other scenes (same layout)')
    parser.add_argument('--data-root', help="replaces the config's data_root in its loaders")
    parser.add_argument('--iters', type=int,
                        help='iterations per run (validation every quarter)')
    parser.add_argument('--title', default='')
    parser.add_argument('--regime', default='',
                        help='a label for every run of this study (e.g. the label noise of '
                             '--data-root); merged studies give one row per regime')
    parser.add_argument('--train-miou', action='store_true',
                        help='also score each run on its training labels (as written) at '
                             'every validation')
    parser.add_argument('--replot', action='store_true',
                        help='only rewrite study.md/.png of --work-dir from its study.json')
    parser.add_argument('--collect', action='store_true',
                        help='only rebuild study.md/.json/.png of --work-dir from the run '
                        'folders in it (a study interrupted, or run in parts)')
    parser.add_argument('--merge', nargs='+', metavar='STUDY_DIR',
                        help='only write one table and figure in --work-dir from the runs of '
                        'these finished studies (CONFIG is ignored)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every run, as in tools/train.py')
    args = parser.parse_args()
    if not args.config and not args.merge and not args.collect:
        parser.error('CONFIG is required (except with --merge and --collect)')
    if args.collect and not args.work_dir:
        parser.error('--collect needs --work-dir')
    if args.merge and not args.work_dir:
        parser.error('--merge needs --work-dir for the merged table')
    work_dir = args.work_dir or osp.join('work_dirs', 'study',
                                         osp.splitext(osp.basename(args.config or ''))[0])
    try:
        if args.replot:
            replot(work_dir)
        elif args.collect:
            collect(work_dir, args.config or '', args.title, args.regime)
        elif args.merge:
            merge(work_dir, args.merge, args.title)
        else:
            study(args.config, args.variants, optimizers=args.optimizers, seeds=args.seeds,
                  work_dir=work_dir, gpus=args.gpus, cfg_options=args.cfg_options,
                  pretrain_iters=args.pretrain_iters,
                  pretrain_data_root=args.pretrain_data_root, title=args.title,
                  data_root=args.data_root, iters=args.iters, regime=args.regime,
                  train_miou=args.train_miou)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))


if __name__ == '__main__':
    main()
