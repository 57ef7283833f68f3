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
the backbone. Each study runs in ``work_dir/<name>``; each merge writes
``work_dir/<name>`` and, with ``publish``, copies its study.md/.json/.png to
``<publish>.md/.json/.png``; with ``records``, copies each of its studies' run
records (``run.json`` and scalars, no checkpoints) to ``<records>/<study>/``,
from where a fresh machine resumes (copy them into ``work_dir``).
"""
import json
import os.path as osp

from .study import StudySettings, study
from .study_publish import export_records, publish
from .study_rebuild import merge
from .tool_args import printer

DATASET_KEYS = {'dataset', 'out_dir', 'num_train', 'num_val', 'num_test', 'num_aug',
                'all_classes', 'label_noise', 'noise_kind', 'seed'}
STUDY_KEYS = {'config', 'data', 'variants', 'optimizers', 'lrs', 'search_seeds', 'seeds',
              'iters', 'regime', 'train_miou', 'report_split', 'pretrain', 'title',
              'cfg_options', 'gpus', 'extend_edges'}
MERGE_KEYS = {'studies', 'title', 'publish', 'records'}
TOP_KEYS = {'work_dir', 'datasets', 'studies', 'merges', 'description'}
# The report split of the synthetic makers' --num-test, per dataset kind.
TEST_SPLITS = {
    'voc': {'ann_file': 'ImageSets/Segmentation/test.txt'},
    'coco-stuff': {'data_prefix.img_path': 'images/test2017',
                   'data_prefix.seg_map_path': 'annotations/test2017'},
}


_print = printer('study')


def _check_keys(where, entry, allowed):
    if not isinstance(entry, dict):
        raise ValueError(f'{where} must be a JSON object, got {type(entry).__name__}')
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}')


def load_spec(path):
    """The spec in ``path``, its shape checked (unknown keys, missing names)."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError as exc:
        raise ValueError(f'cannot read the study spec {path}: {exc}') from None
    except ValueError as exc:
        raise ValueError(f'the study spec {path} is not valid JSON: {exc}') from None
    _check_keys(path, spec, TOP_KEYS)
    if not isinstance(spec.get('work_dir'), str) or not spec['work_dir']:
        raise ValueError(f'{path}: "work_dir" (a folder for the runs) is required')
    datasets = spec.setdefault('datasets', {})
    studies = spec.setdefault('studies', {})
    merges = spec.setdefault('merges', {})
    for name, entry in datasets.items():
        _check_keys(f'{path}: dataset {name!r}', entry, DATASET_KEYS)
        if entry.get('dataset') not in TEST_SPLITS or not entry.get('out_dir'):
            raise ValueError(f'{path}: dataset {name!r} needs "dataset" (voc or coco-stuff) '
                             'and "out_dir"')
    for name, entry in studies.items():
        _check_keys(f'{path}: study {name!r}', entry, STUDY_KEYS)
        if not entry.get('config'):
            raise ValueError(f'{path}: study {name!r} needs a "config"')
        for key in ('data', ):
            if key in entry and entry[key] not in datasets:
                raise ValueError(f'{path}: study {name!r} names dataset {entry[key]!r}, '
                                 f'which the spec does not define ({sorted(datasets)})')
        pretrain = entry.get('pretrain')
        if pretrain is not None:
            _check_keys(f'{path}: study {name!r} pretrain', pretrain, {'iters', 'data'})
            if pretrain.get('data') not in datasets:
                raise ValueError(f'{path}: study {name!r} pretrains on {pretrain.get("data")!r}'
                                 ', which the spec does not define')
    for name, entry in merges.items():
        _check_keys(f'{path}: merge {name!r}', entry, MERGE_KEYS)
        missing = [s for s in entry.get('studies', []) if s not in studies]
        if not entry.get('studies') or missing:
            raise ValueError(f'{path}: merge {name!r} needs "studies" naming studies of the '
                             f'spec (unknown: {missing})')
        if name in studies:
            raise ValueError(f'{path}: {name!r} is both a study and a merge')
    return spec


def data_root(entry):
    if entry['dataset'] == 'voc':
        return osp.join(entry['out_dir'], 'VOCdevkit', 'VOC2012')
    return osp.join(entry['out_dir'], 'coco_stuff164k')


def make_dataset(entry):
    """Make a spec's dataset unless it is there already; returns its data root."""
    from .synthetic import MANIFEST, make_coco_stuff, make_voc
    root = data_root(entry)
    if osp.isfile(osp.join(root, MANIFEST)):
        return root
    kwargs = {k: entry[k] for k in ('num_train', 'num_val', 'num_test', 'seed')
              if k in entry}
    if entry.get('label_noise'):
        kwargs.update(noise_rate=entry['label_noise'], noise_kind=entry.get('noise_kind'))
    if entry['dataset'] == 'voc':
        if 'num_aug' in entry:
            kwargs['num_aug'] = entry['num_aug']
        make_voc(entry['out_dir'], long_tail=bool(entry.get('all_classes')), **kwargs)
    else:
        if entry.get('all_classes'):
            # as make_synthetic_dataset.py: every class used appears in validation
            kwargs.update(num_used_classes=171)
            kwargs.setdefault('num_val', 171)
        make_coco_stuff(entry['out_dir'], long_tail=bool(entry.get('all_classes')), **kwargs)
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
        optimizers=entry.get('optimizers', ['adamw']), seeds=entry.get('seeds', [0]),
        work_dir=osp.join(spec['work_dir'], name), gpus=entry.get('gpus', 1),
        cfg_options=entry.get('cfg_options'), pretrain_iters=pretrain.get('iters', 0),
        pretrain_data_root=roots.get(pretrain.get('data')), title=entry.get('title', ''),
        data_root=roots.get(entry.get('data')), iters=entry.get('iters'),
        regime=entry.get('regime', ''), train_miou=entry.get('train_miou', False),
        lrs=entry.get('lrs'), search_seeds=entry.get('search_seeds'), jobs=jobs,
        gpus_per_run=gpus_per_run, threads_per_run=threads_per_run,
        extend_edges=entry.get('extend_edges', 2),
        report_split=report_split(entry, spec['datasets']), spec=dict(file=path, study=name))


def run_spec(path, jobs=1, only=None, gpus_per_run=0, threads_per_run=None):
    """Make the datasets, run the studies (resuming) and write the merges of a spec."""
    spec = load_spec(path)
    studies = spec['studies']
    if only:
        unknown = [name for name in only if name not in studies and name not in spec['merges']]
        if unknown:
            raise ValueError(f'--only {unknown}: not a study or merge of {path} '
                             f'({sorted(studies) + sorted(spec["merges"])})')
    selected = [name for name in studies if not only or name in only]
    needed = {studies[n]['data'] for n in selected if 'data' in studies[n]} | {
        studies[n]['pretrain']['data'] for n in selected if studies[n].get('pretrain')}
    roots = {name: make_dataset(spec['datasets'][name]) for name in spec['datasets']
             if name in needed}
    for name in selected:
        _print(f'study {name} ({path})')
        study(study_settings(spec, name, roots, path, jobs, gpus_per_run, threads_per_run))
    for name, entry in spec['merges'].items():
        if only and name not in only and not set(entry['studies']) & set(selected):
            continue
        _write_merge(spec, name, entry)


def _write_merge(spec, name, entry):
    """Merge the spec's studies of ``entry`` into ``work_dir/<name>`` (skipped
    while one has not run yet); publish it and export its studies' records."""
    sources = [osp.join(spec['work_dir'], s) for s in entry['studies']]
    absent = [s for s in sources if not osp.isfile(osp.join(s, 'study.json'))]
    if absent:
        _print(f'merge {name}: skipped, {absent} not run yet')
        return
    out = osp.join(spec['work_dir'], name)
    merge(out, sources, entry.get('title', ''), overwrite=True)
    if entry.get('publish'):
        publish(out, entry['publish'])
        _print(f"merge {name}: published to {entry['publish']}.md/.json/.png")
    if entry.get('records'):
        copied = sum(export_records(source, osp.join(entry['records'], osp.basename(source)))
                     for source in sources)
        _print(f"merge {name}: the records of its {copied} runs are in {entry['records']}")
