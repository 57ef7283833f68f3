"""The checks of a study spec (``study_spec``) that come before anything is made:
each entry's keys and JSON types, the folders it names (none inside another:
``check_overlaps``), and a dataset already made, whose manifest must say it was
made with the spec's arguments (``check_made_dataset``); and the one place
that turns a spec's dataset into the maker's arguments (``maker_arguments``).
A spec run may not drop a study a merge it writes has published
(``check_nothing_dropped``); ``published_studies`` names those studies. A study
entry given as another's difference (``like``) is expanded here too
(``expand_likes``), before its settings are checked."""
import copy
import inspect
import json
import os
import os.path as osp

from .study_publish import published_report
from .synthetic import (
    IDENTITY_ARGUMENTS,
    NOISE_KINDS,
    make_coco_stuff,
    make_voc,
    manifest_identity,
)
from .tool_args import check_count, check_folder

# The maker of each kind of dataset a spec may ask for.
MAKERS = {'voc': make_voc, 'coco-stuff': make_coco_stuff}


class JSONType:
    """A JSON type a spec's key takes: ``accepts(value)``, named in refusals.

    Args:
        name (str): as a refusal names it ("a list of integers").
        accepts (callable): whether a value is of the type.
    """

    def __init__(self, name, accepts):
        self.name, self.accepts = name, accepts


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _list_of(name, accepts):
    return JSONType(f'a list of {name}',
                    lambda v: isinstance(v, list) and all(accepts(x) for x in v))


STRING = JSONType('a string', lambda v: isinstance(v, str))
INTEGER = JSONType('an integer', _is_int)
NUMBER = JSONType('a number', _is_number)
BOOLEAN = JSONType('true or false', lambda v: isinstance(v, bool))
OBJECT = JSONType('a JSON object', lambda v: isinstance(v, dict))
STRINGS = _list_of('strings', lambda v: isinstance(v, str))
INTEGERS = _list_of('integers', _is_int)
NUMBERS = _list_of('numbers', _is_number)
SPLIT = JSONType('"test" or a JSON object of dataset fields',
                 lambda v: v == 'test' or isinstance(v, dict))


def check_entry(where, entry, types):
    """Refuse an entry that is not a JSON object, holds a key not in ``types``, or
    a value not of its key's type: a ValueError naming ``where``, the key and
    the type expected."""
    if not isinstance(entry, dict):
        raise ValueError(f'{where} must be a JSON object, got {type(entry).__name__}')
    unknown = sorted(set(entry) - set(types))
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; allowed: {sorted(types)}')
    for key, value in entry.items():
        if not types[key].accepts(value):
            raise ValueError(f'{where}: "{key}" must be {types[key].name}, got '
                             f'{json.dumps(value)[:60]}')


# What a study entry with ``like`` does not take from the study it names: which studies'
# runs it copies is a relation between two studies, not a setting (the longer study of a
# pair that copies each other's runs would otherwise name itself); a title names one study.
NOT_INHERITED = ('like', 'reuse_runs_of', 'title')


def expand_likes(path, studies):
    """The spec's study entries with each ``"like": NAME`` replaced by the settings
    it stands for: every key of study NAME's entry (itself expanded first, so a
    ``like`` may name one that has a ``like``) but those in ``NOT_INHERITED``
    (``reuse_runs_of``, ``title``), then
    the entry's own keys in place of NAME's (a key's whole value: ``cfg_options``
    or ``pretrain`` given here replaces NAME's, it is not merged into it). A study
    that differs from another in a key or two (a rerun at twice the budget) is then
    written as that difference. A ``like`` naming no other study of the spec, or a
    cycle of them, is refused."""
    expanded = {}

    def settings(name, chain):
        if name in expanded:
            return expanded[name]
        entry = studies[name]
        other = entry.get('like')
        if other is None:
            expanded[name] = copy.deepcopy(entry)
            return expanded[name]
        where = f'{path}: study {name!r}'
        if other == name:
            raise ValueError(f'{where} is "like" itself: name another study of the spec')
        if other not in studies:
            raise ValueError(f'{where} is "like" {other!r}, which is not another study of the '
                             f'spec ({sorted(set(studies) - {name})})')
        if other in chain:
            cycle = ' -> '.join(chain[chain.index(other):] + [other])
            raise ValueError(f'{where}: its "like" entries name each other in a cycle '
                             f'({cycle}): one of them must give its settings in full')
        base = settings(other, chain + [other])
        # deep copies: no list or dict of one study's entry is another's
        expanded[name] = copy.deepcopy(dict({key: value for key, value in base.items()
                                             if key not in NOT_INHERITED}, **entry))
        del expanded[name]['like']
        return expanded[name]

    return {name: settings(name, [name]) for name in studies}


def check_dataset_values(where, entry):
    """A spec's dataset: its kind, ``out_dir``, sizes, seed and label noise."""
    if entry.get('dataset') not in MAKERS or not entry.get('out_dir'):
        raise ValueError(f'{where} needs "dataset" (voc or coco-stuff) and "out_dir"')
    for key in ('num_train', 'num_val', 'num_test', 'num_aug'):
        if key in entry:
            check_count(f'{where}: {key}', entry[key], 0)
    if 'num_aug' in entry and entry['dataset'] != 'voc':
        raise ValueError(f'{where}: num_aug is a VOC size (the aug list); {entry["dataset"]} '
                         'has none')
    if 'seed' in entry:
        check_count(f'{where}: seed', entry['seed'], 0, 2**32 - 1)
    rate = entry.get('label_noise', 0)
    if not 0 <= rate <= 1:
        raise ValueError(f'{where}: label_noise must be a fraction in [0, 1], got {rate!r}')
    kind = entry.get('noise_kind')
    if kind is not None and kind not in NOISE_KINDS:
        raise ValueError(f'{where}: noise_kind {kind!r} is not one of {sorted(NOISE_KINDS)}')
    if rate and kind is None:
        raise ValueError(f'{where}: label_noise needs a noise_kind, one of {sorted(NOISE_KINDS)}')


def data_root(entry):
    """The data root of a spec's dataset (where its maker writes it)."""
    if entry['dataset'] == 'voc':
        return osp.join(entry['out_dir'], 'VOCdevkit', 'VOC2012')
    return osp.join(entry['out_dir'], 'coco_stuff164k')


def maker_arguments(entry):
    """The maker of a spec's dataset and the keyword arguments it is called with."""
    kwargs = {k: entry[k] for k in ('num_train', 'num_val', 'num_test', 'seed') if k in entry}
    if entry.get('label_noise'):
        kwargs.update(noise_rate=entry['label_noise'], noise_kind=entry.get('noise_kind'))
    if entry['dataset'] == 'voc':
        if 'num_aug' in entry:
            kwargs['num_aug'] = entry['num_aug']
    elif entry.get('all_classes'):
        # as make_synthetic_dataset.py: every class used appears in validation
        kwargs.update(num_used_classes=171)
        kwargs.setdefault('num_val', 171)
    kwargs['long_tail'] = bool(entry.get('all_classes'))
    return MAKERS[entry['dataset']], kwargs


def _made_and_asked(entry, identity):
    """Each key a manifest can tell: (what the dataset was made with, what the spec
    asks for), named as the spec names it (the maker's ``long_tail`` is the spec's
    ``all_classes``). The maker's arguments a manifest written before it recorded
    them lacks (seed, long tail, size, classes used) are unknown, not compared;
    such a manifest tells a noisy dataset's seed by its noise's."""
    maker, kwargs = maker_arguments(entry)
    asked = {name: p.default for name, p in inspect.signature(maker).parameters.items()}
    asked.update(kwargs)
    pairs = {key: (made, asked[key]) for key, made in identity['counts'].items()}
    noise = identity['label_noise']
    pairs['label_noise'] = (noise['rate'] if noise else 0, kwargs.get('noise_rate', 0))
    pairs['noise_kind'] = (noise['kind'] if noise else None, kwargs.get('noise_kind'))
    if noise and 'noise_rate' in kwargs:
        pairs['seed'] = (noise['seed'], asked['seed'])
    spec_names = {'long_tail': 'all_classes'}
    for key in IDENTITY_ARGUMENTS:
        if key in identity:
            made, wanted = identity[key], asked[key]
            pairs[spec_names.get(key, key)] = (made, list(wanted) if key == 'size' else wanted)
    return pairs


def check_made_dataset(where, entry):
    """A spec's dataset already there must be the one the spec asks for: its
    manifest's sizes, label noise (kind, rate, seed) and the maker's arguments it
    records (seed, all_classes, size, classes used: ``_made_and_asked``) those of
    the spec's arguments, else a ValueError naming the keys that differ. A data root that
    holds files but no manifest (data this tool did not make), or an ``out_dir``
    under a file, is refused too. Nothing is checked of a dataset not made yet."""
    root = data_root(entry)
    check_folder(root, f'{where}: its data root')
    identity = manifest_identity(root)
    if identity is None:
        if osp.isdir(root) and any(files for _, _, files in os.walk(root)):
            raise ValueError(f'{where}: {root} holds files but no synthetic manifest: it is not '
                             'a dataset this tool made, so it is neither used nor written '
                             'over; give the dataset another out_dir')
        return
    pairs = _made_and_asked(entry, identity)
    differ = [key for key, (made, asked) in pairs.items() if made != asked]
    if differ:
        made = ', '.join(f'{k} {pairs[k][0]!r}' for k in differ)
        asked = ', '.join(f'{k} {pairs[k][1]!r}' for k in differ)
        raise ValueError(f'{where} at {root} differs from the spec in: {", ".join(differ)} '
                         f'(made with {made}; the spec asks for {asked}); it is neither used '
                         'nor made again over: remove that dataset, or give the spec\'s '
                         'another out_dir')


def _inside(a, b):
    """Whether path ``a`` is ``b`` or lies inside it (both resolved)."""
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep)


def _overlap(a, b):
    a, b = osp.realpath(a), osp.realpath(b)
    return _inside(a, b) or _inside(b, a)


def check_overlaps(spec, merges):
    """Refuse a spec whose folders overlap (one is, or holds, another): its work
    dir, the datasets' ``out_dir`` and data roots, each merge's ``records``
    folder and ``publish`` files (``merges``: the merges to write), and the
    spec's ``resume_points`` folder. A records
    export would remove run folders, a publish would replace a study's report or
    a dataset's files: a ValueError naming both, before anything is written.
    A ``publish`` beside the studies in the work dir (not inside one) is allowed."""
    work_dir = ('work_dir', spec['work_dir'])
    data = [(f'dataset {name!r} out_dir', entry['out_dir'])
            for name, entry in spec['datasets'].items()]
    for what, path in data:
        if _overlap(path, work_dir[1]):
            raise ValueError(f'work_dir {work_dir[1]!r} overlaps {what} {path!r}: the runs and '
                             'the data need folders of their own')
    roots = {}
    for name, entry in spec['datasets'].items():
        root = osp.realpath(data_root(entry))
        if root in roots:
            raise ValueError(f'datasets {roots[root]!r} and {name!r} are both made at {root}: '
                             'give each its own out_dir')
        roots[root] = name
    records = [(f'merge {m!r} records', spec['merges'][m]['records']) for m in merges
               if spec['merges'][m].get('records')]
    # a report may be published beside the studies in the work dir, not inside one
    run_folders = [(f'{kind} {name!r} folder', osp.join(spec['work_dir'], name))
                   for kind, key in (('study', 'studies'), ('merge', 'merges'))
                   for name in spec[key]]
    if spec.get('resume_points'):  # it removes run folders the export wrote there
        resume = spec['resume_points']
        for what, folder in [work_dir] + data + [
                (f'merge {m!r} records', entry['records'])
                for m, entry in spec['merges'].items() if entry.get('records')]:
            if _overlap(resume, folder):
                raise ValueError(f'resume_points {resume!r} overlaps {what} {folder!r}: it '
                                 'would replace or remove what is there')
    published = {}
    for name in merges:
        entry = spec['merges'][name]
        if entry.get('records'):  # merges may share a records folder (one per study in it)
            _refuse_overlap(name, 'records', entry['records'], [entry['records']],
                            [work_dir] + data)
        if entry.get('publish'):
            _refuse_overlap(name, 'publish', entry['publish'], [
                f'{entry["publish"]}.{ext}' for ext in ('md', 'json', 'png')],
                run_folders + data + records)
            target = osp.realpath(entry['publish'])
            if target in published:
                raise ValueError(f'merges {published[target]!r} and {name!r} both publish to '
                                 f'{entry["publish"]!r}')
            published[target] = name


def _refuse_overlap(merge, key, value, paths, taken):
    for what, folder in taken:
        if any(_overlap(path, folder) for path in paths):
            raise ValueError(f'merge {merge!r}: {key} {value!r} overlaps {what} {folder!r}: it '
                             'would replace or remove what is there')


def has_report(study_dir):
    """Whether the study in ``study_dir`` has finished and written its study.json
    (a work dir seeded from records holds the runs, not this)."""
    return osp.isfile(osp.join(study_dir, 'study.json'))


def check_nothing_dropped(spec, name, selected, published):
    """Merge ``name`` replaces its ``published`` report (its .json, or None): refuse
    where a study that report holds (its runs' ``source``) has no study.json in
    ``work_dir`` and is not among the ``selected`` studies, which would write it.
    A work dir seeded from the records holds a finished study's runs but not its
    report, and the new report would list that study's cells as not finished. Only
    a ``partial`` merge is written without some of its studies, and only where one
    of them has a study.json or runs now (``study_spec._write_merge``)."""
    entry = spec['merges'][name]
    held = published_study_names(published)
    absent = [study_name for study_name in entry['studies'] if study_name not in selected
              and not has_report(osp.join(spec['work_dir'], study_name))]
    dropped = [study_name for study_name in absent if study_name in held]
    if dropped and entry.get('partial') and len(absent) < len(entry['studies']):
        raise ValueError(f'merge {name!r}: {entry["publish"]}.json publishes the studies '
                         f'{dropped}, which have no study.json in {spec["work_dir"]} (a work '
                         'dir seeded from their records): the merge would list their cells as '
                         'not finished. Run them too (--only, or --with-published; a study '
                         'whose runs have all finished trains nothing and writes its study.json)')


def published_study_names(published):
    """The names of the studies whose runs a ``published`` report (its .json, or
    None) holds: the folder names of its runs' ``source``."""
    return {osp.basename(osp.normpath(run['source'])) for run in (published or {}).get('runs', [])
            if isinstance(run, dict) and isinstance(run.get('source'), str)}


def merges_written(spec, names):
    """The merges a spec run of ``names`` (study and merge names) writes: those
    named, and those holding a study it runs."""
    return [name for name, entry in spec['merges'].items()
            if name in names or set(entry['studies']) & set(names)]


def published_studies(spec, only):
    """The studies that a spec run of ``only`` (study and merge names) must run
    too, in the spec's order, where its work dir was seeded from the records: of
    each merge it writes (one named, or holding a study it runs) that publishes,
    the studies of that merge whose runs its published report holds, and so on
    for the merges these add (``check_nothing_dropped`` refuses a run without
    them). A study the report holds that the merge no longer lists is left out:
    the merge drops it by design."""
    held, names, reports = set(), set(only), {}
    while True:
        for name in merges_written(spec, names):
            entry = spec['merges'][name]
            if entry.get('publish'):
                if name not in reports:
                    reports[name] = published_study_names(published_report(entry['publish']))
                held |= reports[name] & set(entry['studies'])
        if held <= names:
            break
        names |= held
    return [name for name in spec['studies'] if name in held]
