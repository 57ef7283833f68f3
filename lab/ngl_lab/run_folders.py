"""A study's run folders: how each is named, what becomes of one already there
(a finished run of the same identity is reused, an unfinished one resumed from its
newest resume point or, without one, moved aside; one holding another run, or a
file where the folder goes, refused), and the copy of an identical run that another
study trained."""
import os
import os.path as osp
import shutil

from ngl_mmseg.launch import checkpoint_load_error

from .run_record import (
    ADDED_LATER,
    DOUBLE_PHASE,
    IDENTITY,
    differing_keys,
    has_record,
    read_record,
    run_from_folder,
    write_record,
)
from .runs import DamagedLogError, check_fresh_run_dir, read_scalars
from .study_resume import resume_points
from .tool_args import printer

_print = printer('study')


def run_dir_name(variant, optimizer, seed, lr=None, iters=None):
    """``<variant>_<optimizer>[_lr<lr>]_seed<seed>[_it<iters>]``: the folder of one run
    (``iters`` only for a run longer than its study's, the plateau check's)."""
    lr_part = '' if lr is None else f'_lr{lr:g}'
    iters_part = '' if iters is None else f'_it{iters}'
    return f'{variant}_{optimizer}{lr_part}_seed{seed}{iters_part}'


def record_dir_name(record):
    """The folder name of the run a record describes (``run_dir_name``; a plateau-check
    rerun's with its iterations)."""
    doubled = record.get('phase') == DOUBLE_PHASE
    return run_dir_name(record['variant'], record['optimizer'], record['seed'], record['lr'],
                        record['iters'] if doubled else None)


def _refuse_a_file(run_dir):
    if osp.lexists(run_dir) and not osp.isdir(run_dir):
        raise ValueError(f'{run_dir} is a file, not a run folder: the study keeps it; move it '
                         'elsewhere (or use a new work dir)')


def move_aside(run_dir):
    """An interrupted run's folder goes to ``<folder>.interrupted-N`` (kept, not
    deleted). A file where the folder goes is refused (ValueError), and kept."""
    _refuse_a_file(run_dir)
    if not osp.exists(run_dir) or not os.listdir(run_dir):
        return
    k = 1
    while osp.exists(f'{run_dir}.interrupted-{k}'):
        k += 1
    os.rename(run_dir, f'{run_dir}.interrupted-{k}')
    _print(f'{run_dir} held an unfinished run: moved to {run_dir}.interrupted-{k}')


def existing_run(run_dir, record):
    """The finished run in ``run_dir`` whose record matches ``record`` (to be
    reused), or None: nothing there, or an unfinished run of this study (the
    caller resumes it, or moves it aside, before training: ``resume_point``). A
    folder holding another run is refused (FileExistsError), and so is a file where
    the folder goes (ValueError).

    A record without the data's content (``run_record.ADDED_LATER``) is taken as
    a run on the data now at its data root: reused, it is completed with it."""
    _refuse_a_file(run_dir)
    if not has_record(run_dir):
        check_fresh_run_dir(run_dir)
        return None
    held = read_record(run_dir)
    differs = differing_keys(held, record)
    if differs:
        raise FileExistsError(f'{run_dir} already holds a run of another study (its '
                              f'{", ".join(differs)} differ): use a new --work-dir, or '
                              'remove that folder')
    lacking = [k for k in ADDED_LATER if k not in held]
    held = dict(held, **{k: record.get(k) for k in lacking})
    if held.get('finished'):
        run = run_from_folder(run_dir, held)
        if lacking:
            write_record(run_dir, held)
        return run
    if osp.isfile(osp.join(run_dir, f"iter_{record['iters']}.pth")):
        # Trained to the end, but the study stopped before it wrote so: a run
        # whose log reaches the last validation and whose last checkpoint is
        # there is finished.
        try:
            run = run_from_folder(run_dir, held)  # unfinished: its seconds from its logs
        except ValueError:
            return None
        for _, path in resume_points(run_dir, record['iters']):  # left when it stopped
            os.remove(path)
        write_record(run_dir, dict(held, finished=True, seconds=run['seconds']))
        return run
    return None


def resume_point(run_dir, record):
    """Where the unfinished run of ``record`` in ``run_dir`` can continue from:
    ``(iteration, checkpoint)`` of its newest resume point (``study_resume``) that
    loads, whose validation is in the run's log and from which a resumed launch has
    not failed (``failed_resume`` in its record), or None (no such run there, or no
    such point: the run trains again from the start)."""
    if not has_record(run_dir):
        return None
    held = read_record(run_dir)
    if held.get('finished') or differing_keys(held, record):
        return None
    points = resume_points(run_dir, record['iters'])
    if not points:
        return None
    try:
        train, val = read_scalars(run_dir)
    except DamagedLogError:
        return None
    validated = {row['step'] for row in val}
    if record.get('report_split'):
        validated &= {row['step'] for row in train if 'report_mIoU' in row}
    if record.get('train_miou'):
        validated &= {row['step'] for row in train if 'train_mIoU' in row}
    failed = held.get('failed_resume')
    for iteration, path in points:
        if iteration in validated and iteration != failed and \
                checkpoint_load_error(path) is None:
            return iteration, path
    return None


def copy_identical_run(run_dir, record, folders):
    """The finished run of another study that is the run ``record`` describes, copied
    to ``run_dir``; None if there is none, or if ``run_dir`` is there already (the
    study's own folder comes first: ``existing_run``).

    Identical means every identity key the same (``differing_keys``): the same
    config, data, losses, optimizer, rate, seed and iterations, so the same training,
    whatever role it had in the study that trained it. A study at twice another's
    budget finds its runs there, trained as that study's plateau check. The copy's
    record takes this study's ``phase`` and names its source (``copied_from``); its
    checkpoints stay behind. A record without every identity key (written before one
    was added) is not copied: nothing could show it is the same run.

    Args:
        run_dir (str): this study's folder for the run.
        record (dict): the run's record, as this study plans it.
        folders (Sequence[str]): other studies' folders (one folder per run inside).
    """
    if osp.lexists(run_dir):
        return None
    for folder in folders:
        for name in sorted(os.listdir(folder)) if osp.isdir(folder) else ():
            source = osp.join(folder, name)
            held = _finished_record_alike(source, record)
            if held is not None:
                _copy_run(source, run_dir, dict(held, phase=record['phase'], copied_from=source))
                _print(f'{run_dir}: the same run as {source} (every setting alike): copied, '
                       'not trained again')
                return run_from_folder(run_dir)
    return None


def _finished_record_alike(source, record):
    """The record of the folder ``source`` if it holds a finished run with every identity
    key of ``record``, its log reaching the last validation; else None (no record, or a
    damaged record or log, included)."""
    try:
        held = read_record(source) if has_record(source) else {}
        if held.get('finished') and all(k in held for k in IDENTITY) and \
                not differing_keys(held, record):
            run_from_folder(source, held)  # a ValueError if its log stops early
            return held
    except ValueError:
        pass
    return None


def _copy_run(source, run_dir, record):
    """Copy the run folder ``source`` to ``run_dir`` with ``record`` as its record, all at
    once: through a hidden folder beside ``run_dir`` (a copy stopped midway leaves that,
    which no study reads, and the next copy replaces it), renamed into place once whole.
    Checkpoints (and mmengine's pointer to the last one) stay behind."""
    staging = osp.join(osp.dirname(run_dir), f'.{osp.basename(run_dir)}.copying')
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns('*.pth', 'last_checkpoint'))
    write_record(staging, record)
    os.rename(staging, run_dir)
