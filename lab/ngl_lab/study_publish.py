"""What a study spec's merge keeps outside its work dir: the published report
(``publish``: ``<publish>.md/.json/.png``) and its studies' run records
(``export_records``: each run's ``run.json`` and logged scalars, no
checkpoints), from which a fresh machine resumes."""
import os
import os.path as osp
import shutil

from .run_record import RUN_RECORD, read_record
from .runs import scalar_logs
from .study_report import load_study

REPORT_EXTENSIONS = ('md', 'json', 'png')


def publish(study_dir, target):
    """Copy the report of the study in ``study_dir`` (study.md/.json/.png) to
    ``<target>.md/.json/.png``, making ``target``'s folder if needed."""
    os.makedirs(osp.dirname(target) or '.', exist_ok=True)
    for ext in REPORT_EXTENSIONS:
        shutil.copyfile(osp.join(study_dir, f'study.{ext}'), f'{target}.{ext}')


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
        read_record(src)  # a folder the study wrote, not one edited since
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
