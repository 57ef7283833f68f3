"""The study's tables, from its runs.

A run is a dict: ``regime``, ``variant``, ``optimizer``, ``lr`` (None in
studies older than the learning-rate axis), ``seed``, ``curve`` ((step, mIoU)
on the validation split, the *selection* split), ``report_curve`` ((step,
mIoU) on the report split, where the study scored one), ``train_curve``,
``seconds``, ``work_dir`` (``run_record.run_from_folder`` reads one).

Two kinds of table:

- **every run group** (``format_table``): one row per regime, variant,
  optimizer and learning rate: the final validation mIoU of each seed, their
  mean and spread, and the paired difference to CE with the same regime,
  optimizer and learning rate (``stats.paired_difference``);
- **tuned** (``tuned_rows``/``format_tuned_table``), where a study searched
  learning rates: per regime, optimizer and variant, the learning rate
  ``lr_search.choose_lr`` chooses on the selection split; the runs at that
  rate scored on the report split (final, and at the validation where the
  selection split peaked), their 95% interval, how many runs converged, and
  the paired difference to tuned CE, seed by seed; where the curve has one, the
  report-split score at a quarter of the budget (speed, never the verdict);
  and where the study reran the chosen rate at twice its budget (runs of phase
  ``'double'``), the plateau check: how far doubling moved the mean of those
  seeds (``PLATEAU_TOLERANCE``).
"""
import math
import os.path as osp
import statistics

from .lr_search import choose_lr, tried_lrs
from .run_record import DOUBLE_PHASE
from .stats import format_difference, is_converged, mean_interval, paired_difference

REFERENCE = 'ce'
# A cell is at its plateau when doubling its budget moves no variant's mean by this much.
PLATEAU_TOLERANCE = 1.0
# Beside a verdict of a cell whose budget-doubling check failed, wherever it is printed.
NOT_AT_PLATEAU = 'not at plateau'


def split_doubled(runs):
    """The runs of the study's budget, and the plateau check's reruns at twice it."""
    return ([r for r in runs if r.get('phase') != DOUBLE_PHASE],
            [r for r in runs if r.get('phase') == DOUBLE_PHASE])


def _finite_mean(values):
    return statistics.fmean(values) if values else float('nan')


def _check_scores(run, curve_key='curve'):
    for step, value in run.get(curve_key) or []:
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"run {run.get('work_dir') or run_key(run)} logged mIoU {value!r} "
                             f'at step {step}: a NaN score cannot enter a table')


def run_key(run):
    """What one run is: regime, variant, optimizer, lr, seed, and whether it is the
    plateau check's rerun at twice the budget (a run of its own)."""
    return (run.get('regime', ''), run['variant'], run['optimizer'], run.get('lr'),
            run['seed'], run.get('phase') == DOUBLE_PHASE)


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
    runs = split_doubled(runs)[0]
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


def _report_at_quarter(run):
    """The report-split score at a quarter of the run's iterations (None where the run did
    not validate there)."""
    iters = run.get('iters') or run['report_curve'][-1][0]
    return dict(run['report_curve']).get(iters // 4)


def _doubling_check(chosen, report, peak, doubled):
    """How far twice the budget moved the chosen rate's mean (the seeds that ran both):
    final, and at the validation peak (early stopping, a figure of its own: under label
    noise the final score can keep falling while the early-stopped one holds)."""
    reruns = {m['seed']: m for m in doubled
              if m.get('lr') == chosen[0].get('lr') and m.get('report_curve')}
    seeds = sorted(set(reruns) & set(report))
    if not seeds:
        return None
    twice = {s: reruns[s]['report_curve'][-1][1] for s in seeds}
    twice_peak = {s: _report_at_selection_peak(reruns[s]) for s in seeds}
    base, more = (statistics.fmean(d[s] for s in seeds) for d in (report, twice))
    peak_base, peak_more = (statistics.fmean(d[s] for s in seeds) for d in (peak, twice_peak))
    iters = sorted({reruns[s].get('iters') for s in seeds})
    return dict(seeds=seeds, iters=iters[0] if len(iters) == 1 else iters, base_mean=base,
                mean=more, delta=more - base, at_plateau=abs(more - base) < PLATEAU_TOLERANCE,
                finals=twice, peak_base_mean=peak_base, peak_mean=peak_more,
                peak_delta=peak_more - peak_base,
                peak_at_plateau=abs(peak_more - peak_base) < PLATEAU_TOLERANCE,
                peaks=twice_peak)


def _cell_key(run):
    return run.get('regime', ''), run['optimizer'], run['variant']


def _tuned_row(members, doubled):
    """One tuned row: the chosen rate of one (regime, optimizer, variant), its runs scored."""
    choice = choose_lr(members)
    chosen = sorted((m for m in members if m.get('lr') == choice.best),
                    key=lambda m: m['seed'])
    missing = [m['work_dir'] for m in chosen if not m.get('report_curve')]
    if missing:
        raise ValueError(f'runs {missing} have no report-split scores: a tuned table '
                         'needs a report split (--report-split)')
    report = {m['seed']: m['report_curve'][-1][1] for m in chosen}
    peak = {m['seed']: _report_at_selection_peak(m) for m in chosen}
    quarter = {m['seed']: _report_at_quarter(m) for m in chosen}
    if any(v is None for v in quarter.values()):
        quarter = None
    mean, half = mean_interval(list(report.values()))
    regime, optimizer, variant = _cell_key(chosen[0])
    return dict(
        regime=regime, optimizer=optimizer, variant=variant, lrs=choice.lrs,
        search_seeds=choice.search_seeds, search_mean=choice.scores, lr=choice.best,
        edge=choice.at_edge, iters=chosen[0].get('iters') or chosen[0]['curve'][-1][0],
        seeds=sorted(report), report_final=report, report_peak=peak,
        mean=mean, half_width=half, peak_mean=statistics.fmean(peak.values()),
        report_quarter=quarter,
        quarter_mean=None if quarter is None else statistics.fmean(quarter.values()),
        doubled=_doubling_check(chosen, report, peak, doubled),
        selection_mean=statistics.fmean(m['curve'][-1][1] for m in chosen),
        converged=sum(is_converged(m['curve']) for m in chosen),
        not_converged=[osp.basename(m['work_dir'] or '') for m in chosen
                       if not is_converged(m['curve'])],
        steps=[s for s, _ in chosen[0]['curve']])


def tuned_rows(runs, reference=REFERENCE):
    """Per (regime, optimizer, variant) of a study with a learning-rate search:
    the chosen lr and its runs on the report split; [] if no group searched
    more than one lr.

    The lr is chosen on the selection split only (``lr_search.choose_lr``:
    the best mean over the search seeds, the seeds that ran at every lr of the
    group, of the final validation mIoU). The chosen runs are then scored on
    the report split: final, at the selection split's peak, at a quarter of the
    budget; and the plateau check's reruns at twice the budget (``doubled``, and
    ``vs_ce_doubled``: the paired difference to the reference there).
    """
    runs, doubled = split_doubled(runs)
    cells = {}
    for run in runs:
        cells.setdefault(_cell_key(run), []).append(run)
    rows = [_tuned_row(members, [d for d in doubled if _cell_key(d) == key])
            for key, members in cells.items() if len(tried_lrs(members)) >= 2]
    by_cell = {(r['regime'], r['optimizer'], r['variant']): r for r in rows}
    for row in rows:
        ref = by_cell.get((row['regime'], row['optimizer'], reference))
        if ref is None or row['variant'] == reference:
            row['vs_ce'] = row['vs_ce_peak'] = row['vs_ce_quarter'] = None
            row['vs_ce_doubled'] = None
            continue
        row['vs_ce'] = paired_difference(row['report_final'], ref['report_final'])
        row['vs_ce_peak'] = paired_difference(row['report_peak'], ref['report_peak'])
        row['vs_ce_quarter'] = None if row['report_quarter'] is None or \
            ref['report_quarter'] is None else \
            paired_difference(row['report_quarter'], ref['report_quarter'])
        # the verdict at twice the budget, on the seeds both reran: whether it holds as the
        # levels move
        row['vs_ce_doubled'] = None if not (row['doubled'] and ref['doubled']) else \
            paired_difference(row['doubled']['finals'], ref['doubled']['finals'])
    return rows


def cell_at_plateau(rows, regime, optimizer, figure='final'):
    """True when twice the budget moved no variant of the cell's mean by
    ``PLATEAU_TOLERANCE``, False when it moved one, None when not every variant was
    checked. ``figure``: ``'final'`` (the verdict's figure, the cell's check) or
    ``'peak'`` (the report split at the validation peak; in a study published before
    the peak was checked, the final check stands for it, as it did then)."""
    checks = [r['doubled'] for r in rows
              if r['regime'] == regime and r['optimizer'] == optimizer]
    if not checks or any(c is None for c in checks):
        return None
    key = 'peak_at_plateau' if figure == 'peak' and all('peak_at_plateau' in c
                                                          for c in checks) else 'at_plateau'
    return all(c[key] for c in checks)


def verdicts_at_plateau(rows, regime, optimizer):
    """``(final, peak)``: whether the cell's final verdicts and its verdicts at the
    validation peak stand at plateau: True, False (to be marked ``NOT_AT_PLATEAU``) or
    None (not checked). A cell that failed its check has every verdict marked; one whose
    peak scores failed theirs, the verdicts at the peak too."""
    final = cell_at_plateau(rows, regime, optimizer)
    return final, (False if final is False else cell_at_plateau(rows, regime, optimizer, 'peak'))


def _doubled_text(check):
    if check is None:
        return 'not run'
    text = (f"{check['delta']:+.2f} ({check['base_mean']:.2f} to {check['mean']:.2f}, seeds "
            f"{', '.join(map(str, check['seeds']))}): "
            + ('at plateau' if check['at_plateau'] else 'NOT at plateau'))
    if 'peak_delta' in check:
        text += (f"; at val peak {check['peak_delta']:+.2f} ({check['peak_base_mean']:.2f} to "
                 f"{check['peak_mean']:.2f})")
    return text


def format_tuned_table(rows, reference=REFERENCE):
    """Markdown: the tuned row of each (regime, optimizer, variant); the verdicts of a
    cell whose budget-doubling check failed say so (``NOT_AT_PLATEAU``), those at the
    validation peak also where the check of the peak scores failed."""
    head = ['regime', 'optimizer', 'variant', 'iterations', 'chosen lr (on val)',
            'report mIoU, final '
            '(mean [95% CI])', f'vs tuned {reference}: paired mean [95% CI], ahead, verdict',
            'report mIoU at val peak', f'vs {reference} at peak', 'per seed (final)',
            'converged', 'at a quarter of the budget (speed)', 'budget doubled: mean moved']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|---|---|---|---:|---:|---:|---|---:|---|---|---:|---:|---|']
    for r in rows:
        mark, peak_mark = ('' if at is not False else f' ({NOT_AT_PLATEAU})'
                           for at in verdicts_at_plateau(rows, r['regime'], r['optimizer']))
        interval = '' if math.isnan(r['half_width']) else \
            f" [{r['mean'] - r['half_width']:.2f}, {r['mean'] + r['half_width']:.2f}]"
        lines.append('| ' + ' | '.join([
            r['regime'] or '-', r['optimizer'], r['variant'], str(r['iters']),
            f"{r['lr']:g}" + (' (grid edge)' if r['edge'] else ''),
            f"{r['mean']:.2f}{interval}",
            '-' if r['vs_ce'] is None else format_difference(r['vs_ce']) + mark,
            f"{r['peak_mean']:.2f}",
            '-' if r['vs_ce_peak'] is None else format_difference(r['vs_ce_peak']) + peak_mark,
            ', '.join(f'{r["report_final"][s]:.1f}' for s in r['seeds']),
            f"{r['converged']}/{len(r['seeds'])}",
            '-' if r.get('quarter_mean') is None else f"{r['quarter_mean']:.2f}",
            _doubled_text(r.get('doubled'))]) + ' |')
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
