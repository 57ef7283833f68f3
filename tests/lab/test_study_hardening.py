"""Hardening, round 4 (issue 31): study specs, run records and published pages never
delete, overwrite or mislabel. Each refusal names the key, path or value at fault and
comes before anything is made, deleted, overwritten or trained (folder snapshots and
the FakeTraining stand-in show it)."""
import json
import os
import queue
import shutil
import sys
import threading

import pytest
from helpers import REPO, VOC_CFG, snapshot
from study_helpers import FakeTraining, fake_study_run

from ngl_lab import (
    jobs,
    study,
    study_cli,
    study_publish,
    study_rebuild,
    study_spec,
    study_spec_checks,
)
from ngl_lab.run_folders import existing_run, move_aside
from ngl_lab.study_settings import StudySettings
from ngl_lab.synthetic import MANIFEST, make_voc

TEST_SPLIT = {'ann_file': 'ImageSets/Segmentation/test.txt'}


def _spec(tmp_path, **merge):
    """A spec of one tiny dataset, one study of one run and one merge."""
    return dict(
        work_dir=str(tmp_path / 'work'),
        datasets=dict(tiny=dict(dataset='voc', out_dir=str(tmp_path / 'data'), num_train=2,
                                num_val=2, num_test=2)),
        studies=dict(s1=dict(config=VOC_CFG, data='tiny', variants=['ce'], optimizers=['adamw'],
                             seeds=[0], iters=8, regime='clean')),
        merges=dict(m=dict(dict(studies=['s1'], publish=str(tmp_path / 'pub' / 'm'),
                                records=str(tmp_path / 'records')), **merge)))


def _write(tmp_path, spec):
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    return str(path)


def _refused(tmp_path, monkeypatch, spec, error, match):
    """Run ``spec``: refused with ``error`` matching ``match``, nothing written or trained."""
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    path = _write(tmp_path, spec)
    before = snapshot(tmp_path)
    with pytest.raises(error, match=match):
        study_spec.run_spec(path)
    assert snapshot(tmp_path) == before and fake.calls == []
    return fake


def _finished_study(work_dir):
    """A finished study of two runs (run folders and study.json) in ``work_dir``."""
    fake_study_run(work_dir, 'ce', 0, [10.0, 40.0])
    fake_study_run(work_dir, 'ngl', 0, [12.0, 44.0])
    study_rebuild.collect(str(work_dir))


# --- 1. records, publish, work_dir and the data folders never overlap -----------------------

@pytest.mark.parametrize('key, where, named', [
    ('records', 'work', 'records'),  # the merge's records would be the run folders
    ('records', 'work/recs', 'records'),
    ('publish', 'work/s1/study', 'publish'),  # would replace the study's own report
    ('records', 'data', 'records'),
    ('records', 'data/VOCdevkit', 'records'),
    ('publish', 'records/s1/x', 'publish'),
])
def test_records_and_publish_may_not_overlap_the_work_dir_data_or_each_other(
        tmp_path, monkeypatch, key, where, named):
    os.makedirs(tmp_path / 'work' / 's1')
    (tmp_path / 'work' / 's1' / 'checkpoint.pth').write_text('weights')
    spec = _spec(tmp_path, **{key: str(tmp_path / where)})
    _refused(tmp_path, monkeypatch, spec, ValueError, rf'merge .m.: {named} .*{where}.* overlaps')
    assert not (tmp_path / 'data').exists()


@pytest.mark.parametrize('where', ['work', 'work/s1', 'data', 'records', 'records/s1'])
def test_resume_points_may_not_overlap_the_work_dir_data_or_records(
        tmp_path, monkeypatch, where):
    """The resume points export removes the folders it wrote there: refused where it
    would lie over the runs, the data or the records, named, before anything is made."""
    spec = dict(_spec(tmp_path), resume_points=str(tmp_path / where))
    _refused(tmp_path, monkeypatch, spec, ValueError, rf'resume_points .*{where}.* overlaps')
    with pytest.raises(ValueError, match=rf'resume_points .*{where}.* overlaps'):
        study_spec.export_finished(_write(tmp_path, spec))


def test_a_work_dir_inside_a_data_folder_is_refused(tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    spec['work_dir'] = str(tmp_path / 'data' / 'work')
    _refused(tmp_path, monkeypatch, spec, ValueError, r'work_dir .*data.work.* overlaps .*tiny')


# --- 2. the records clean-up removes only records this tool wrote ---------------------------

def test_records_clean_up_removes_only_records_it_wrote(tmp_path, capsys):
    work, out = tmp_path / 'work', tmp_path / 'records'
    _finished_study(work)
    study_publish.export_records(str(work), str(out))
    # a stale record of a run the study no longer holds (written by the export): removed
    stale = fake_study_run(tmp_path / 'old', 'ce', 5, [10.0, 40.0])
    shutil.copytree(stale, out / 'ce_adamw_seed5')
    (out / 'ce_adamw_seed5' / 'config.py').unlink()  # the export copies no config
    # not written by the export: a run.json that is no record, a record with notes of
    # the user's, a record whose folder names another run
    (out / 'mine').mkdir()
    (out / 'mine' / 'run.json').write_text('{not json')
    (out / 'mine' / 'data.csv').write_text('1,2')
    shutil.copytree(out / 'ce_adamw_seed5', out / 'ngl_adamw_seed7')
    shutil.copytree(out / 'ce_adamw_seed5', out / 'ce_adamw_seed6')
    (out / 'ce_adamw_seed6' / 'run.json').write_text(json.dumps(dict(
        json.loads((out / 'ce_adamw_seed5' / 'run.json').read_text()), seed=6)))
    (out / 'ce_adamw_seed6' / 'NOTES.md').write_text('my notes')
    # the run's own record folder, with a file of the user's in it
    (out / 'ce_adamw_seed0' / 'NOTES.md').write_text('kept too')
    kept = {name: snapshot(out / name) for name in ('mine', 'ngl_adamw_seed7')}
    assert study_publish.export_records(str(work), str(out)) == 2
    assert not (out / 'ce_adamw_seed5').exists()
    assert {name: snapshot(out / name) for name in kept} == kept
    assert set(snapshot(out / 'ce_adamw_seed6')) == {'NOTES.md'}
    assert (out / 'ce_adamw_seed0' / 'NOTES.md').read_text() == 'kept too'
    assert (out / 'ce_adamw_seed0' / 'run.json').is_file()
    said = capsys.readouterr().out
    for name in ('mine', 'ngl_adamw_seed7', 'ce_adamw_seed6', 'ce_adamw_seed0'):
        assert f'{out / name}' in said, name


def test_a_records_folder_whose_run_json_is_not_a_record_is_refused_untouched(tmp_path):
    work, out = tmp_path / 'work', tmp_path / 'records'
    _finished_study(work)
    os.makedirs(out / 'ngl_adamw_seed0')
    (out / 'ngl_adamw_seed0' / 'run.json').write_text('my own run.json')
    before = snapshot(out)
    with pytest.raises(ValueError, match=r'records.ngl_adamw_seed0.run\.json .*not a record'):
        study_publish.export_records(str(work), str(out))
    assert snapshot(out) == before


# --- 3. publish replaces only a study this tool published ------------------------------------

@pytest.mark.parametrize('name, ext', [('notes', 'md'), ('README', 'md'), ('data', 'json'),
                                       ('figure', 'png')])
def test_publish_refuses_to_replace_a_file_it_did_not_publish(tmp_path, name, ext):
    work = tmp_path / 'work'
    _finished_study(work)
    (tmp_path / f'{name}.{ext}').write_text('the user\'s own')
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=rf'{name}\.{ext} .*not a study report'):
        study_publish.publish(str(work), str(tmp_path / name))
    assert snapshot(tmp_path) == before


def test_publish_replaces_a_study_it_published_and_the_docs_studies(tmp_path):
    work = tmp_path / 'work'
    _finished_study(work)
    study_publish.publish(str(work), str(tmp_path / 'pub' / 'x'))
    study_publish.publish(str(work), str(tmp_path / 'pub' / 'x'))  # its own: replaced
    for name in ('tuned', 'regimes', 'coco-bias', 'voc', 'coco', 'coco-3000'):
        for ext in ('md', 'json', 'png'):
            shutil.copyfile(os.path.join(REPO, 'docs', 'study', f'{name}.{ext}'),
                            tmp_path / 'pub' / f'{name}.{ext}')
        study_publish.publish(str(work), str(tmp_path / 'pub' / name))
        assert (tmp_path / 'pub' / f'{name}.md').read_text() == (work / 'study.md').read_text()


def test_a_spec_that_would_publish_over_a_foreign_file_is_refused_first(tmp_path, monkeypatch):
    (tmp_path / 'notes.md').write_text('my notes')
    _refused(tmp_path, monkeypatch, _spec(tmp_path, publish=str(tmp_path / 'notes')),
             ValueError, r'notes\.md .*not a study report')


# --- 4. a changed dataset is not reused; records name their data by content ------------------

@pytest.mark.parametrize('change, named', [
    (dict(label_noise=0.4, noise_kind='uniform'), r'label_noise, noise_kind'),
    (dict(num_train=3), r'num_train'),
    (dict(num_test=0), r'num_test'),
])
@pytest.mark.slow
def test_a_dataset_made_with_other_arguments_is_refused(tmp_path, monkeypatch, change, named):
    make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2)
    spec = _spec(tmp_path)
    spec['datasets']['tiny'].update(change)
    _refused(tmp_path, monkeypatch, spec, ValueError, rf"dataset 'tiny' .*differs .*: {named}")


@pytest.mark.parametrize('made_with, change, named', [
    (dict(seed=3), dict(seed=4), r'seed'),  # a clean dataset's seed
    (dict(), dict(all_classes=True), r'all_classes'),
    (dict(size=(32, 40)), dict(), r'size'),
    (dict(num_aug=2), dict(), r'num_aug'),
])
def test_a_clean_dataset_made_with_other_arguments_is_refused(tmp_path, monkeypatch, made_with,
                                                               change, named):
    make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2, **made_with)
    spec = _spec(tmp_path)
    spec['datasets']['tiny'].update(change)
    _refused(tmp_path, monkeypatch, spec, ValueError, rf"dataset 'tiny' .*differs .*: {named} ")


def _without_arguments(root):
    """The manifest of ``root`` as written before it held the maker's arguments."""
    path = os.path.join(root, MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    del manifest['arguments']
    with open(path, 'w') as f:
        json.dump(manifest, f)


@pytest.mark.slow
def test_a_dataset_whose_manifest_lacks_the_arguments_is_reused(tmp_path, monkeypatch):
    """Datasets made before the manifest held the maker's arguments (the plateau study's):
    what it does not say is not compared, and its runs, recorded without it, are reused."""
    root = make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2, seed=3)
    _without_arguments(root)
    _voc_study(tmp_path, monkeypatch, root)
    run_json = tmp_path / 'w' / 'ce_adamw_seed0' / 'run.json'
    assert 'seed' not in json.loads(run_json.read_text())['dataset']
    # the manifest is written again with the arguments: the runs recorded without them match
    make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2, seed=3, overwrite=True)
    fake = FakeTraining()
    _voc_study(tmp_path, monkeypatch, root, fake)
    assert fake.calls == []
    # and a spec of another seed reuses the dataset that does not say its seed
    spec = _spec(tmp_path)
    spec['datasets']['tiny'].update(seed=4)
    _without_arguments(root)
    study_spec.check_made_dataset('tiny', spec['datasets']['tiny'])


def test_identities_are_compared_on_the_keys_both_hold():
    from ngl_lab.run_record import differing_keys
    old = dict(counts=dict(num_train=2), label_noise=None)
    held = dict(variant='ce', dataset=old)
    assert differing_keys(held, dict(held, dataset=dict(old, seed=3, size=[8, 8]))) == []
    assert differing_keys(held, dict(held, dataset=dict(old, counts=dict(num_train=3),
                                                       seed=3))) == ['dataset']
    assert differing_keys(held, dict(held, dataset=None)) == ['dataset']
    assert differing_keys(dict(held, dataset=dict(old, seed=1)),
                          dict(held, dataset=dict(old, seed=2))) == ['dataset']


def test_noise_of_another_seed_is_another_dataset(tmp_path, monkeypatch):
    make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2, noise_rate=0.4,
             noise_kind='uniform', seed=3)
    spec = _spec(tmp_path)
    spec['datasets']['tiny'].update(label_noise=0.4, noise_kind='uniform', seed=4)
    _refused(tmp_path, monkeypatch, spec, ValueError, r"dataset 'tiny' .*differs .*: seed")


def _voc_study(tmp_path, monkeypatch, root, fake=None):
    monkeypatch.setattr(study, 'train_run', fake or FakeTraining())
    return study.study(StudySettings(VOC_CFG, ['ce'], optimizers=['adamw'], seeds=[0],
                                     work_dir=str(tmp_path / 'w'), data_root=root, iters=8,
                                     threads_per_run=1))


@pytest.mark.slow
def test_a_run_record_names_its_data_by_content(tmp_path, monkeypatch):
    root = make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2)
    _voc_study(tmp_path, monkeypatch, root)
    record = json.loads((tmp_path / 'w' / 'ce_adamw_seed0' / 'run.json').read_text())
    assert record['dataset'] == dict(counts=dict(num_train=2, num_val=2, num_test=2, num_aug=0),
                                     label_noise=None, seed=0, long_tail=False, size=[96, 128])
    # the same folder, remade with label noise: the finished run is not reused
    make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2, noise_rate=0.4,
             noise_kind='uniform', overwrite=True)
    fake = FakeTraining()
    before = snapshot(tmp_path / 'w')
    with pytest.raises(FileExistsError, match=r'ce_adamw_seed0 .*another study .*dataset'):
        _voc_study(tmp_path, monkeypatch, root, fake)
    assert fake.calls == [] and snapshot(tmp_path / 'w') == before


@pytest.mark.slow
def test_a_record_written_before_the_data_identity_is_reused_and_completed(tmp_path,
                                                                           monkeypatch):
    """Records written by 0.5 (docs/study/records) lack ``dataset``: the data now at their
    data root is taken as theirs, and written into the record when it is reused."""
    root = make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2)
    _voc_study(tmp_path, monkeypatch, root)
    path = tmp_path / 'w' / 'ce_adamw_seed0' / 'run.json'
    old = json.loads(path.read_text())
    del old['dataset']
    path.write_text(json.dumps(old))
    fake = FakeTraining()
    _voc_study(tmp_path, monkeypatch, root, fake)
    assert fake.calls == []  # reused
    assert json.loads(path.read_text())['dataset']['counts']['num_train'] == 2


def test_a_kept_record_of_the_tuned_study_is_read_and_matched():
    """The records in the repository (written without ``dataset``) are still run records."""
    from ngl_lab.run_record import differing_keys, read_record
    folder = os.path.join(REPO, 'docs', 'study', 'records', 'tuned', 'clean-adamw',
                          'ce_adamw_lr0.001_seed0')
    held = read_record(folder)
    assert 'dataset' not in held
    assert differing_keys(held, dict(held, dataset={'counts': {}})) == []


# --- 5. study and merge names are plain names -------------------------------------------------

@pytest.mark.parametrize('kind, name', [('study', '../escaped'), ('study', 'a/b'),
                                        ('study', ''), ('merge', '..'), ('merge', '.'),
                                        ('study', '/abs')])
def test_names_that_leave_the_work_dir_are_refused(tmp_path, kind, name):
    spec = _spec(tmp_path)
    if kind == 'study':
        spec['studies'][name] = spec['studies'].pop('s1')
        spec['merges']['m']['studies'] = [name]
    else:
        spec['merges'][name] = spec['merges'].pop('m')
    with pytest.raises(ValueError, match=rf"{kind} name {name!r} .*plain name"):
        study_spec.load_spec(_write(tmp_path, spec))


def test_a_study_or_merge_folder_named_dot_dot_is_refused():
    with pytest.raises(ValueError, match=r"study name '\.\.' .*plain name"):
        StudySettings('c.py', ['ce'], spec=dict(file='s.json', study='..')).check()
    with pytest.raises(ValueError, match=r"--work-dir 'w/\.\.' .*names no folder of its own"):
        study_rebuild.merge('w/..', ['a'])


# --- 6. learning rates that name one folder ---------------------------------------------------

def test_rates_that_print_alike_are_refused():
    with pytest.raises(ValueError, match=r'learning rates 0\.001 and 0\.0010000001 .*_lr0\.001_'):
        StudySettings('c.py', ['ce'], lrs=[0.001, 0.0010000001], report_split=TEST_SPLIT).check()
    StudySettings('c.py', ['ce'], lrs=[0.001, 0.0010001], report_split=TEST_SPLIT).check()


# --- 7. wrong JSON types: one line naming the key and the type, before anything is made ------

@pytest.mark.parametrize('edit, match', [
    (lambda s: s.update(datasets=[]), r'"datasets" must be a JSON object'),
    (lambda s: s.update(merges=[]), r'"merges" must be a JSON object'),
    (lambda s: s.update(studies=[]), r'"studies" must be a JSON object'),
    (lambda s: s['studies']['s1'].update(seeds=3), r"study 's1': \"seeds\" must be a list of "
                                                   r'integers, got 3'),
    (lambda s: s['studies']['s1'].update(lrs=0.001), r"study 's1': \"lrs\" must be a list of "
                                                     r'numbers, got 0\.001'),
    (lambda s: s['studies']['s1'].update(variants='ce'), r'"variants" must be a list of strings'),
    (lambda s: s['studies']['s1'].update(iters='8'), r'"iters" must be an integer'),
    (lambda s: s['studies']['s1'].update(cfg_options=[1]), r'"cfg_options" must be a JSON obj'),
    (lambda s: s['datasets']['tiny'].update(num_train='2'), r"dataset 'tiny': \"num_train\" "
                                                            r'must be an integer'),
    (lambda s: s['datasets']['tiny'].update(label_noise='0.4'), r'"label_noise" must be a '
                                                                 r'number'),
    (lambda s: s['datasets']['tiny'].update(all_classes='yes'), r'"all_classes" must be true '
                                                                 r'or false'),
    (lambda s: s['merges']['m'].update(studies='s1'), r"merge 'm': \"studies\" must be a list"),
    (lambda s: s['merges']['m'].update(publish=3), r"merge 'm': \"publish\" must be a string"),
])
def test_wrong_json_types_are_refused_before_anything_is_made(tmp_path, monkeypatch, edit,
                                                              match):
    spec = _spec(tmp_path)
    edit(spec)
    _refused(tmp_path, monkeypatch, spec, ValueError, match)
    assert not (tmp_path / 'data').exists()


# --- 8. every study, dataset and merge is checked before the first is made --------------------

@pytest.mark.parametrize('edit, match', [
    (lambda s: s['studies'].update(s2=dict(s['studies']['s1'], seeds=[0, 0])),
     r"study 's2': seed 0 is given more than once"),
    (lambda s: s['studies'].update(s2=dict(s['studies']['s1'], optimizers=['lion'])),
     r"study 's2': unknown optimizer 'lion'"),
    (lambda s: s['studies'].update(s2=dict(s['studies']['s1'], config='nope.py')),
     r"study 's2': config 'nope.py' is not a file"),
    (lambda s: s['studies'].update(s2=dict(s['studies']['s1'], variants=["x={'type': 'No'}"])),
     r"study 's2': .*variant 'x'"),
    (lambda s: s['datasets'].update(bad=dict(dataset='voc', out_dir='elsewhere', label_noise=0.2,
                                             noise_kind='nope')),
     r"dataset 'bad': noise_kind 'nope'"),
])
@pytest.mark.slow
def test_every_study_and_dataset_is_checked_before_anything_is_made(tmp_path, monkeypatch,
                                                                    edit, match):
    spec = _spec(tmp_path)
    edit(spec)
    spec['merges']['m']['studies'] = list(spec['studies'])  # kept: the refusal is the edit's
    _refused(tmp_path, monkeypatch, spec, ValueError, match)
    assert not (tmp_path / 'data').exists()


def _two_studies(tmp_path):
    spec = _spec(tmp_path)
    spec['studies']['s2'] = dict(spec['studies']['s1'], regime='other')
    spec['merges']['m']['studies'] = ['s1', 's2']
    return spec


@pytest.mark.slow
@pytest.mark.parametrize('data_made', [False, True])
def test_a_later_studys_folder_holding_another_run_is_refused_first(tmp_path, monkeypatch,
                                                                    data_made):
    if data_made:
        make_voc(str(tmp_path / 'data'), num_train=2, num_val=2, num_test=2)
    fake_study_run(tmp_path / 'work' / 's2', 'ce', 0, [10.0, 40.0], regime='mine', iters=8)
    _refused(tmp_path, monkeypatch, _two_studies(tmp_path), ValueError,
             r"study 's2': .*s2.ce_adamw_seed0 already holds a run of another study .*regime")


@pytest.mark.slow
def test_a_run_on_other_data_is_refused_before_anything_trains(tmp_path, monkeypatch):
    """The data made: a run folder of the second study whose record names other data."""
    path = _write(tmp_path, _two_studies(tmp_path))
    monkeypatch.setattr(study, 'train_run', FakeTraining())
    study_spec.run_spec(path)
    run_json = tmp_path / 'work' / 's2' / 'ce_adamw_seed0' / 'run.json'
    record = json.loads(run_json.read_text())
    record['dataset']['label_noise'] = dict(kind='uniform', rate=0.4, seed=0)
    run_json.write_text(json.dumps(record))
    _refused(tmp_path, monkeypatch, _two_studies(tmp_path), ValueError,
             r"study 's2': .*ce_adamw_seed0 already holds a run of another study .*dataset")


@pytest.mark.slow
def test_runs_whose_data_is_not_made_yet_are_kept_and_reused(tmp_path, monkeypatch):
    """Runs resumed on a machine without their data (removed here): what the data will be is
    not known before it is made, so only the rest is compared, and nothing is written."""
    path = _write(tmp_path, _spec(tmp_path))
    monkeypatch.setattr(study, 'train_run', FakeTraining())
    study_spec.run_spec(path)
    shutil.rmtree(tmp_path / 'data')
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    study_spec.run_spec(path)
    assert fake.calls == [] and (tmp_path / 'data').is_dir()


def test_a_foreign_run_json_in_the_records_is_refused_before_anything_trains(tmp_path,
                                                                            monkeypatch):
    folder = tmp_path / 'records' / 's1' / 'ce_adamw_seed0'
    os.makedirs(folder)
    (folder / 'run.json').write_text('my notes')
    _refused(tmp_path, monkeypatch, _spec(tmp_path), ValueError,
             r"records.s1.ce_adamw_seed0.run.json is not a record the records export wrote")
    assert not (tmp_path / 'data').exists()


def test_a_study_whose_runs_no_merge_keeps_is_refused_before_anything_trains(
        tmp_path, monkeypatch):
    """In a spec that keeps records, a study in no merge with "records" would lose its runs
    with the machine (--export-finished has nowhere to put them): refused first, whether run
    alone or beside the kept ones; a spec that keeps no records runs it."""
    spec = _spec(tmp_path)
    spec['studies']['s2'] = dict(spec['studies']['s1'])
    for only in (None, ['s2']):
        monkeypatch.setattr(study, 'train_run', FakeTraining())
        path = _write(tmp_path, spec)
        before = snapshot(tmp_path)
        with pytest.raises(ValueError, match=r"studies \['s2'\] belong to no merge with "
                                             r'"records"'):
            study_spec.run_spec(path, only=only)
        assert snapshot(tmp_path) == before
    spec['merges']['m'].pop('records')
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    study_spec.run_spec(_write(tmp_path, spec), only=['s2'])
    assert len(fake.calls) == 1


def test_with_published_adds_the_studies_the_merges_it_writes_have_published(
        tmp_path, monkeypatch):
    """On a work dir seeded from the records (a finished study's runs, not its study.json), a
    spec run of one more study is refused, as the merge would publish the first one's cells as
    not finished; --with-published adds the studies that merge published: they train nothing
    and the merge keeps them. A study only a merge the run does not write published is not
    added."""
    spec = _spec(tmp_path, partial=True)
    spec['studies']['s2'] = dict(spec['studies']['s1'], optimizers=['sgd'])
    spec['studies']['s3'] = dict(spec['studies']['s1'], regime='other')
    spec['merges']['m']['studies'] = ['s1', 's2']
    spec['merges']['n'] = dict(studies=['s3'], publish=str(tmp_path / 'pub' / 'n'),
                               records=str(tmp_path / 'records'))
    path = _write(tmp_path, spec)
    monkeypatch.setattr(study, 'train_run', FakeTraining())
    study_spec.run_spec(path, only=['s1', 's3'])
    published = json.loads((tmp_path / 'pub' / 'm.json').read_text())
    assert published['pending'] == [['clean', 'sgd']]
    for name in ('s1', 's3'):  # seeded from the records: the runs, not the study.json
        (tmp_path / 'work' / name / 'study.json').unlink()
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"publishes the studies \['s1'\], .*--with-published"):
        study_spec.run_spec(path, only=['s2'])
    assert snapshot(tmp_path) == before
    assert study_spec.published_studies(study_spec.load_spec(path), ['s2']) == ['s1']
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    study_spec.run_spec(path, only=['s2'], with_published=True)
    assert [name for name, _ in fake.calls] == ['ce_sgd_seed0']  # s1 trains nothing
    published = json.loads((tmp_path / 'pub' / 'm.json').read_text())
    assert 'pending' not in published
    assert {(r['regime'], r['optimizer']) for r in published['rows']} == {
        ('clean', 'adamw'), ('clean', 'sgd')}
    assert (tmp_path / 'work' / 's1' / 'study.json').is_file()
    assert not (tmp_path / 'work' / 's3' / 'study.json').exists()  # n is not written


def test_published_studies_follows_the_merges_a_run_writes(monkeypatch):
    """Of each merge the run writes (named, or holding a study it runs) that publishes: the
    studies of that merge its report holds, then those of the merges these add; not a study
    the report holds that the merge or the spec no longer lists, nor a merge without publish."""
    reports = {'pub/a': ['s2', 'gone', 's6'], 'pub/b': ['s3'], 'pub/d': ['s5']}
    monkeypatch.setattr(study_spec_checks, 'published_report', lambda target: dict(
        runs=[dict(source=f'work/{name}/') for name in reports[target]]))
    merges = dict(a=dict(studies=['s1', 's2'], publish='pub/a'),
                  b=dict(studies=['s2', 's3'], publish='pub/b'),
                  c=dict(studies=['s4', 's5']), d=dict(studies=['s5'], publish='pub/d'))
    spec = dict(studies={name: {} for name in ('s1', 's2', 's3', 's4', 's5', 's6')}, merges=merges)
    assert study_spec_checks.published_studies(spec, ['s1']) == ['s2', 's3']  # a, then b
    assert study_spec_checks.published_studies(spec, ['b']) == ['s3']
    assert study_spec_checks.published_studies(spec, ['s4']) == []  # c does not publish
    assert study_spec_checks.published_studies(spec, ['s4', 'd']) == ['s5']


@pytest.mark.parametrize('given, error', [
    (['--spec', 'x.json', '--with-published'], 'adds studies to --only; without --only'),
    (['--spec', 'x.json', '--only', 's', '--export-finished', '--with-published'],
     '--export-finished trains nothing'),
    (['configs/x.py', '--with-published'], '--with-published goes with --spec'),
])
def test_with_published_goes_with_the_only_of_a_spec_run(monkeypatch, capsys, given, error):
    monkeypatch.setattr(sys, 'argv', ['study_ngl.py'] + given)
    with pytest.raises(SystemExit) as exit_:
        study_cli.main()
    assert exit_.value.code == 2 and error in capsys.readouterr().err


def test_the_command_line_passes_with_published_to_the_spec_run(monkeypatch):
    calls = []
    monkeypatch.setattr(study_cli, 'run_spec', lambda path, **kwargs: calls.append(kwargs))
    for flag, expected in (([], False), (['--with-published'], True)):
        monkeypatch.setattr(sys, 'argv', ['study_ngl.py', '--spec', 'x.json', '--only', 's'] + flag)
        study_cli.main()
        assert calls[-1]['with_published'] is expected and calls[-1]['only'] == ['s']


# --- 9. a work_dir or records that is a file --------------------------------------------------

@pytest.mark.parametrize('key, where', [('work_dir', 'f'), ('work_dir', 'f/sub'),
                                        ('records', 'f'), ('records', 'f/sub')])
def test_a_work_dir_or_records_that_is_a_file_is_refused_first(tmp_path, monkeypatch, key,
                                                                where):
    (tmp_path / 'f').write_text('a file')
    spec = _spec(tmp_path)
    if key == 'work_dir':
        spec['work_dir'] = str(tmp_path / where)
    else:
        spec['merges']['m']['records'] = str(tmp_path / where)
    _refused(tmp_path, monkeypatch, spec, ValueError, rf'{key} .*{where}.* is a file')
    assert not (tmp_path / 'data').exists()


def test_a_merge_work_dir_under_a_file_is_refused(tmp_path):
    work = tmp_path / 'a'
    _finished_study(work)
    (tmp_path / 'f').write_text('a file')
    with pytest.raises(ValueError, match=r'--work-dir .*f.sub.* is a file'):
        study_rebuild.merge(str(tmp_path / 'f' / 'sub'), [str(work)])


# --- 10. a run folder replaced by a file -----------------------------------------------------

def test_a_run_folder_that_is_a_file_is_refused_and_kept(tmp_path, monkeypatch):
    (tmp_path / 'run').write_text('my file')
    with pytest.raises(ValueError, match=r'run is a file'):
        move_aside(str(tmp_path / 'run'))
    with pytest.raises(ValueError, match=r'run is a file'):
        existing_run(str(tmp_path / 'run'), {})
    assert (tmp_path / 'run').read_text() == 'my file'
    os.makedirs(tmp_path / 'w')
    (tmp_path / 'w' / 'ce_adamw_seed0').write_text('my file')
    fake = FakeTraining()
    with pytest.raises(ValueError, match=r'ce_adamw_seed0 is a file'):
        _voc_study(tmp_path, monkeypatch, None, fake)
    assert fake.calls == [] and (tmp_path / 'w' / 'ce_adamw_seed0').read_text() == 'my file'


# --- 11. --collect after an interruption ------------------------------------------------------

def test_collect_skips_and_names_folders_moved_aside(tmp_path, capsys):
    fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0])
    aside = fake_study_run(tmp_path, 'ce', 1, [10.0, 40.0], name='ce_adamw_seed1.interrupted-1')
    record = json.loads((aside / 'run.json').read_text())
    (aside / 'run.json').write_text(json.dumps(dict(record, finished=False, iters=100)))
    fake_study_run(tmp_path, 'ce', 1, [10.0, 41.0])
    rows = study_rebuild.collect(str(tmp_path))
    assert rows[0]['seeds'] == [0, 1]
    assert 'ce_adamw_seed1.interrupted-1' in capsys.readouterr().out


# --- 12. --gpus-per-run needs the GPUs ---------------------------------------------------------

def test_gpus_per_run_is_refused_beyond_the_visible_gpus(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)
    with pytest.raises(ValueError, match=r'--jobs 1 x --gpus-per-run 1 = 1 GPU.*0 are visible'):
        StudySettings('c.py', ['ce'], gpus_per_run=1).check()
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 3)
    with pytest.raises(ValueError, match=r'--jobs 2 x --gpus-per-run 2 = 4 GPUs.*3 are visible'):
        StudySettings('c.py', ['ce'], jobs=2, gpus_per_run=2).check()
    StudySettings('c.py', ['ce'], jobs=3, gpus_per_run=1).check()


def test_each_job_gets_gpus_among_the_visible_ones(monkeypatch):
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '5,7')
    seen = []
    pool = jobs.JobPool(lambda job, env: seen.append(env['CUDA_VISIBLE_DEVICES']),
                        reuse=lambda job: None, on_done=lambda *a: None, size=2,
                        gpus_per_job=1)
    with pool:
        pool.complete([1, 2, 3, 4])
    assert set(seen) == {'5', '7'}


# --- 13. a crashed run ends the tool with one line --------------------------------------------

@pytest.mark.slow
def test_a_failed_run_ends_the_tool_with_one_line(tmp_path, monkeypatch, capsys):
    fake = FakeTraining(fail={'ngl_adamw_seed0'})
    monkeypatch.setattr(study, 'train_run', fake)
    work = tmp_path / 'w'
    monkeypatch.setattr(sys, 'argv', ['study_ngl.py', VOC_CFG, '--variants', 'ce', 'ngl',
                                      '--optimizers', 'adamw', '--work-dir', str(work),
                                      '--iters', '8', '--threads-per-run', '1'])
    with pytest.raises(SystemExit) as exit_:
        study_cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(work / 'ngl_adamw_seed0') in err[0]
    assert str(work / 'ngl_adamw_seed0' / 'train.log') in err[0]
    assert 'training failed' in err[0] and 'again' in err[0]
    assert (work / 'ce_adamw_seed0' / 'run.json').is_file()  # the finished run is kept


def test_the_pool_cancels_queued_jobs_and_names_every_failure():
    done = []

    def do_job(job, env):
        if job in (1, 2):
            raise RuntimeError(f'job {job} broke')
        done.append(job)

    pool = jobs.JobPool(do_job, reuse=lambda job: None, on_done=lambda *a: None, size=1)
    with pytest.raises(jobs.JobsFailed) as failed:
        with pool:
            pool.complete([1, 2, 3])
    assert [job for job, _ in failed.value.failures] == [1] and done == []


@pytest.mark.parametrize('where', ['queued', 'taken by a worker'])
def test_a_reuse_that_raises_midway_cancels_the_jobs_it_queued_before(monkeypatch, where):
    """`submit(['b', 'c'])` queues job 'b', then `reuse('c')` raises: 'b' never
    trains, whether it still waits in the queue (behind 'a', which holds the only
    worker) or a worker has taken it off the queue and not started it. The
    second is why `_submit` records each future as it makes it: the queue no
    longer holds that job."""
    ready, release, trained = threading.Event(), threading.Event(), []

    class HoldB(queue.PriorityQueue):
        def get(self, *args, **kwargs):  # the worker that takes 'b' holds it
            item = super().get(*args, **kwargs)
            if item[2] == 'b':
                ready.set()
                release.wait(60)
            return item

    def do_job(job, env):
        if job == 'a':  # holds the only worker
            ready.set()
            release.wait(60)
        trained.append(job)

    def reuse(job):
        if job == 'c':
            assert ready.wait(60)
            raise ValueError('unreadable record of c')
        return None

    class Pool(jobs.JobPool):
        def _cancel_queued(self):  # lets the held job go once the pool has cancelled
            super()._cancel_queued()
            release.set()

    if where == 'taken by a worker':
        monkeypatch.setattr(jobs.queue, 'PriorityQueue', HoldB)
    pool = Pool(do_job, reuse=reuse, on_done=lambda *a: None, size=1)
    with pytest.raises(ValueError, match='unreadable record of c'):
        with pool:
            if where == 'queued':
                pool.submit(['a'])
            pool.submit(['b', 'c'])
    assert trained == (['a'] if where == 'queued' else [])


# --- 14. --spec refuses the arguments it does not use ----------------------------------------

def test_spec_refuses_arguments_it_does_not_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['study_ngl.py', '--spec', str(tmp_path / 'spec.json'),
                                      '--iters', '2', '--seeds', '5', '--work-dir', 'X',
                                      '--jobs', '2'])
    with pytest.raises(SystemExit) as exit_:
        study_cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert '--spec does not use --seeds, --work-dir, --iters' in err
    assert '--jobs' not in err.split('use', 1)[1].split(':')[0]


@pytest.mark.parametrize('given, named', [
    (['--seeds', '0'], '--seeds'),  # each of these is its default: given, it is still unused
    (['--gpus', '1'], '--gpus'),
    (['--optimizers', 'sgd'], '--optimizers'),
    (['--title', ''], '--title'),
    (['configs/x.py'], 'CONFIG'),
])
def test_spec_refuses_unused_arguments_given_as_their_defaults(tmp_path, monkeypatch, capsys,
                                                                given, named):
    monkeypatch.setattr(sys, 'argv', ['study_ngl.py', '--spec', str(tmp_path / 'spec.json'),
                                      '--jobs', '1'] + given)
    with pytest.raises(SystemExit) as exit_:
        study_cli.main()
    assert exit_.value.code == 2
    assert f'--spec does not use {named}:' in capsys.readouterr().err


def test_the_records_kept_in_the_repository_are_ones_the_export_wrote():
    """A resumed tuned study's export may replace them (and only them) in docs/study/records."""
    import glob
    folders = sorted(glob.glob(os.path.join(REPO, 'docs', 'study', 'records', '*', '*', '*', '')))
    assert len(folders) >= 50
    for folder in folders:
        files = {os.path.relpath(os.path.join(d, name), folder)
                 for d, _, names in os.walk(folder) for name in names}
        assert study_publish.exported_files(folder) == files, folder
