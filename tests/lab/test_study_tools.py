"""The study tool's records, merges and arguments, refused with a message:
copied or foreign runs, merges over a study, bad labels, NaN scores, specs."""
import json
import os
import shutil

import pytest
from study_helpers import FakeTraining, fake_study_run

from ngl_lab import (
    study,
    study_cli,
    study_config,
    study_rebuild,
    study_spec,
    study_spec_checks,
    study_tables,
)
from ngl_lab.jobs import JobPool
from ngl_lab.study_settings import StudySettings


def test_collect_refuses_a_copied_run_folder(tmp_path):
    fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0])
    fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0], name='ce_adamw_seed00')  # a copy
    with pytest.raises(ValueError, match='ce_adamw_seed0 and .*ce_adamw_seed00 are the same run'):
        study_rebuild.collect(str(tmp_path))


@pytest.mark.parametrize('field, value', [('data_root', 'other'), ('iters', 8),
                                          ('config', 'other.py')])
def test_collect_refuses_runs_of_another_study(tmp_path, field, value):
    fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0])
    fake_study_run(tmp_path, 'ngl', 0, [10.0, 40.0], **{field: value})
    with pytest.raises(ValueError, match=rf'differ in {field} .*ce_adamw_seed0.*ngl_adamw_seed0'):
        study_rebuild.collect(str(tmp_path))


def test_collect_takes_a_regime_per_data_root_and_names_a_damaged_log(tmp_path):
    fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0], regime='clean')
    fake_study_run(tmp_path, 'ce', 1, [10.0, 40.0], regime='noisy', data_root='other',
                   name='ce_adamw_seed1')
    rows = study_rebuild.collect(str(tmp_path))  # one data root per regime: one study
    assert [r['regime'] for r in rows] == ['clean', 'noisy']
    scalars = next((tmp_path / 'ce_adamw_seed1').glob('*/vis_data/scalars.json'))
    scalars.write_text(scalars.read_text() + '{"step": 9, "mIoU\n')
    with pytest.raises(ValueError, match=r'ce_adamw_seed1.*scalars\.json, line 4, is not JSON'):
        study_rebuild.collect(str(tmp_path))


def test_merge_refuses_one_row_of_two_data_roots(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_study(a, [dict(RUN, data_root='x', work_dir='a/ce_adamw_seed0')])
    write_study(b, [dict(RUN, seed=1, data_root='y', work_dir='b/ce_adamw_seed1')])
    with pytest.raises(ValueError, match=r'row -, adamw.*differ in data_root.*ce_adamw_seed0.*'
                                         r'ce_adamw_seed1'):
        study_rebuild.merge(str(tmp_path / 'm'), [a, b])
    write_study(str(tmp_path / 'c'), [dict(RUN, seed=1, data_root='y', regime='noisy')])
    assert len(study_rebuild.merge(str(tmp_path / 'm'), [a, str(tmp_path / 'c')])) == 2


def test_collect_refuses_a_folder_without_a_record_or_unfinished(tmp_path):
    run_dir = fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0])
    (run_dir / 'run.json').write_text('{"variant": "ce"}')
    with pytest.raises(ValueError, match='is not a run record'):
        study_rebuild.collect(str(tmp_path))
    (run_dir / 'run.json').unlink()
    with pytest.raises(ValueError, match='holds no run folders'):
        study_rebuild.collect(str(tmp_path))
    unfinished = fake_study_run(tmp_path, 'ngl', 0, [10.0, 40.0])
    record = json.loads((unfinished / 'run.json').read_text())
    (unfinished / 'run.json').write_text(json.dumps(dict(record, iters=100)))
    with pytest.raises(ValueError, match='unfinished run'):
        study_rebuild.collect(str(tmp_path))


def write_study(path, runs):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, 'study.json'), 'w') as f:
        json.dump(dict(config='c.py', title='', rows=[], runs=runs), f)


RUN = dict(variant='ce', optimizer='adamw', seed=0, curve=[[4, 50.0]], seconds=1.0)


def test_merge_does_not_write_over_a_study(tmp_path):
    a, out = str(tmp_path / 'a'), str(tmp_path / 'out')
    write_study(a, [RUN])
    write_study(out, [dict(RUN, seed=7)])
    before = open(os.path.join(out, 'study.json')).read()
    with pytest.raises(ValueError, match='already holds a study'):
        study_rebuild.merge(out, [a])
    assert open(os.path.join(out, 'study.json')).read() == before
    study_rebuild.merge(out, [a], overwrite=True)  # asked for: replaced
    assert json.load(open(os.path.join(out, 'study.json')))['runs'][0]['seed'] == 0


def test_merge_refuses_one_row_of_two_schedules_and_bad_sources(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_study(a, [RUN])
    write_study(b, [dict(RUN, seed=1, curve=[[8, 50.0]])])
    with pytest.raises(ValueError, match='runs of different lengths'):
        study_rebuild.merge(str(tmp_path / 'm'), [a, b])
    with pytest.raises(ValueError, match='does not exist'):
        study_rebuild.merge(str(tmp_path / 'm'), [a, str(tmp_path / 'missing')])
    os.makedirs(tmp_path / 'corrupt')
    (tmp_path / 'corrupt' / 'study.json').write_text('{"runs": 3')
    with pytest.raises(ValueError, match=r'corrupt.study\.json is not a study record'):
        study_rebuild.merge(str(tmp_path / 'm'), [a, str(tmp_path / 'corrupt')])
    write_study(str(tmp_path / 'empty'), [])
    with pytest.raises(ValueError, match='holds no runs'):
        study_rebuild.merge(str(tmp_path / 'm'), [str(tmp_path / 'empty')])
    assert not (tmp_path / 'm').exists()  # nothing written by a refused merge


def test_a_nan_score_is_refused_before_any_file_is_written(tmp_path):
    a = str(tmp_path / 'a')
    write_study(a, [RUN, dict(RUN, seed=1, curve=[[4, float('nan')]])])
    with pytest.raises(ValueError, match='NaN score'):
        study_rebuild.merge(str(tmp_path / 'm'), [a])
    assert not (tmp_path / 'm' / 'study.md').exists()


def test_no_ce_variant_gives_no_difference_column_values():
    rows = study_tables.summarise([dict(RUN, variant='ngl')])
    table = study_tables.format_table(rows)
    assert 'nan' not in table and '| ngl | adamw | config | 50.00 (± 0.00) | - |' in table


@pytest.mark.parametrize('regime', ['a|b', 'two\nlines', 'x' * 65])
def test_regime_labels_that_break_tables_are_refused(regime):
    with pytest.raises(ValueError, match='regime .* is not allowed'):
        StudySettings('c.py', ['ce'], ['adamw'], [0], regime=regime).check()


def test_pretrain_data_root_without_iters_is_refused():
    with pytest.raises(ValueError, match='without --pretrain-iters'):
        StudySettings('c.py', ['ce'], ['adamw'], [0], pretrain_data_root='x').check()


def test_study_refuses_a_work_dir_that_is_a_file(tmp_path):
    from helpers import VOC_CFG
    (tmp_path / 'f').write_text('')
    with pytest.raises(ValueError, match='is a file'):
        study.study(StudySettings(VOC_CFG, ['ce'], work_dir=str(tmp_path / 'f'), iters=4))


# --- schedules shortened with --iters --------------------------------------------------

def test_iters_scales_every_scheduler_begin_and_end(tmp_path):
    """SegFormer: a LinearLR warm-up over 1500 iterations, then PolyLR from 1500."""
    from helpers import REPO
    cfg = study_config.load_study_config(
        os.path.join(REPO, 'configs', 'ngl', 'segformer_mit-b0_ngl_8xb2-40k_voc12aug-512x512.py'),
        iters=400)
    warmup, poly = cfg.param_scheduler
    assert (warmup['begin'], warmup['end']) == (0, 15)  # 1500 / 40000 of 400
    assert (poly['begin'], poly['end']) == (15, 400)
    assert cfg.train_cfg.max_iters == 400 and cfg.train_cfg.val_interval == 100


# --- study specs -----------------------------------------------------------------------

def test_every_shipped_spec_loads(tmp_path):
    from helpers import REPO
    folder = os.path.join(REPO, 'configs', 'studies')
    names = sorted(os.listdir(folder))
    assert {'tuned.json', 'regimes.json', 'coco-bias.json', 'trainability.json'} <= set(names)
    made = {}
    for name in names:
        spec = study_spec.load_spec(os.path.join(folder, name))
        # the data roots the spec's datasets would be made at
        roots = {key: study_spec.data_root(entry) for key, entry in spec['datasets'].items()}
        for study_name, entry in spec['studies'].items():
            assert os.path.isfile(os.path.join(REPO, entry['config']))
            study_spec.study_settings(spec, study_name, roots, name).check()
        # no merge's records or publish overlaps the runs or the data
        study_spec_checks.check_overlaps(spec, list(spec['merges']))
        # a spec that keeps records in the repository keeps every study's: a study in no
        # merge with "records" cannot --export-finished, so a study longer than a session
        # would lose its progress with the machine
        if any(entry.get('records') for entry in spec['merges'].values()):
            kept = set(study_spec.records_folders(spec))
            assert set(spec['studies']) <= kept, (name, sorted(set(spec['studies']) - kept))
        for key, entry in spec['datasets'].items():
            made.setdefault(entry['out_dir'], []).append((name, key, entry))
    # specs that share a dataset folder ask for the same dataset (else one refuses it)
    for out_dir, uses in made.items():
        assert all(entry == uses[0][2] for _, _, entry in uses), (out_dir, uses)


@pytest.mark.parametrize('spec, message', [
    ({'studies': {}}, '"work_dir"'),
    ({'work_dir': 'w', 'studeis': {}}, r"unknown key\(s\) \['studeis'\]"),
    ({'work_dir': 'w', 'studies': {'a': {'config': 'c', 'data': 'nope'}}},
     "names dataset 'nope'"),
    ({'work_dir': 'w', 'studies': {'a': {'config': 'c'}}, 'merges': {'m': {'studies': ['b']}}},
     r"unknown: \['b'\]"),
])
def test_bad_specs_are_refused_with_the_key_named(tmp_path, spec, message):
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=message):
        study_spec.load_spec(str(path))
    path.write_text('{not json')
    with pytest.raises(ValueError, match='not valid JSON'):
        study_spec.load_spec(str(path))


@pytest.mark.slow
def test_every_shipped_config_with_several_schedulers_keeps_their_order(tmp_path):
    import glob

    from helpers import REPO
    from mmengine.config import Config
    checked = 0
    for path in sorted(glob.glob(os.path.join(REPO, 'configs', '**', '*.py'), recursive=True)):
        if '_base_' in path:
            continue
        full = Config.fromfile(path)
        if len(full.get('param_scheduler') or []) < 2:
            continue
        old = full.train_cfg.max_iters
        cfg = study_config.load_study_config(path, iters=100)
        for before, after in zip(full.param_scheduler, cfg.param_scheduler):
            assert 0 <= after['begin'] < after['end'] <= 100, (path, after)
            assert after['begin'] == round(min(before.get('begin', 0), old) * 100 / old)
        checked += 1
    assert checked >= 2  # the SegFormer configs


def test_a_variant_that_cannot_be_built_fails_before_any_run(tmp_path, monkeypatch):
    from helpers import VOC_CFG
    trained = []
    monkeypatch.setattr(study, 'train_run', lambda *a, **k: trained.append(a))
    for bad in ("bad={'type': 'NoSuchLoss'}", "x={'type': 'NGLLoss', 'alpha': 100}"):
        with pytest.raises(ValueError, match="variant '(bad|x)'"):
            study.study(StudySettings(VOC_CFG, ['ce', bad], work_dir=str(tmp_path / 'w'),
                                      iters=4))
    assert trained == [] and not (tmp_path / 'w').exists()


def test_regime_is_refused_with_merge_replot_and_collect(monkeypatch, capsys):
    import sys
    for mode in (['--merge', 'a'], ['--replot'], ['--collect']):
        monkeypatch.setattr(sys, 'argv', ['study_ngl.py', *mode, '--work-dir', 'w', '--regime',
                                          'r'])
        with pytest.raises(SystemExit):
            study_cli.main()
        assert 'each run keeps the regime it was trained under' in capsys.readouterr().err


@pytest.mark.slow
def test_a_spec_makes_its_data_runs_its_studies_and_publishes_its_merge(tmp_path, monkeypatch):
    """The spec runner end to end, with training stood in for (test_study_tuned's fake)."""
    from helpers import VOC_CFG
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    spec = dict(work_dir=str(tmp_path / 'work'), datasets=dict(
        tiny=dict(dataset='voc', out_dir=str(tmp_path / 'data'), num_train=2, num_val=2,
                  num_test=2)),
        studies=dict(s1=dict(config=VOC_CFG, data='tiny', variants=['ce', 'ngl'],
                             optimizers=['adamw'], lrs=[1e-3, 1e-2], search_seeds=[0],
                             seeds=[0, 1], iters=8, regime='clean', report_split='test')),
        merges=dict(all=dict(studies=['s1'], title='t', publish=str(tmp_path / 'pub' / 'x'),
                             records=str(tmp_path / 'records'))))
    # a record the export wrote of a run the study no longer holds goes; a file that is
    # not a record, and a run.json the export did not write, stay
    stale = fake_study_run(tmp_path / 'records' / 's1', 'ce', 0, [10.0, 40.0], lr=0.5,
                           name='ce_adamw_lr0.5_seed0')
    (stale / 'config.py').unlink()  # the export copies no config
    (tmp_path / 'records' / 's1' / 'NOTES.md').write_text('kept')
    foreign = tmp_path / 'records' / 's1' / 'mine'
    foreign.mkdir()
    (foreign / 'run.json').write_text('{}')
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    import sys
    monkeypatch.setattr(sys, 'argv', ['study_ngl.py', '--spec', str(path), '--jobs', '2',
                                      '--threads-per-run', '3'])
    study_cli.main()
    # the spec's runs get the threads asked for (not cores / jobs)
    assert {env['OMP_NUM_THREADS'] for _, env in fake.calls} == {'3'}
    assert (tmp_path / 'data' / 'VOCdevkit' / 'VOC2012' / 'ImageSets' / 'Segmentation' /
            'test.txt').is_file()
    # search at 2 lrs, one more past the edge where the best is (both), seed 1 at the chosen
    assert len(fake.calls) == 2 * 2 + 2 + 2
    published = json.loads((tmp_path / 'pub' / 'x.json').read_text())
    assert {r['variant']: r['lr'] for r in published['tuned']} == {'ce': 0.01, 'ngl': 0.001}
    again = FakeTraining()
    monkeypatch.setattr(study, 'train_run', again)
    study_spec.run_spec(str(path))  # resumes: nothing left to train
    assert again.calls == []
    # the records: every run's run.json and scalars, no checkpoint; a fresh machine that
    # copies them into the work dir resumes from them without training anything
    records = tmp_path / 'records' / 's1'
    runs = sorted(p.name for p in records.iterdir() if p.is_dir())
    assert len(runs) == len(fake.calls) + 1 and not stale.exists()
    assert (records / 'NOTES.md').read_text() == 'kept'
    assert (foreign / 'run.json').read_text() == '{}'
    shutil.rmtree(foreign)
    runs.remove('mine')
    assert all(p.suffix == '.json' for p in records.rglob('*') if p.is_file()
               and p.name != 'NOTES.md')
    assert all(list((records / run).glob('*/vis_data/scalars.json')) for run in runs)
    fresh = tmp_path / 'fresh'
    shutil.copytree(records, fresh / 's1')
    spec['work_dir'] = str(fresh)
    path.write_text(json.dumps(spec))
    third = FakeTraining()
    monkeypatch.setattr(study, 'train_run', third)
    study_spec.run_spec(str(path))
    assert third.calls == []
    assert json.loads((tmp_path / 'pub' / 'x.json').read_text())['tuned'] == published['tuned']


def test_the_job_pool_trains_only_inside_with():
    pool = JobPool(do_job=lambda job, env: job, reuse=lambda job: None,
                   on_done=lambda job, result, progress: None)
    with pytest.raises(RuntimeError, match='only inside `with pool:`'):
        pool.complete([])
    with pool:
        assert pool.complete([]) == []
    with pytest.raises(RuntimeError, match='only inside `with pool:`'):
        pool.submit([], later=True)
