"""The study's report: tables, curves and JSON from its runs, and the tools
that rebuild one (``replot``, ``collect``, ``merge``), and ``export_records``,
which copies a study's run records (no checkpoints) to keep beside its report.

A run is a dict: ``regime``, ``variant``, ``optimizer``, ``lr`` (None in
studies older than the learning-rate axis), ``seed``, ``curve`` ((step, mIoU)
on the validation split, the *selection* split), ``report_curve`` ((step,
mIoU) on the report split, where the study scored one), ``train_curve``,
``seconds``, ``work_dir``.

Two kinds of table:

- **every run group** (``format_table``): one row per regime, variant,
  optimizer and learning rate: the final validation mIoU of each seed, their
  mean and spread, and the paired difference to CE with the same regime,
  optimizer and learning rate (``stats.paired_difference``);
- **tuned** (``tuned_rows``/``format_tuned_table``), where a study searched
  learning rates: per regime, optimizer and variant, the learning rate whose
  mean final mIoU over the search seeds is best on the selection split; the
  runs at that rate scored on the report split (final, and at the validation
  where the selection split peaked), their 95% interval, how many runs
  converged, and the paired difference to tuned CE, seed by seed.
"""
import datetime
import glob
import json
import math
import os
import os.path as osp
import re
import shutil
import statistics

from .runs import read_scalars, scalar_logs
from .stats import format_difference, is_converged, mean_interval, paired_difference

REFERENCE = 'ce'
RUN_RECORD = 'run.json'


def _print(msg):
    print(f'[study] {msg}', flush=True)


def _finite_mean(values):
    return statistics.fmean(values) if values else float('nan')


def _check_scores(run, curve_key='curve'):
    for step, value in run.get(curve_key) or []:
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"run {run.get('work_dir') or run_key(run)} logged mIoU {value!r} "
                             f'at step {step}: a NaN score cannot enter a table')


def run_key(run):
    return (run.get('regime', ''), run['variant'], run['optimizer'], run.get('lr'),
            run['seed'])


def group_runs(runs):
    """Runs grouped by (regime, variant, optimizer, lr), in first-seen order."""
    groups = {}
    for run in runs:
        groups.setdefault(run_key(run)[:4], []).append(run)
    return groups


def summarise(runs):
    """One row per (regime, variant, optimizer, lr): final mIoU per seed, mean,
    spread, peak, convergence and the paired difference to CE (same regime,
    optimizer and lr)."""
    if not runs:
        raise ValueError('the study holds no runs: nothing to summarise')
    for run in runs:
        _check_scores(run)
        _check_scores(run, 'report_curve')
    rows = []
    for (regime, variant, optimizer, lr), members in group_runs(runs).items():
        finals = [m['curve'][-1][1] for m in members if m['curve']]
        train_curves = [m.get('train_curve') for m in members if m.get('train_curve')]
        curves = [[v for _, v in m['curve']] for m in members if m['curve']]
        rows.append(dict(
            regime=regime, variant=variant, optimizer=optimizer, lr=lr,
            seeds=[m['seed'] for m in members],
            final_miou=finals,
            mean=_finite_mean(finals),
            std=statistics.pstdev(finals) if len(finals) > 1 else 0.0,
            steps=[step for step, _ in members[0]['curve']],
            mean_curve=[statistics.fmean(vals) for vals in zip(*curves)],
            train_mean_curve=[statistics.fmean(vals) for vals in zip(
                *[[v for _, v in c] for c in train_curves])] if train_curves else [],
            peak=_finite_mean([max(v for _, v in m['curve']) for m in members
                               if m['curve']]),
            converged=sum(is_converged(m['curve']) for m in members),
            seconds=_finite_mean([m['seconds'] for m in members])))
    by_key = {(r['regime'], r['optimizer'], r['lr'], r['variant']): r for r in rows}
    for row in rows:
        ref = by_key.get((row['regime'], row['optimizer'], row['lr'], REFERENCE))
        row['vs_ce'] = None if ref is None or row['variant'] == REFERENCE else \
            paired_difference(dict(zip(row['seeds'], row['final_miou'])),
                              dict(zip(ref['seeds'], ref['final_miou'])))
    return rows


def _lr_text(lr):
    return 'config' if lr is None else f'{lr:g}'


def format_table(rows, reference=REFERENCE):
    """Markdown: one row per (regime, variant, optimizer, lr); the paired
    difference to CE under the same regime, optimizer and lr; training-set mIoU
    (labels as written) where the runs scored it."""
    regimes = any(r['regime'] for r in rows)
    train = any(r['train_mean_curve'] for r in rows)
    head = (['regime'] if regimes else []) + [
        'variant', 'optimizer', 'lr', 'final mIoU (mean ± spread of seeds)',
        f'vs {reference}: paired mean [95% CI], seeds ahead', 'best along training',
        'per seed', 'converged'] + (['train mIoU (labels as written)'] if train else []) + [
        'mIoU along training', 's / run']
    align = {'final mIoU (mean ± spread of seeds)', 'best along training', 's / run',
             'train mIoU (labels as written)', 'converged'}
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join('---:' if h in align else '---' for h in head) + '|']
    for r in rows:
        along = ', '.join(f'{s}: {v:.1f}' for s, v in zip(r['steps'], r['mean_curve']))
        seeds = ', '.join(f'{v:.1f}' for v in r['final_miou'])
        vs = '-' if r['vs_ce'] is None else format_difference(r['vs_ce'])
        cells = ([r['regime']] if regimes else []) + [
            r['variant'], r['optimizer'], _lr_text(r['lr']),
            f"{r['mean']:.2f} (± {r['std']:.2f})", vs, f"{r['peak']:.2f}", seeds,
            f"{r['converged']}/{len(r['seeds'])}"]
        if train:
            cells.append(f"{r['train_mean_curve'][-1]:.2f}" if r['train_mean_curve'] else '-')
        cells += [along, f"{r['seconds']:.0f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_regime_table(rows, reference=REFERENCE):
    """Markdown, one row per (regime, optimizer, lr): each variant's final
    validation mIoU (mean ± spread of seeds) and its paired difference to CE;
    where scored, each variant's final training-set mIoU on the labels as written."""
    variants = list(dict.fromkeys(r['variant'] for r in rows))
    others = [v for v in variants if v != reference]
    train = any(r['train_mean_curve'] for r in rows)
    by_key = {(r['regime'], r['optimizer'], r['lr'], r['variant']): r for r in rows}
    head = ['regime', 'optimizer', 'lr', f'{reference} (val)'] + [
        f'{v} (val; vs {reference}: paired mean [95% CI], ahead)' for v in others]
    if train:
        head += [f'{v} (train labels)' for v in variants]
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---|---|' + '---:|' * (len(head) - 3)]
    for regime, optimizer, lr in dict.fromkeys((r['regime'], r['optimizer'], r['lr'])
                                               for r in rows):
        ce = by_key.get((regime, optimizer, lr, reference))
        cells = [regime or '-', optimizer, _lr_text(lr),
                 f"{ce['mean']:.1f} ± {ce['std']:.1f}" if ce else '-']
        for v in others:
            r = by_key.get((regime, optimizer, lr, v))
            if r is None:
                cells.append('-')
            elif r['vs_ce'] is None:
                cells.append(f"{r['mean']:.1f} ± {r['std']:.1f}")
            else:
                cells.append(f"{r['mean']:.1f} ± {r['std']:.1f} ({format_difference(r['vs_ce'])})")
        if train:
            for v in variants:
                r = by_key.get((regime, optimizer, lr, v))
                cells.append(f"{r['train_mean_curve'][-1]:.1f}" if r and r['train_mean_curve']
                             else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _report_at_selection_peak(run):
    """The report-split score at the validation where the selection split peaked."""
    best_step = max(run['curve'], key=lambda point: point[1])[0]
    scores = dict(run['report_curve'])
    return scores.get(best_step, float('nan'))


def lr_search(members):
    """The learning-rate search of one (regime, optimizer, variant) group:
    ``(lrs, search_seeds, scores, best)``.

    The search seeds are those that ran at every lr of the group; ``scores``
    maps each lr to their mean final mIoU on the selection (validation) split,
    and ``best`` is the lr with the highest (the smaller lr on a tie). The one
    rule for both the study, which trains the chosen lr, and ``tuned_rows``,
    which reports it.
    """
    lrs = sorted({m.get('lr') for m in members if m.get('lr') is not None})
    by_lr = {lr: {m['seed']: m for m in members if m.get('lr') == lr} for lr in lrs}
    search_seeds = sorted(set.intersection(*[set(v) for v in by_lr.values()])) if lrs else []
    if not search_seeds:
        m = members[0] if members else {}
        raise ValueError(f"{m.get('regime', '')} {m.get('variant', '')} "
                         f"{m.get('optimizer', '')}: no seed ran at every learning "
                         f'rate {lrs}, so the rates cannot be compared')
    scores = {lr: statistics.fmean(by_lr[lr][s]['curve'][-1][1] for s in search_seeds)
              for lr in lrs}
    return lrs, search_seeds, scores, max(lrs, key=lambda lr: scores[lr])


def tuned_rows(runs, reference=REFERENCE):
    """Per (regime, optimizer, variant) of a study with a learning-rate search:
    the chosen lr and its runs on the report split; [] if no group searched
    more than one lr.

    The lr is chosen on the selection split only: the best mean over the
    search seeds (the seeds that ran at every lr of the group) of the final
    validation mIoU. The chosen runs are then scored on the report split.
    """
    cells = {}
    for run in runs:
        cells.setdefault((run.get('regime', ''), run['optimizer'], run['variant']),
                         []).append(run)
    rows = []
    for (regime, optimizer, variant), members in cells.items():
        lrs = sorted({m.get('lr') for m in members if m.get('lr') is not None})
        if len(lrs) < 2:
            continue
        lrs, search_seeds, search, best = lr_search(members)
        chosen = sorted((m for m in members if m.get('lr') == best), key=lambda m: m['seed'])
        missing = [m['work_dir'] for m in chosen if not m.get('report_curve')]
        if missing:
            raise ValueError(f'runs {missing} have no report-split scores: a tuned table '
                             'needs a report split (--report-split)')
        report = {m['seed']: m['report_curve'][-1][1] for m in chosen}
        peak = {m['seed']: _report_at_selection_peak(m) for m in chosen}
        mean, half = mean_interval(list(report.values()))
        rows.append(dict(
            regime=regime, optimizer=optimizer, variant=variant, lrs=lrs,
            search_seeds=search_seeds, search_mean=search, lr=best,
            edge=best in (lrs[0], lrs[-1]),
            seeds=sorted(report), report_final=report, report_peak=peak,
            mean=mean, half_width=half, peak_mean=statistics.fmean(peak.values()),
            selection_mean=statistics.fmean(m['curve'][-1][1] for m in chosen),
            converged=sum(is_converged(m['curve']) for m in chosen),
            not_converged=[osp.basename(m['work_dir'] or '') for m in chosen
                           if not is_converged(m['curve'])],
            steps=[s for s, _ in chosen[0]['curve']]))
    by_cell = {(r['regime'], r['optimizer'], r['variant']): r for r in rows}
    for row in rows:
        ref = by_cell.get((row['regime'], row['optimizer'], reference))
        if ref is None or row['variant'] == reference:
            row['vs_ce'] = row['vs_ce_peak'] = None
        else:
            row['vs_ce'] = paired_difference(row['report_final'], ref['report_final'])
            row['vs_ce_peak'] = paired_difference(row['report_peak'], ref['report_peak'])
    return rows


def format_tuned_table(rows, reference=REFERENCE):
    """Markdown: the tuned row of each (regime, optimizer, variant)."""
    head = ['regime', 'optimizer', 'variant', 'chosen lr (on val)', 'report mIoU, final '
            '(mean [95% CI])', f'vs tuned {reference}: paired mean [95% CI], ahead, verdict',
            'report mIoU at val peak', f'vs {reference} at peak', 'per seed (final)',
            'converged']
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---|---|---:|---:|---|---:|---|---|---:|']
    for r in rows:
        interval = '' if math.isnan(r['half_width']) else \
            f" [{r['mean'] - r['half_width']:.2f}, {r['mean'] + r['half_width']:.2f}]"
        lines.append('| ' + ' | '.join([
            r['regime'] or '-', r['optimizer'], r['variant'],
            f"{r['lr']:g}" + (' (grid edge)' if r['edge'] else ''),
            f"{r['mean']:.2f}{interval}",
            '-' if r['vs_ce'] is None else format_difference(r['vs_ce']),
            f"{r['peak_mean']:.2f}",
            '-' if r['vs_ce_peak'] is None else format_difference(r['vs_ce_peak']),
            ', '.join(f'{r["report_final"][s]:.1f}' for s in r['seeds']),
            f"{r['converged']}/{len(r['seeds'])}"]) + ' |')
    return '\n'.join(lines)


def format_search_table(rows):
    """Markdown: the learning-rate search, the mean final validation mIoU over
    the search seeds at every lr (the chosen one in bold)."""
    lrs = sorted({lr for r in rows for lr in r['lrs']})
    head = ['regime', 'optimizer', 'variant', 'search seeds'] + [f'lr {lr:g}' for lr in lrs]
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---|---|---|' + '---:|' * len(lrs)]
    for r in rows:
        cells = [r['regime'] or '-', r['optimizer'], r['variant'],
                 ', '.join(map(str, r['search_seeds']))]
        for lr in lrs:
            if lr not in r['search_mean']:
                cells.append('-')
            else:
                text = f"{r['search_mean'][lr]:.1f}"
                cells.append(f'**{text}**' if lr == r['lr'] else text)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot(rows, runs, path, title=''):
    """mIoU against iteration: one panel per (regime, optimizer, lr), the mean
    over seeds per variant with the seeds' range shaded; training-set mIoU dashed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = list(dict.fromkeys((r['regime'], r['optimizer'], r['lr']) for r in rows))
    cols = min(len(panels), 4)
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.8 * nrows), squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    variants = list(dict.fromkeys(r['variant'] for r in rows))
    groups = group_runs(runs)
    for ax, (regime, optimizer, lr) in zip(axes.flat, panels):
        for r in rows:
            if (r['regime'], r['optimizer'], r['lr']) != (regime, optimizer, lr):
                continue
            colour = colours[variants.index(r['variant']) % len(colours)]
            curves = [m['curve'] for m in groups[(regime, r['variant'], optimizer, lr)]]
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
        name = ', '.join(x for x in (regime, optimizer) if x)
        if lr is not None:
            name += f', lr {lr:g}'
        ax.set(title=name, xlabel='iteration', ylabel='mIoU (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90 if len(panels) > 8 else 110)
    plt.close(fig)


def write_report(work_dir, config, title, runs, spec=None):
    """study.md, study.json and study.png of ``runs`` in ``work_dir``; returns the rows.
    Everything is computed before the first file is written."""
    if not runs:
        raise ValueError(f'no runs to report in {work_dir}')
    rows = summarise(runs)
    tuned = tuned_rows(runs)
    table = format_table(rows)
    if any(r['regime'] for r in rows):
        table = ('By regime (final validation mIoU, mean ± spread of the seeds; paired '
                 'difference to CE over the seeds both ran, 95% t interval; training-set mIoU '
                 'on the labels as written):\n\n'
                 f'{format_regime_table(rows)}\n\nEvery variant:\n\n{table}')
    if tuned:
        unconverged = [name for r in tuned for name in r['not_converged']]
        table = ('Tuned (each variant at the learning rate best on the validation split, the '
                 'selection split; scored on the report split, which selected nothing; paired '
                 't interval over seeds, a tie when it holds 0):\n\n'
                 f'{format_tuned_table(tuned)}\n\n'
                 'Learning-rate search (final validation mIoU, mean over the search seeds; '
                 'chosen in bold):\n\n'
                 f'{format_search_table(tuned)}\n\n'
                 'Runs at the chosen lr that had not converged (last quarter gained >= 1 '
                 'mIoU on the validation split): '
                 f"{', '.join(unconverged) if unconverged else 'none'}.\n\n"
                 f'Every run group (validation split):\n\n{table}')
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'study.md'), 'w') as f:
        f.write(f'# {title or osp.basename(config)}\n\n{table}\n')
    data = dict(config=config, title=title, rows=rows, tuned=tuned, runs=runs)
    if spec is not None:
        data['spec'] = spec
    with open(osp.join(work_dir, 'study.json'), 'w') as f:
        json.dump(data, f, indent=1)
    plot(rows, runs, osp.join(work_dir, 'study.png'), title)
    print('\n' + table + '\n', flush=True)
    _print(f'wrote study.md, study.json and study.png in {work_dir}')
    return rows


def load_study(work_dir):
    """A finished study's study.json, its curves as (step, mIoU) tuples again."""
    path = osp.join(work_dir, 'study.json')
    if not osp.isfile(path):
        raise ValueError(f'{path} does not exist: not a finished study (run it, or '
                         '--collect its run folders)')
    try:
        with open(path) as f:
            data = json.load(f)
        runs = data['runs']
        if not isinstance(runs, list):
            raise TypeError('runs is not a list')
        data['runs'] = [dict(r, **{k: [tuple(p) for p in r.get(k) or []]
                                   for k in ('curve', 'report_curve', 'train_curve')})
                        for r in runs]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f'{path} is not a study record ({type(exc).__name__}: {exc}); '
                         'rebuild it with --collect from its run folders') from None
    if not data['runs']:
        raise ValueError(f'{path} holds no runs')
    return data


def export_records(work_dir, out_dir):
    """Copy the record of every run of the finished study in ``work_dir`` (its
    ``run.json`` and logged ``scalars.json``, no checkpoints or logs) to
    ``out_dir/<run>/``, enough for a study on another machine to reuse the run.
    Records in ``out_dir`` of runs the study no longer holds are removed; any
    other file there is left alone. Returns the number of runs copied."""
    runs = load_study(work_dir)['runs']
    names = {osp.basename(osp.normpath(run['work_dir'])) for run in runs}
    if osp.isdir(out_dir):
        for name in sorted(set(os.listdir(out_dir)) - names):
            if osp.isfile(osp.join(out_dir, name, RUN_RECORD)):
                shutil.rmtree(osp.join(out_dir, name))
    for name in sorted(names):
        src = osp.join(work_dir, name)
        read_run_record(src)  # a folder the study wrote, not one edited since
        scalars = scalar_logs(src)
        if not scalars:
            raise ValueError(f'{src} has no logged scalars to export')
        dst = osp.join(out_dir, name)
        if osp.isdir(dst):
            shutil.rmtree(dst)
        os.makedirs(dst)
        shutil.copyfile(osp.join(src, RUN_RECORD), osp.join(dst, RUN_RECORD))
        for path in scalars:
            target = osp.join(dst, osp.relpath(path, src))
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
    return len(names)


def replot(work_dir):
    """Rewrite the table and figure of a finished study from its study.json."""
    data = load_study(work_dir)
    return write_report(work_dir, data['config'], data['title'], data['runs'], data.get('spec'))


_LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine', re.M)


def logged_seconds(run_dir):
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


# What identifies a run (run.json, written by the study into each run folder).
IDENTITY = ('regime', 'variant', 'losses', 'optimizer', 'lr', 'seed', 'config', 'data_root',
            'iters', 'pretrain', 'train_miou', 'report_split', 'cfg_options')
# What must be the same for every run of one table.
SHARED = ('config', 'iters', 'pretrain', 'report_split', 'cfg_options')


def read_run_record(run_dir):
    path = osp.join(run_dir, RUN_RECORD)
    try:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict) or not all(k in record for k in IDENTITY):
            raise ValueError(f'it lacks {[k for k in IDENTITY if k not in record]}')
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} is not a run record ({exc}): the folder was not written by '
                         'tools/study_ngl.py, or its record was edited') from None
    return record


def run_from_folder(run_dir, record=None):
    """The run dict of a finished run folder (its record and its logged scalars)."""
    record = record or read_run_record(run_dir)
    train, val = read_scalars(run_dir)
    if not val or val[-1]['step'] != record['iters']:
        raise ValueError(f'{run_dir} is an unfinished run (its last validation is at '
                         f"{val[-1]['step'] if val else 'no step'} of {record['iters']})")
    return dict(
        {k: record[k] for k in IDENTITY}, phase=record.get('phase', ''),
        threads=record.get('threads'),
        curve=[(row['step'], float(row['mIoU'])) for row in val],
        report_curve=[(row['step'], float(row['report_mIoU'])) for row in train
                      if 'report_mIoU' in row],
        train_curve=[(row['step'], float(row['train_mIoU'])) for row in train
                     if 'train_mIoU' in row],
        seconds=record.get('seconds') or logged_seconds(run_dir), work_dir=run_dir)


def _folders(runs, limit=3):
    names = [osp.basename(str(run.get('work_dir') or run.get('source') or '?')) for run in runs]
    return ', '.join(names[:limit]) + (' ...' if len(names) > limit else '')


def check_one_study(runs, where, per_row=False):
    """Refuse runs that cannot share a table: one run twice (a copied folder),
    runs of other settings (config, schedule, pretraining, report split,
    options; a data root within a regime), named by their folders. With
    ``per_row`` (a merge of studies), the settings need only agree within
    each (regime, optimizer) row."""
    seen = {}
    for run in runs:
        key = run_key(run)
        if key in seen:
            raise ValueError(f'{seen[key]} and {run.get("work_dir")} are the same run {key}: a '
                             'copy counts once; remove one of them')
        seen[key] = run.get('work_dir')
    groups = {}
    for run in runs:
        groups.setdefault((run.get('regime', ''), run['optimizer']) if per_row else '',
                          []).append(run)
    for group, members in groups.items():
        row = f' (row {group[0] or "-"}, {group[1]})' if per_row else ''
        for field in SHARED + ('data_root', ):
            by_value = {}
            for run in members:
                by_value.setdefault(json.dumps(run.get(field), sort_keys=True, default=str),
                                    []).append(run)
            if len(by_value) > 1 and not (field == 'data_root' and not per_row and
                                          _one_root_per_regime(members)):
                detail = '; '.join(f'{value}: {_folders(rs)}' for value, rs in by_value.items())
                raise ValueError(f'the runs in {where}{row} differ in {field} ({detail}): not '
                                 'one study; give each its own --regime or work dir')


def _one_root_per_regime(runs):
    roots = {}
    for run in runs:
        roots.setdefault(run.get('regime', ''), set()).add(run.get('data_root'))
    return all(len(values) == 1 for values in roots.values())


def collect(work_dir, config='', title=''):
    """Rebuild a study's report from the run folders in ``work_dir`` (each with
    the ``run.json`` the study writes): for a study that was interrupted, or run
    in parts. Returns the rows."""
    runs = []
    for record_path in sorted(glob.glob(osp.join(work_dir, '*', RUN_RECORD))):
        run_dir = osp.dirname(record_path)
        if osp.basename(run_dir) == 'pretrain':
            continue
        runs.append(run_from_folder(run_dir))
    if not runs:
        raise ValueError(f'{work_dir} holds no run folders (folders with a {RUN_RECORD} '
                         'written by tools/study_ngl.py)')
    check_one_study(runs, work_dir)
    lengths = {run['curve'][-1][0] for run in runs}
    if len(lengths) > 1:
        raise ValueError(f'the runs in {work_dir} end at different iterations {sorted(lengths)}'
                         ': not one study')
    return write_report(work_dir, config or runs[0]['config'], title, runs)


def merge(work_dir, sources, title='', overwrite=False):
    """One table and figure from the runs of several finished studies (each
    named once, none of them ``work_dir``; no run twice). A ``work_dir`` that
    holds a study already is refused unless ``overwrite``."""
    real = [osp.realpath(source) for source in sources]
    for k, path in enumerate(real):
        if path in real[:k]:
            raise ValueError(f'study {sources[k]!r} is named twice in --merge')
    if osp.realpath(work_dir) in real:
        raise ValueError(f'--work-dir {work_dir!r} is one of the merged studies: the merged '
                         'table goes to a folder of its own')
    if osp.isfile(work_dir):
        raise ValueError(f'--work-dir {work_dir!r} is a file: the merged study needs a folder')
    if not overwrite and osp.exists(osp.join(work_dir, 'study.json')):
        raise ValueError(f'{work_dir} already holds a study (study.json): merge into a new '
                         'folder, or pass --overwrite-merge to replace it')
    studies = [load_study(source) for source in sources]
    runs = [run for data in studies for run in data['runs']]
    seen = set()
    for run in runs:
        key = run_key(run)
        if key in seen:
            raise ValueError(f'run {key} appears in more than one merged study: give each '
                             'study its own --regime, or merge each run once')
        seen.add(key)
    for data, source in zip(studies, sources):
        for run in data['runs']:
            run.setdefault('source', source)
    check_one_study(runs, ', '.join(sources), per_row=True)
    schedules = {}
    for run in runs:
        cell = (run.get('regime', ''), run['optimizer'])
        schedules.setdefault(cell, set()).add(run['curve'][-1][0] if run['curve'] else None)
    for cell, ends in schedules.items():
        if len(ends) > 1:
            raise ValueError(f'regime {cell[0]!r} ({cell[1]}) holds runs of different lengths '
                             f'{sorted(map(str, ends))}: one row must be one schedule')
    return write_report(work_dir, studies[0]['config'], title, runs)
