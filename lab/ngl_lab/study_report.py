"""The study's report: ``study.md`` (its tables, ``study_tables``), ``study.json``
(every number and curve) and ``study.png`` (mIoU against iteration), written
from its runs by ``write_report``, and read back by ``load_study``."""
import json
import os
import os.path as osp

from .study_answer import format_short_answer
from .study_tables import (
    format_regime_table,
    format_search_table,
    format_table,
    format_tuned_table,
    group_runs,
    summarise,
    tuned_rows,
)
from .tool_args import printer

_print = printer('study')


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


def write_report(work_dir, config, title, runs, spec=None, pending=()):
    """study.md, study.json and study.png of ``runs`` in ``work_dir``; returns the rows.
    A tuned study's report opens with its short answer (``study_answer``), where
    ``pending`` (regime, optimizer) cells are listed as not finished yet. Everything is
    computed before the first file is written."""
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
        table = ('Short answer (the NGL recipe against tuned CE, each at its own rate; '
                 'report split, paired 95% t interval over the seeds):\n\n'
                 f'{format_short_answer(tuned, pending)}\n\n'
                 'Tuned (each variant at the learning rate best on the validation split, the '
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
    if pending:
        data['pending'] = [list(cell) for cell in pending]
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
