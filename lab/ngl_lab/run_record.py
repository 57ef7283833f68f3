"""The run record: ``run.json`` in each run folder of a study, saying what the run
is (regime, variant, losses, optimizer, lr, seed, config, data root and the
data's content, iterations, ...) and whether it finished.

The data is named by its path (``data_root``) and by its content (``dataset``:
the synthetic dataset's split sizes and label noise, read from its manifest
by ``synthetic.manifest_identity``; None for data without a manifest), so that
a dataset remade at the same path with other noise or sizes is other data.

The one module that writes, reads and matches it: the study writes it before
and after training and matches it to reuse a finished run; ``collect``, the
records export and a resumed study read it back (with the scalars the run
logged) as the run dict the report takes.
"""
import datetime
import json
import os
import os.path as osp
import re

from .runs import launch_logs, read_scalars

RUN_RECORD = 'run.json'
# What identifies a run: two records that agree on these are the same run.
IDENTITY = ('regime', 'variant', 'losses', 'optimizer', 'lr', 'seed', 'config', 'data_root',
            'dataset', 'iters', 'pretrain', 'train_miou', 'report_split', 'cfg_options')
# Identity keys a record may lack: records written by ngl-mmseg-lab 0.5 (those kept in
# docs/study/records/) have no ``dataset``; such a run is taken as trained on the data
# now at its data root, which the study writes into its record when it reuses it. Accepted
# until 0.7, by when the kept records carry it.
ADDED_LATER = ('dataset', )
# The phase of a run that reran a variant's chosen rate at twice the study's iterations: the
# plateau check (its own folder, ``run_folders.run_dir_name(..., iters)``), kept out of every
# table but the check's own columns.
DOUBLE_PHASE = 'double'
# What must be the same for every run of one table.
SHARED = ('config', 'iters', 'pretrain', 'report_split', 'cfg_options')


def canonical(value):
    """A record's value as comparable text (dicts with sorted keys)."""
    return json.dumps(value, sort_keys=True, default=str)


def write_record(run_dir, record):
    """Write ``record`` as ``run_dir/run.json`` (whole or not at all: through a
    temporary file), making the folder if needed."""
    os.makedirs(run_dir, exist_ok=True)
    tmp = osp.join(run_dir, RUN_RECORD + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, osp.join(run_dir, RUN_RECORD))


def read_record(run_dir):
    """The record in ``run_dir``; a ValueError naming the file if it is missing,
    not JSON or lacks an identity key."""
    path = osp.join(run_dir, RUN_RECORD)
    try:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict):
            raise ValueError('it is not a JSON object')
        missing = [k for k in IDENTITY if k not in record and k not in ADDED_LATER]
        if missing:
            raise ValueError(f'it lacks {missing}')
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} is not a run record ({exc}): the folder was not written by '
                         'tools/study_ngl.py, or its record was edited') from None
    return record


def has_record(run_dir):
    return osp.isfile(osp.join(run_dir, RUN_RECORD))


def same_dataset(held, planned):
    """Whether two records' data identities (``dataset``) name the same data. Two
    identities are compared on the keys both hold: a manifest written before it
    recorded the maker's arguments (seed, long tail, size; the datasets of the
    plateau study under way) gives an identity without them, and a run recorded
    on it still matches the identity of the same data read now, with them. Kept
    while such records are resumed (until 0.7, as ``ADDED_LATER``). None (data
    without a manifest) is the same only as None."""
    if isinstance(held, dict) and isinstance(planned, dict):
        shared = set(held) & set(planned)
        return all(canonical(held[k]) == canonical(planned[k]) for k in shared)
    return canonical(held) == canonical(planned)


def differing_keys(held, record):
    """The identity keys in which the record ``held`` (in a run folder) and ``record``
    (of a run to train) differ ([]: the same run). A key of ``ADDED_LATER`` that
    ``held`` lacks is not compared; ``dataset`` is compared by ``same_dataset``."""
    def differs(k):
        if k == 'dataset':
            return not same_dataset(held.get(k), record.get(k))
        return canonical(held.get(k)) != canonical(record.get(k))
    return [k for k in IDENTITY if (k in held or k not in ADDED_LATER) and differs(k)]


def run_from_folder(run_dir, record=None):
    """The run dict of a finished run folder: its record (``record``, else read
    from the folder) and the scalars it logged. A ValueError if the log stops
    before the record's last iteration."""
    record = record or read_record(run_dir)
    train, val = read_scalars(run_dir)
    if not val or val[-1]['step'] != record['iters']:
        raise ValueError(f'{run_dir} is an unfinished run (its last validation is at '
                         f"{val[-1]['step'] if val else 'no step'} of {record['iters']})")
    return dict(
        {k: record.get(k) for k in IDENTITY}, phase=record.get('phase', ''),
        threads=record.get('threads'),
        curve=[(row['step'], float(row['mIoU'])) for row in val],
        report_curve=[(row['step'], float(row['report_mIoU'])) for row in train
                      if 'report_mIoU' in row],
        train_curve=[(row['step'], float(row['train_mIoU'])) for row in train
                     if 'train_mIoU' in row],
        seconds=record.get('seconds') or logged_seconds(run_dir), work_dir=run_dir)


_LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine', re.M)


def _span(stamps):
    first, last = (datetime.datetime.strptime(t, '%Y/%m/%d %H:%M:%S')
                   for t in (min(stamps), max(stamps)))
    return (last - first).total_seconds()


def logged_seconds(run_dir):
    """The run's wall time as mmengine logged it: each launch's first to last line,
    summed (a resumed run's launches, without the time between them); NaN when no
    launch logged two lines."""
    spans = []
    for path in launch_logs(run_dir):
        with open(path, errors='replace') as f:
            stamps = _LOG_TIME.findall(f.read())
        if len(stamps) >= 2:
            spans.append(_span(stamps))
    return sum(spans) if spans else float('nan')
