"""What a study spec's merge keeps outside its work dir: the published report
(``publish``: ``<publish>.md/.json/.png``) and its studies' run records
(``export_records``: each run's ``run.json`` and logged scalars, no
checkpoints), from which a fresh machine resumes; and what a spec keeps of its
unfinished runs (``export_resume_points``: each one's newest resume point), from
which a fresh machine continues them.

Neither replaces or deletes a file it did not write. ``publish`` replaces only
a report it published before (``published_report``: a study record in the
``.json``, the ``.md`` opening with that study's title, a PNG); the records
export removes only record folders it wrote (``exported_files``: a run
record whose run the folder is named after, and the scalars mmengine logged)
and leaves anything else there, with a line naming it.
"""
import glob
import json
import os
import os.path as osp
import shutil

from .run_folders import record_dir_name, resume_point
from .run_record import RUN_RECORD, read_record
from .runs import launch_logs, scalar_logs
from .study_rebuild import run_folders
from .study_report import load_study
from .study_resume import resume_points
from .tool_args import check_folder, printer

REPORT_EXTENSIONS = ('md', 'json', 'png')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# where export_resume_points builds a run's copy before it moves it in (in the same folder)
STAGING = '.staging-'

_print = printer('study')


def published_report(target):
    """Whether ``<target>.md/.json/.png`` may be replaced by ``publish``: none of them
    exists, or they are a report this tool published (its ``.json`` a study record:
    an object with ``config``, ``title``, ``rows`` and ``runs``; its ``.md`` opening
    with ``# <that title>``, as ``study_report.write_report`` writes it; its
    ``.png`` a PNG). Else a ValueError naming the file. Returns the published
    ``.json`` (None where there is none)."""
    paths = {ext: f'{target}.{ext}' for ext in REPORT_EXTENSIONS}
    present = [path for path in paths.values() if osp.lexists(path)]
    if not present:
        return None
    refusal = ('is not a study report this tool published, so publish does not replace it: '
               'move it, or give "publish" another name')
    for path in present:
        if not osp.isfile(path) or osp.islink(path):
            raise ValueError(f'{path} {refusal} (it is not a plain file)')
    try:
        with open(paths['json'], encoding='utf-8') as f:
            data = json.load(f)
        if not (isinstance(data.get('config'), str) and isinstance(data.get('title'), str)
                and isinstance(data.get('rows'), list) and isinstance(data.get('runs'), list)):
            raise ValueError('not a study record')
    except (OSError, ValueError, AttributeError):
        raise ValueError(f'{present[0]} {refusal} ({paths["json"]} is not a study record)') \
            from None
    title = data['title'] or osp.basename(data['config'])
    if osp.lexists(paths['md']):
        with open(paths['md'], encoding='utf-8', errors='replace') as f:
            if f.readline().rstrip('\n') != f'# {title}':
                raise ValueError(f'{paths["md"]} {refusal} (its first line is not the title '
                                 f'of {paths["json"]}, # {title})')
    if osp.lexists(paths['png']):
        with open(paths['png'], 'rb') as f:
            if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise ValueError(f'{paths["png"]} {refusal} (not a PNG)')
    return data


def publish(study_dir, target):
    """Copy the report of the study in ``study_dir`` (study.md/.json/.png) to
    ``<target>.md/.json/.png``, making ``target``'s folder if needed; a report
    there is replaced only if this tool published it (``published_report``)."""
    published_report(target)
    os.makedirs(osp.dirname(target) or '.', exist_ok=True)
    for ext in REPORT_EXTENSIONS:
        shutil.copyfile(osp.join(study_dir, f'study.{ext}'), f'{target}.{ext}')


def exported_files(folder, resume=False):
    """The files of ``folder`` that ``export_records`` wrote, or None if it did not
    write the folder's ``run.json``: a run record whose run (variant, optimizer,
    lr, seed) names the folder, and mmengine's scalars (``*/vis_data/scalars.json``);
    with ``resume``, those ``export_resume_points`` wrote: also each launch's log
    (``*/*.log``) and resume points (``iter_<n>.pth``)."""
    try:
        record = read_record(folder)
        name = record_dir_name(record)
    except (ValueError, TypeError):
        return None
    if name != osp.basename(osp.normpath(folder)):
        return None
    paths = scalar_logs(folder)
    if resume:
        paths += launch_logs(folder) + \
            [path for _, path in resume_points(folder, float('inf'))]
    return {RUN_RECORD} | {osp.relpath(path, folder) for path in paths}


def _files_under(folder):
    return sorted(osp.relpath(osp.join(d, name), folder) for d, _, names in os.walk(folder)
                  for name in names)


def _clear(folder, ours, kept=()):
    """Remove the files ``ours`` from ``folder`` (and the folders they leave empty);
    any other file stays, named in a line (but those of ``kept``, just written)."""
    for rel in ours:
        os.remove(osp.join(folder, rel))
        parent = osp.dirname(osp.join(folder, rel))
        while osp.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
            if osp.normpath(parent) == osp.normpath(folder):
                break
            parent = osp.dirname(parent)
    left = [rel for rel in (_files_under(folder) if osp.isdir(folder) else [])
            if rel not in kept]
    if left:
        _print(f'{folder} holds files the records export did not write, left there: '
               f'{", ".join(left[:5])}{" ..." if len(left) > 5 else ""}')


def check_export(work_dir, out_dir, runs=None):
    """What ``export_records`` checks before it writes, alone: the study in
    ``work_dir`` is finished (or ``runs`` names the runs to export), its runs hold
    records and scalars, and no run's folder in ``out_dir`` holds a ``run.json``
    the export did not write (a ValueError naming it). Returns each run's folder
    name and scalar logs."""
    check_folder(out_dir, 'records')
    if runs is None:
        runs = load_study(work_dir)['runs']
    names = {osp.basename(osp.normpath(run['work_dir'])) for run in runs}
    sources = {}
    for name in sorted(names):
        src = osp.join(work_dir, name)
        read_record(src)  # a folder the study wrote, not one edited since
        sources[name] = scalar_logs(src)
        if not sources[name]:
            raise ValueError(f'{src} has no logged scalars to export')
        dst = osp.join(out_dir, name)
        check_folder(dst, 'records')
        check_replaceable(dst)
    return sources


def check_replaceable(folder, resume=False):
    """Refuse (ValueError) a run's ``folder`` in a records (or, ``resume``, a resume
    points) folder that holds a ``run.json`` the export did not write: the export
    replaces only what it wrote (``exported_files``)."""
    record = osp.join(folder, RUN_RECORD)
    if osp.lexists(record) and exported_files(folder, resume) is None:
        export, key = ('resume points', 'resume_points') if resume else ('records', 'records')
        raise ValueError(f'{record} is not a record the {export} export wrote for the run '
                         f'{osp.basename(folder)}, so it is not replaced: move it, or give '
                         f'"{key}" another folder')


def export_records(work_dir, out_dir, runs=None):
    """Copy the record of every run of the finished study in ``work_dir`` (or of
    ``runs``, the finished runs of a study stopped midway) (its ``run.json`` and
    logged ``scalars.json``, no checkpoints or logs) to ``out_dir/<run>/``, enough
    for a study on another machine to reuse the run.

    Only what this export wrote is replaced or removed (``exported_files``):
    records in ``out_dir`` of runs the study no longer holds are removed, a
    folder there that is not such a record is left as it is (with a line naming
    it if it holds a ``run.json``), and other files in a record's folder stay.
    A run's own folder whose ``run.json`` this export did not write is refused
    (ValueError) before anything is written. Returns the number of runs copied."""
    sources = check_export(work_dir, out_dir, runs)
    names = set(sources)
    if osp.isdir(out_dir):
        for name in sorted(set(os.listdir(out_dir)) - names):
            folder = osp.join(out_dir, name)
            if not osp.isdir(folder) or not osp.lexists(osp.join(folder, RUN_RECORD)):
                continue
            ours = exported_files(folder)
            if ours is None:
                _print(f'{folder} is not a run record the records export wrote: left there')
            else:
                _clear(folder, ours)
    for name in sorted(names):
        src, dst = osp.join(work_dir, name), osp.join(out_dir, name)
        if osp.isdir(dst):
            _clear(dst, exported_files(dst) or set())
        os.makedirs(dst, exist_ok=True)
        shutil.copyfile(osp.join(src, RUN_RECORD), osp.join(dst, RUN_RECORD))
        for path in sources[name]:
            target = osp.join(dst, osp.relpath(path, src))
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
    return len(names)


def _copy_whole_lines(src, dst):
    """Copy a log that may be being appended to, up to its last whole line (a half
    written line would make the copy unreadable: ``runs.DamagedLogError``)."""
    with open(src, 'rb') as f:
        data = f.read()
    os.makedirs(osp.dirname(dst), exist_ok=True)
    with open(dst, 'wb') as f:
        f.write(data[:data.rfind(b'\n') + 1])


def _stage_resume_point(run_dir, held, staging):
    """Copy the unfinished run in ``run_dir`` (record ``held``) to ``staging``: its
    record, its launches' scalars and logs (each up to its last whole line: the run
    may be training) and its resume points; keep the newest the copy can continue
    from (``resume_point``) and return its iteration, or None (the copy removed)."""
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for path in scalar_logs(run_dir) + launch_logs(run_dir):
        _copy_whole_lines(path, osp.join(staging, osp.relpath(path, run_dir)))
    for _, path in resume_points(run_dir, held['iters']):
        try:
            shutil.copyfile(path, osp.join(staging, osp.basename(path)))
        except FileNotFoundError:  # the run replaced it by a newer one meanwhile
            continue
    shutil.copyfile(osp.join(run_dir, RUN_RECORD), osp.join(staging, RUN_RECORD))
    point = resume_point(staging, held)
    if point is None:
        shutil.rmtree(staging)
        return None
    for _, path in resume_points(staging, held['iters']):
        if path != point[1]:
            os.remove(path)
    return point[0]


def _exported_point(folder):
    """The iteration of the resume point an earlier export left in ``folder`` (-1: none)."""
    if not osp.isdir(folder) or exported_files(folder, True) is None:
        return -1
    return max([n for n, _ in resume_points(folder, float('inf'))], default=-1)


def export_resume_points(work_dir, out_dir):
    """Copy each unfinished run of the study in ``work_dir`` that can continue
    (``run_folders.resume_point``) to ``out_dir/<run>/``: its record, its newest
    resume point, and each launch's logged scalars and log (what the resumed run
    reads back: its curve, and its seconds as the sum of its launches), enough for
    a study on another machine, seeded from them, to continue it where this one
    stopped, not from the start. A run longer than a session, on a machine that
    does not outlive the session, finishes this way. Runs may be training: logs are
    copied up to their last whole line, and the point kept is one the copy can
    continue from.

    An export there is replaced only by a newer point (a machine not seeded from
    it, its run started again, does not replace it with an older one), and
    removed once its run has finished in ``work_dir``. As with
    ``export_records``, only what this export wrote is replaced or removed
    (``exported_files(..., resume=True)``), and a run's folder there whose
    ``run.json`` it did not write is refused (ValueError) before anything is
    written. Returns the number of runs copied."""
    check_folder(out_dir, 'resume_points')
    runs = {osp.basename(run_dir): (run_dir, read_record(run_dir))
            for run_dir in (run_folders(work_dir)[0] if osp.isdir(work_dir) else [])}
    for name in sorted(runs):
        dst = osp.join(out_dir, name)
        check_folder(dst, 'resume_points')
        check_replaceable(dst, resume=True)
    for staging in glob.glob(osp.join(out_dir, f'{STAGING}*')):  # an export stopped midway
        shutil.rmtree(staging)
    copied = 0
    for name, (run_dir, held) in sorted(runs.items()):
        dst = osp.join(out_dir, name)
        if held.get('finished'):
            if osp.isdir(dst):
                _clear(dst, exported_files(dst, True) or set())
            continue
        staging = osp.join(out_dir, STAGING + name)
        try:
            iteration = _stage_resume_point(run_dir, held, staging)
        except FileNotFoundError as exc:  # the run's folder moved meanwhile (moved aside)
            _print(f'{run_dir}: not exported, it changed while it was copied ({exc})')
            iteration = None
        if iteration is None or iteration <= _exported_point(dst):
            shutil.rmtree(staging, ignore_errors=True)
            continue
        # the new files in first, then the old ones out: stopped in between, the folder
        # still holds a point to continue from
        old = (exported_files(dst, True) or set()) if osp.isdir(dst) else set()
        new = _files_under(staging)
        for rel in new:
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            os.replace(osp.join(staging, rel), osp.join(dst, rel))
        _clear(dst, old - set(new), kept=new)
        shutil.rmtree(staging)
        copied += 1
    return copied
