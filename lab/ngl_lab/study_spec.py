"""Study specs: a study described in a JSON file, run by ``tools/study_ngl.py --spec``.

A spec says what datasets to make, which studies to run on them, which
studies to merge into one table and where the report goes; running it again
resumes (datasets already made and runs already finished are kept). JSON, so
that reading a spec never runs code from it. The format (docs/tools.md)::

    {
      "work_dir": "work_dirs/study/tuned",
      "datasets": {
        "clean": {"dataset": "voc", "out_dir": "data/synthetic/voc-tuned/clean",
                  "num_train": 100, "num_val": 42, "num_test": 42, "all_classes": true}
      },
      "studies": {
        "clean-adamw": {"config": "configs/quickstart/...py", "data": "clean",
                        "variants": ["ce", "ngl"], "optimizers": ["adamw"],
                        "lrs": [0.001, 0.003], "search_seeds": [0, 1], "seeds": [0, 1, 2],
                        "iters": 1000, "regime": "clean", "report_split": "test"}
      },
      "merges": {
        "tuned": {"studies": ["clean-adamw"], "title": "...", "publish": "docs/study/tuned",
                  "records": "docs/study/records/tuned"}
      }
    }

A study's ``data`` names a dataset of the spec (its data root is used);
``report_split: "test"`` scores the maker's ``--num-test`` split (or give the
dataset fields as a dict); ``pretrain: {"iters": N, "data": NAME}`` pretrains
the backbone; ``like: NAME`` takes the settings of study NAME and gives only the
keys that differ (``study_spec_checks.expand_likes``). Each study runs in
``work_dir/<name>``; each merge writes ``work_dir/<name>`` and, with
``publish``, copies its study.md/.json/.png to ``<publish>.md/.json/.png``; with
``records``, copies each of its studies' run records (``run.json`` and scalars,
no checkpoints) to ``<records>/<study>/``, from where a fresh machine resumes
(copy them into ``work_dir``). A merge is written once all its studies have
finished; with ``"partial": true`` (a study that takes several sessions), as
soon as one has, its report listing the cells of the others as not finished yet.

Nothing is made before everything is checked (``check_spec``): every entry's
keys and JSON types, study and merge names (plain names: folders of
``work_dir``), every selected study's settings, config and variants, the
folders (none a file; ``records`` and ``publish`` inside neither the runs nor
the data), a dataset already made (its manifest must match the spec's
arguments, ``study_spec_checks.check_made_dataset``) and what ``publish`` and
``records`` would replace: only a report or records this tool wrote
(``study_publish``).
"""
import json
import os.path as osp

from .run_folders import existing_run
from .run_record import differing_keys, has_record, read_record
from .study import RunsFailed, StudySettings, check_study, first_runs, study
from .study_publish import (
    check_export,
    check_replaceable,
    export_records,
    export_resume_points,
    publish,
    published_report,
)
from .study_rebuild import finished_runs, merge
from .study_spec_checks import (
    BOOLEAN,
    INTEGER,
    INTEGERS,
    NUMBER,
    NUMBERS,
    OBJECT,
    SPLIT,
    STRING,
    STRINGS,
    check_dataset_values,
    check_entry,
    check_made_dataset,
    check_nothing_dropped,
    check_overlaps,
    data_root,
    expand_likes,
    has_report,
    maker_arguments,
    merges_written,
    published_studies,
)
from .synthetic import MANIFEST
from .tool_args import check_folder, check_plain_name, printer

__all__ = ['RunsFailed', 'data_root', 'export_finished', 'load_spec', 'make_dataset', 'run_spec',
           'study_settings']

# Each key of a spec's entries and the JSON type it takes.
DATASET_KEYS = {'dataset': STRING, 'out_dir': STRING, 'num_train': INTEGER, 'num_val': INTEGER,
                'num_test': INTEGER, 'num_aug': INTEGER, 'all_classes': BOOLEAN,
                'label_noise': NUMBER, 'noise_kind': STRING, 'seed': INTEGER}
STUDY_KEYS = {'config': STRING, 'data': STRING, 'variants': STRINGS, 'optimizers': STRINGS,
              'lrs': NUMBERS, 'search_seeds': INTEGERS, 'seeds': INTEGERS, 'iters': INTEGER,
              'regime': STRING, 'train_miou': BOOLEAN, 'report_split': SPLIT, 'pretrain': OBJECT,
              'title': STRING, 'cfg_options': OBJECT, 'gpus': INTEGER, 'extend_edges': INTEGER,
              'double_seeds': INTEGERS, 'wide_seeds': INTEGERS, 'wide_half_width': NUMBER,
              'reuse_runs_of': STRINGS, 'like': STRING}
PRETRAIN_KEYS = {'iters': INTEGER, 'data': STRING}
MERGE_KEYS = {'studies': STRINGS, 'title': STRING, 'publish': STRING, 'records': STRING,
              'partial': BOOLEAN}
TOP_KEYS = {'work_dir': STRING, 'datasets': OBJECT, 'studies': OBJECT, 'merges': OBJECT,
            'description': STRING, 'resume_points': STRING}
DEFAULT_OPTIMIZERS = ['adamw']  # a study entry's, when it names none
# The report split of the synthetic makers' --num-test, per dataset kind.
TEST_SPLITS = {
    'voc': {'ann_file': 'ImageSets/Segmentation/test.txt'},
    'coco-stuff': {'data_prefix.img_path': 'images/test2017',
                   'data_prefix.seg_map_path': 'annotations/test2017'},
}


_print = printer('study')


def load_spec(path):
    """The spec in ``path``, its shape checked: unknown keys, JSON types, names
    (studies and merges are folders of ``work_dir``: plain names), datasets'
    values and the names entries give of each other."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError as exc:
        raise ValueError(f'cannot read the study spec {path}: {exc}') from None
    except ValueError as exc:
        raise ValueError(f'the study spec {path} is not valid JSON: {exc}') from None
    check_entry(path, spec, TOP_KEYS)
    if not spec.get('work_dir'):
        raise ValueError(f'{path}: "work_dir" (a folder for the runs) is required')
    datasets = spec.setdefault('datasets', {})
    studies = spec.setdefault('studies', {})
    merges = spec.setdefault('merges', {})
    for name, entry in datasets.items():
        check_entry(f'{path}: dataset {name!r}', entry, DATASET_KEYS)
        check_dataset_values(f'{path}: dataset {name!r}', entry)
    for name, entry in studies.items():
        check_plain_name(name, f'{path}: study')
        check_entry(f'{path}: study {name!r}', entry, STUDY_KEYS)
    spec['studies'] = studies = expand_likes(path, studies)
    for name, entry in studies.items():
        _check_study_entry(path, name, entry, datasets, studies)
    for name, entry in merges.items():
        check_plain_name(name, f'{path}: merge')
        check_entry(f'{path}: merge {name!r}', entry, MERGE_KEYS)
        missing = [s for s in entry.get('studies', []) if s not in studies]
        if not entry.get('studies') or missing:
            raise ValueError(f'{path}: merge {name!r} needs "studies" naming studies of the '
                             f'spec (unknown: {missing})')
        if name in studies:
            raise ValueError(f'{path}: {name!r} is both a study and a merge')
    return spec


def _check_study_entry(path, name, entry, datasets, studies):
    where = f'{path}: study {name!r}'
    if not entry.get('config'):
        raise ValueError(f'{where} needs a "config"')
    if 'data' in entry and entry['data'] not in datasets:
        raise ValueError(f'{where} names dataset {entry["data"]!r}, which the spec does not '
                         f'define ({sorted(datasets)})')
    for other in entry.get('reuse_runs_of', ()):
        if other == name or other not in studies:
            raise ValueError(f'{where} reuses the runs of {other!r}, which is not another '
                             f'study of the spec ({sorted(set(studies) - {name})})')
    pretrain = entry.get('pretrain')
    if pretrain is not None:
        check_entry(f'{where} pretrain', pretrain, PRETRAIN_KEYS)
        if pretrain.get('data') not in datasets:
            raise ValueError(f'{where} pretrains on {pretrain.get("data")!r}, which the spec '
                             'does not define')


def make_dataset(entry):
    """Make a spec's dataset unless it is there already; returns its data root.
    One already there must be the one the spec asks for (``check_made_dataset``)."""
    root = data_root(entry)
    check_made_dataset(f'dataset at {entry["out_dir"]}', entry)
    if osp.isfile(osp.join(root, MANIFEST)):
        return root
    maker, kwargs = maker_arguments(entry)
    maker(entry['out_dir'], **kwargs)
    _print(f'made {root}')
    return root


def report_split(entry, datasets):
    """The report split of a spec's study: ``"test"`` is the maker's
    ``--num-test`` split of its dataset's kind; a dict is taken as given."""
    split = entry.get('report_split')
    if split == 'test':
        kind = datasets[entry['data']]['dataset'] if 'data' in entry else None
        if kind is None:
            raise ValueError('report_split "test" needs the study\'s "data" (a spec dataset)')
        return dict(TEST_SPLITS[kind])
    return split


def study_settings(spec, name, roots, path, jobs=1, gpus_per_run=0, threads_per_run=None):
    """The settings of the spec's study ``name``.

    Args:
        spec (dict): the spec (``load_spec``).
        name (str): one of its studies.
        roots (dict): the data root of each dataset made (``make_dataset``).
        path (str): the spec's file, recorded in the study's report.
        jobs, gpus_per_run, threads_per_run: how the runs train (the command line's).

    Returns:
        StudySettings: the study's settings, not yet checked.
    """
    entry = spec['studies'][name]
    pretrain = entry.get('pretrain') or {}
    return StudySettings(
        entry['config'], entry.get('variants', ['ce', 'ngl']),
        optimizers=entry.get('optimizers', DEFAULT_OPTIMIZERS), seeds=entry.get('seeds', [0]),
        work_dir=osp.join(spec['work_dir'], name), gpus=entry.get('gpus', 1),
        cfg_options=entry.get('cfg_options'), pretrain_iters=pretrain.get('iters', 0),
        pretrain_data_root=roots.get(pretrain.get('data')), title=entry.get('title', ''),
        data_root=roots.get(entry.get('data')), iters=entry.get('iters'),
        regime=entry.get('regime', ''), train_miou=entry.get('train_miou', False),
        lrs=entry.get('lrs'), search_seeds=entry.get('search_seeds'), jobs=jobs,
        gpus_per_run=gpus_per_run, threads_per_run=threads_per_run,
        extend_edges=entry.get('extend_edges', 2), double_seeds=entry.get('double_seeds'),
        wide_seeds=entry.get('wide_seeds'), wide_half_width=entry.get('wide_half_width', 5.0),
        report_split=report_split(entry, spec['datasets']),
        reuse_from=[osp.join(spec['work_dir'], other) for other in entry.get('reuse_runs_of', ())],
        spec=dict(file=path, study=name))


def run_spec(path, jobs=1, only=None, gpus_per_run=0, threads_per_run=None,
             with_published=False):
    """Make the datasets, run the studies (resuming) and write the merges of a spec.

    Everything is checked before anything is made (``check_spec``): a refusal
    leaves every folder as it was. A run that fails ends it with
    ``study.RunsFailed`` (the finished runs are kept; run it again to resume).
    ``with_published`` adds to ``only`` the studies that the merges it writes
    have published (``published_studies``): on a work dir seeded from the records they
    train nothing and write their study.json again, so that the merge keeps them.
    """
    spec = load_spec(path)
    studies = spec['studies']
    if only:
        unknown = [name for name in only if name not in studies and name not in spec['merges']]
        if unknown:
            raise ValueError(f'--only {unknown}: not a study or merge of {path} '
                             f'({sorted(studies) + sorted(spec["merges"])})')
    if only and with_published:
        only = list(only) + [name for name in published_studies(spec, only) if name not in only]
    selected = [name for name in studies if not only or name in only]
    merges = merges_written(spec, only) if only else list(spec['merges'])
    needed = [name for name in spec['datasets'] if name in
              {studies[n]['data'] for n in selected if 'data' in studies[n]} |
              {studies[n]['pretrain']['data'] for n in selected if studies[n].get('pretrain')}]
    run = dict(jobs=jobs, gpus_per_run=gpus_per_run, threads_per_run=threads_per_run)
    check_spec(spec, path, selected, needed, merges, run)
    roots = {name: make_dataset(spec['datasets'][name]) for name in needed}
    for name in selected:
        _print(f'study {name} ({path})')
        study(study_settings(spec, name, roots, path, **run))
    for name in merges:
        _write_merge(spec, name, spec['merges'][name])


def check_spec(spec, path, selected, needed, merges, run):
    """Everything a spec run will make, checked before the first is made: its
    folders (none a file, none inside another), every selected study kept in a
    merge with ``records`` where the spec keeps any (``check_kept``), every
    selected study (settings,
    config, variants), every needed dataset already made (the spec's), every
    merge's published report (one this tool published, or none; no study it
    publishes left out of the new one: ``check_nothing_dropped``) and records
    folder (no ``run.json`` the export did not write where a study's run goes),
    and the folders of every selected study's first runs (empty, or holding that
    run: ``run_folders.existing_run``; where the data is not made yet, all but
    the data's content).

    Args:
        spec (dict): the spec (``load_spec``).
        path (str): its file.
        selected (list[str]): the studies to run.
        needed (list[str]): the datasets they use.
        merges (list[str]): the merges to write.
        run (dict): ``jobs``, ``gpus_per_run``, ``threads_per_run``.
    """
    check_folder(spec['work_dir'], 'work_dir')
    check_kept(spec, selected, path)
    for name in merges:
        if spec['merges'][name].get('records'):
            check_folder(spec['merges'][name]['records'], f'merge {name!r}: records')
        check_folder(osp.join(spec['work_dir'], name), f'merge {name!r}: its folder')
    check_overlaps(spec, merges)
    planned = {name: data_root(entry) for name, entry in spec['datasets'].items()}
    first = {}
    for name in selected:
        try:
            settings = study_settings(spec, name, planned, path, **run)
            first[name] = first_runs(settings, *check_study(settings))[1]
        except (ValueError, FileExistsError) as exc:
            raise ValueError(f'{path}: study {name!r}: {exc}') from None
    for name in needed:
        check_made_dataset(f'{path}: dataset {name!r}', spec['datasets'][name])
    for name in merges:
        entry = spec['merges'][name]
        if entry.get('publish'):
            check_nothing_dropped(spec, name, selected, published_report(entry['publish']))
        for study_name in entry['studies'] if entry.get('records') else []:
            _check_records(spec, study_name, first.get(study_name),
                           osp.join(entry['records'], study_name))
    # last, as the study does it first: it may complete a reused run's record (its data)
    for name in selected:
        made = 'data' not in spec['studies'][name] or osp.isfile(
            osp.join(planned[spec['studies'][name]['data']], MANIFEST))
        try:
            for job in first[name]:
                _check_run_folder(job['run_dir'], job['record'], made)
        except (ValueError, FileExistsError) as exc:
            raise ValueError(f'{path}: study {name!r}: {exc}') from None


def check_kept(spec, selected, path):
    """A spec that keeps records in the repository (a merge with ``records``) keeps
    those of every study it runs: a selected study in no such merge is refused
    before anything trains, since ``--export-finished`` would have nowhere to keep
    its runs and a study longer than a session would lose them with the machine."""
    held = records_folders(spec)
    unkept = [name for name in selected if held and name not in held]
    if unkept:
        raise ValueError(f'{path}: studies {unkept} belong to no merge with "records", '
                         'while the spec keeps the records of its others: their runs '
                         'could not be kept in the repository (add them to a merge '
                         'with "records")')


def _check_records(spec, name, jobs, out_dir):
    """The records folder ``out_dir`` of the spec's study ``name``: no folder of a
    run it exports holds a ``run.json`` the records export did not write. Of a
    study that runs (``jobs``: its first runs), the runs it trains first; of one
    that does not but is finished, its runs (``study_publish.check_export``)."""
    source = osp.join(spec['work_dir'], name)
    if jobs is None:
        if has_report(source):
            check_export(source, out_dir)
        return
    for job in jobs:
        check_replaceable(osp.join(out_dir, osp.basename(job['run_dir'])))


def _check_run_folder(run_dir, record, data_made):
    """A study's run folder holds nothing, or this run (``run_folders.existing_run``).
    Where its data is not made yet, what the data will be is not known: the run's
    other keys are compared, and nothing is written (a reused run's record is
    completed by the study, once the data is made)."""
    if data_made or not has_record(run_dir):
        existing_run(run_dir, record)
        return
    held = read_record(run_dir)
    differs = differing_keys(held, dict(record, dataset=held.get('dataset')))
    if differs:
        raise FileExistsError(f'{run_dir} already holds a run of another study (its '
                              f'{", ".join(differs)} differ): use a new work_dir, or remove '
                              'that folder')


def _write_merge(spec, name, entry):
    """Merge the spec's studies of ``entry`` into ``work_dir/<name>`` (skipped while
    one has not finished, or with ``partial`` while none has: the report then lists
    the unfinished studies' cells as pending); publish it and export its finished
    studies' records (both checked before the merge is written)."""
    sources = [osp.join(spec['work_dir'], s) for s in entry['studies']]
    absent = [s for s in sources if not has_report(s)]
    if absent and (not entry.get('partial') or len(absent) == len(sources)):
        _print(f'merge {name}: skipped, {absent} not run yet')
        return
    sources = [s for s in sources if s not in absent]
    pending = [(study_entry.get('regime', ''), optimizer)
               for study_entry in (spec['studies'][osp.basename(s)] for s in absent)
               for optimizer in study_entry.get('optimizers', DEFAULT_OPTIMIZERS)]
    records = entry.get('records')
    if entry.get('publish'):
        published_report(entry['publish'])
    for source in sources if records else []:
        check_export(source, osp.join(records, osp.basename(source)))
    out = osp.join(spec['work_dir'], name)
    merge(out, sources, entry.get('title', ''), overwrite=True, pending=pending)
    if entry.get('publish'):
        publish(out, entry['publish'])
        _print(f"merge {name}: published to {entry['publish']}.md/.json/.png"
               + (f' ({len(absent)} of its studies not finished yet)' if absent else ''))
    if records:
        copied = sum(export_records(source, osp.join(records, osp.basename(source)))
                     for source in sources)
        _print(f"merge {name}: the records of its {copied} runs are in {records}")


def records_folders(spec):
    """``{study: records folder}`` for every study of ``spec`` in a merge with
    ``records`` (where ``export_finished`` keeps its runs)."""
    return {study_name: entry['records'] for entry in spec['merges'].values()
            if entry.get('records') for study_name in entry['studies']}


def export_finished(path, only=None):
    """Copy the records of the finished runs of the spec's studies (``only``: these)
    to the ``records`` folder of the merge that holds each, whether or not the study
    is finished; with ``resume_points`` in the spec, also the newest resume point of
    each unfinished run to ``<resume_points>/<study>/`` (``export_resume_points``);
    train nothing. A study that takes more than one session keeps its progress in
    the repository this way, and the next session resumes from it."""
    spec = load_spec(path)
    held = records_folders(spec)
    names = [name for name in spec['studies'] if not only or name in only]
    missing = [name for name in names if name not in held]
    if missing:
        raise ValueError(f'studies {missing} belong to no merge with "records": there is '
                         'nowhere to keep their runs')
    check_overlaps(spec, list(spec['merges']))
    for name in names:
        work_dir = osp.join(spec['work_dir'], name)
        # the resume points first: a run that finishes meanwhile keeps its point until the
        # next export, and its record is in the records export after it
        if spec.get('resume_points'):
            out = osp.join(spec['resume_points'], name)
            copied = export_resume_points(work_dir, out)
            if copied:  # a run whose point was exported already says nothing
                _print(f'{name}: a newer resume point of {copied} unfinished runs copied to '
                       f'{out}')
        runs = finished_runs(work_dir) if osp.isdir(work_dir) else []
        if not runs:
            _print(f'{name}: no finished runs in {work_dir}')
        else:
            out = osp.join(held[name], name)
            copied = export_records(work_dir, out, runs)
            _print(f'{name}: the records of its {copied} finished runs are in {out}')
