"""Reports rebuilt without training: ``replot`` (a finished study's report from
its study.json), ``collect`` (from the run folders of a study interrupted or
run in parts) and ``merge`` (one report from the runs of several finished
studies); ``check_one_study`` refuses runs that cannot share a table."""
import glob
import os.path as osp
import re

from .run_record import RUN_RECORD, SHARED, canonical, read_record, run_from_folder
from .study_report import load_study, write_report
from .study_tables import run_key, split_doubled
from .tool_args import check_folder, printer

_print = printer('study')
# A run folder the study moved aside (an interrupted run): ``<run>.interrupted-N``.
MOVED_ASIDE = re.compile(r'\.interrupted-\d+$')


def replot(work_dir):
    """Rewrite the table and figure of a finished study from its study.json."""
    data = load_study(work_dir)
    return write_report(work_dir, data['config'], data['title'], data['runs'], data.get('spec'),
                        pending=[tuple(cell) for cell in data.get('pending', [])])


def _folders(runs, limit=3):
    names = [osp.basename(str(run.get('work_dir') or run.get('source') or '?')) for run in runs]
    return ', '.join(names[:limit]) + (' ...' if len(names) > limit else '')


def _refuse_repeated_runs(runs):
    """One run twice: two merged studies hold it (their runs carry a different
    ``source``), or one study holds a copy of a run folder."""
    seen = {}
    for run in runs:
        key = run_key(run)
        first = seen.setdefault(key, run)
        if first is run:
            continue
        if first.get('source') != run.get('source'):
            raise ValueError(f'run {key} appears in more than one merged study: give each '
                             'study its own --regime, or merge each run once')
        raise ValueError(f'{first.get("work_dir")} and {run.get("work_dir")} are the same run '
                         f'{key}: a copy counts once; remove one of them')


def check_one_study(runs, where, per_row=False):
    """Refuse runs that cannot share a table: one run twice (a copied folder,
    or a run in two merged studies), runs of other settings (config, schedule,
    pretraining, report split, options; a data root within a regime), named by
    their folders. With ``per_row`` (a merge of studies), the settings need
    only agree within each (regime, optimizer) row."""
    _refuse_repeated_runs(runs)
    base, doubled = split_doubled(runs)
    groups = {}
    for run in base:
        groups.setdefault((run.get('regime', ''), run['optimizer']) if per_row else '',
                          []).append(run)
    for group, members in groups.items():
        row = f' (row {group[0] or "-"}, {group[1]})' if per_row else ''
        for field in SHARED + ('data_root', ):
            by_value = {}
            for run in members:
                by_value.setdefault(canonical(run.get(field)), []).append(run)
            if len(by_value) > 1 and not (field == 'data_root' and not per_row and
                                          _one_root_per_regime(members)):
                detail = '; '.join(f'{value}: {_folders(rs)}' for value, rs in by_value.items())
                raise ValueError(f'the runs in {where}{row} differ in {field} ({detail}): not '
                                 'one study; give each its own --regime or work dir')
    # Merged rows may differ in budget (a 2000- and a 4000-iteration cell): a rerun
    # doubles the budget of its own row.
    for run in doubled:
        group = (run.get('regime', ''), run['optimizer']) if per_row else ''
        _check_reruns(groups.get(group, []), [run], where)


def _check_reruns(base, doubled, where):
    """The plateau check's reruns share their study's (or, merged, their row's)
    settings but the iterations, which are twice theirs."""
    settings = {canonical({f: run.get(f) for f in SHARED if f != 'iters'}) for run in base}
    iters = {run.get('iters') for run in base}
    for run in doubled:
        if canonical({f: run.get(f) for f in SHARED if f != 'iters'}) not in settings or \
                len(iters) != 1 or run.get('iters') != 2 * next(iter(iters)):
            raise ValueError(f"{run.get('work_dir')} in {where} is a rerun at twice the budget "
                             f"({run.get('iters')} iterations) of no run of this study")


def _one_root_per_regime(runs):
    roots = {}
    for run in runs:
        roots.setdefault(run.get('regime', ''), set()).add(run.get('data_root'))
    return all(len(values) == 1 for values in roots.values())


def collect(work_dir, config='', title=''):
    """Rebuild a study's report from the run folders in ``work_dir`` (each with
    the ``run.json`` the study writes): for a study that was interrupted, or run
    in parts. Folders the study moved aside (``<run>.interrupted-N``) are
    skipped, and named. Returns the rows."""
    run_dirs, aside = run_folders(work_dir)
    runs = [run_from_folder(run_dir) for run_dir in run_dirs]
    if aside:
        _print(f'skipped {len(aside)} folder(s) of interrupted runs, moved aside: '
               f'{", ".join(aside)}')
    if not runs:
        raise ValueError(f'{work_dir} holds no run folders (folders with a {RUN_RECORD} '
                         'written by tools/study_ngl.py)')
    check_one_study(runs, work_dir)
    lengths = {run['curve'][-1][0] for run in split_doubled(runs)[0]}
    if len(lengths) > 1:
        raise ValueError(f'the runs in {work_dir} end at different iterations {sorted(lengths)}'
                         ': not one study')
    return write_report(work_dir, config or runs[0]['config'], title, runs)


def run_folders(work_dir):
    """The run folders in a study's ``work_dir`` (those holding a ``run.json``, but
    the pretraining's), and the names of those moved aside (``<run>.interrupted-N``)."""
    run_dirs, aside = [], []
    for record_path in sorted(glob.glob(osp.join(work_dir, '*', RUN_RECORD))):
        run_dir = osp.dirname(record_path)
        if osp.basename(run_dir) == 'pretrain':
            continue
        if MOVED_ASIDE.search(osp.basename(run_dir)):
            aside.append(osp.basename(run_dir))
        else:
            run_dirs.append(run_dir)
    return run_dirs, aside


def finished_runs(work_dir):
    """The finished runs of a study in ``work_dir``, finished or not itself (a study
    stopped midway: its finished runs are what a later session resumes from)."""
    return [run_from_folder(run_dir) for run_dir in run_folders(work_dir)[0]
            if read_record(run_dir).get('finished')]


def _check_merge_target(work_dir, sources, overwrite):
    if osp.basename(work_dir.rstrip('/')) in ('', '.', '..'):
        raise ValueError(f'--work-dir {work_dir!r} ends in "." or "..": it names no folder of its '
                         'own for the merged study (name one)')
    check_folder(work_dir, '--work-dir')
    real = [osp.realpath(source) for source in sources]
    for k, path in enumerate(real):
        if path in real[:k]:
            raise ValueError(f'study {sources[k]!r} is named twice in --merge')
    if osp.realpath(work_dir) in real:
        raise ValueError(f'--work-dir {work_dir!r} is one of the merged studies: the merged '
                         'table goes to a folder of its own')
    if not overwrite and osp.exists(osp.join(work_dir, 'study.json')):
        raise ValueError(f'{work_dir} already holds a study (study.json): merge into a new '
                         'folder, or pass --overwrite-merge to replace it')


def merge(work_dir, sources, title='', overwrite=False, pending=()):
    """One table and figure from the runs of several finished studies (each
    named once, none of them ``work_dir``; no run twice). A ``work_dir`` that
    holds a study already is refused unless ``overwrite``. ``pending``: the
    (regime, optimizer) cells of studies not finished yet, listed in the short
    answer. Returns the rows."""
    _check_merge_target(work_dir, sources, overwrite)
    studies = [load_study(source) for source in sources]
    for data, source in zip(studies, sources):
        for run in data['runs']:
            run.setdefault('source', source)
    runs = [run for data in studies for run in data['runs']]
    check_one_study(runs, ', '.join(sources), per_row=True)
    schedules = {}
    for run in split_doubled(runs)[0]:
        cell = (run.get('regime', ''), run['optimizer'])
        schedules.setdefault(cell, set()).add(run['curve'][-1][0] if run['curve'] else None)
    for cell, ends in schedules.items():
        if len(ends) > 1:
            raise ValueError(f'regime {cell[0]!r} ({cell[1]}) holds runs of different lengths '
                             f'{sorted(map(str, ends))}: one row must be one schedule')
    return write_report(work_dir, studies[0]['config'], title, runs, pending=pending)
