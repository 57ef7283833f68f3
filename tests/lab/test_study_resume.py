"""A study run stopped midway continues from its newest resume point, with the numbers
the run has when it never stops (ngl_lab.study_resume, run_folders.resume_point)."""
import glob
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO
from study_helpers import FakeTraining

from ngl_lab import study, study_spec
from ngl_lab.run_folders import resume_point
from ngl_lab.run_record import run_from_folder
from ngl_lab.runs import read_scalars
from ngl_lab.study_publish import export_records, export_resume_points
from ngl_lab.study_settings import StudySettings
from ngl_mmseg.compat import allow_checkpoint_globals

BUDGET_VOC = osp.join(REPO, 'configs', 'quickstart',
                      'fcn_r18-s3w16-d8_ngl_1xb8-2k_voc12aug-synthetic-64x64.py')
TEST_SPLIT = {'ann_file': 'ImageSets/Segmentation/test.txt'}
RECORD = dict(regime='r', variant='ce', losses=[{'type': 'X'}], optimizer='adamw', lr=None,
              seed=0, config='c.py', data_root='d', dataset=None, iters=40, pretrain=None,
              train_miou=False, report_split=TEST_SPLIT, cfg_options=None, phase='final')


def _unfinished_run(run_dir, validated, points, record=RECORD, report=True):
    """A run folder the study left when it stopped: its record (unfinished), the
    scalars of the validations ``validated`` (with the report split's when ``report``)
    and a loadable resume point at each iteration of ``points``."""
    vis = run_dir / '20261204_000000' / 'vis_data'
    os.makedirs(vis)
    (run_dir / 'run.json').write_text(json.dumps(dict(record, finished=False)))
    rows = [{'step': s, 'mIoU': 50.0} for s in validated]
    rows += [{'step': s, 'report_mIoU': 40.0} for s in validated if report]
    (vis / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    for it in points:
        torch.save({'meta': {'iter': it}, 'state_dict': {'w': torch.ones(2)}},
                   str(run_dir / f'iter_{it}.pth'))


def test_the_resume_point_is_the_newest_that_loads_and_was_validated(tmp_path):
    run_dir = tmp_path / 'ce_adamw_seed0'
    _unfinished_run(run_dir, [10, 20], [10, 20])
    assert resume_point(str(run_dir), RECORD) == (20, str(run_dir / 'iter_20.pth'))
    # the newest point's validation never reached the log: the one before it
    (run_dir / 'iter_30.pth').write_bytes((run_dir / 'iter_20.pth').read_bytes())
    assert resume_point(str(run_dir), RECORD)[0] == 20
    # a point cut short (the machine stopped while it was written): the one before it
    (run_dir / 'iter_20.pth').write_bytes((run_dir / 'iter_20.pth').read_bytes()[:100])
    assert resume_point(str(run_dir), RECORD) == (10, str(run_dir / 'iter_10.pth'))
    # the run's last checkpoint is not a resume point
    assert resume_point(str(run_dir), dict(RECORD, iters=10)) is None


@pytest.mark.parametrize('case', ['finished', 'another run', 'no report split scored',
                                  'no point', 'damaged log'])
def test_no_resume_point_where_the_run_cannot_continue(tmp_path, case):
    run_dir = tmp_path / 'run'
    record = dict(RECORD, finished=True) if case == 'finished' else RECORD
    _unfinished_run(run_dir, [10], [] if case == 'no point' else [10],
                    report=case != 'no report split scored')
    if case == 'finished':
        (run_dir / 'run.json').write_text(json.dumps(record))
    if case == 'damaged log':
        with open(run_dir / '20261204_000000' / 'vis_data' / 'scalars.json', 'a') as f:
            f.write('{"step": 2')
    planned = dict(RECORD, lr=0.5) if case == 'another run' else RECORD
    assert resume_point(str(run_dir), planned) is None


def test_a_run_without_a_resume_point_is_moved_aside_and_trains_from_the_start(
        tmp_path, monkeypatch):
    work = tmp_path / 'study'
    settings = StudySettings(BUDGET_VOC, ['ce'], optimizers=['adamw'], seeds=[0],
                             work_dir=str(work), iters=8, regime='r')
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    study.study(settings)
    record = json.loads((work / 'ce_adamw_seed0' / 'run.json').read_text())
    # the same run, stopped before its first resume point
    os.rename(work / 'ce_adamw_seed0', tmp_path / 'done')
    _unfinished_run(work / 'ce_adamw_seed0', [], [], record=record, report=False)
    again = FakeTraining()
    monkeypatch.setattr(study, 'train_run', again)
    study.study(settings)
    assert [name for name, _ in again.calls] == ['ce_adamw_seed0'] and again.resumed == []
    assert (work / 'ce_adamw_seed0.interrupted-1').is_dir()
    assert 'resumed_at' not in json.loads((work / 'ce_adamw_seed0' / 'run.json').read_text())


def test_a_resume_that_fails_is_not_tried_again_from_the_same_point(tmp_path, monkeypatch):
    work = tmp_path / 'study'
    settings = StudySettings(BUDGET_VOC, ['ce'], optimizers=['adamw'], seeds=[0],
                             work_dir=str(work), iters=8, regime='r')
    monkeypatch.setattr(study, 'train_run', FakeTraining())
    study.study(settings)
    record = json.loads((work / 'ce_adamw_seed0' / 'run.json').read_text())
    os.rename(work / 'ce_adamw_seed0', tmp_path / 'done')
    _unfinished_run(work / 'ce_adamw_seed0', [2, 4], [4], record=record, report=False)
    failing = FakeTraining(fail={'ce_adamw_seed0'})
    monkeypatch.setattr(study, 'train_run', failing)
    with pytest.raises(study.RunsFailed):
        study.study(settings)
    assert failing.resumed == ['ce_adamw_seed0']
    held = json.loads((work / 'ce_adamw_seed0' / 'run.json').read_text())
    assert (held['resumed_at'], held['failed_resume'], held['finished']) == ([4], 4, False)
    assert resume_point(str(work / 'ce_adamw_seed0'), record) is None
    again = FakeTraining()
    monkeypatch.setattr(study, 'train_run', again)
    study.study(settings)
    assert again.resumed == [] and [name for name, _ in again.calls] == ['ce_adamw_seed0']
    assert (work / 'ce_adamw_seed0.interrupted-1').is_dir()
    fresh = json.loads((work / 'ce_adamw_seed0' / 'run.json').read_text())
    assert 'resumed_at' not in fresh and 'failed_resume' not in fresh and fresh['finished']


def test_unfinished_runs_export_their_newest_resume_point_and_continue_elsewhere(tmp_path):
    """export_resume_points copies each unfinished run that can continue (its record,
    its newest resume point, its launches' scalars and logs; a log being written up to
    its last whole line) and nothing of the others; a work dir on another machine
    seeded from the copy resumes it from there. A later export replaces the copy by a
    newer point only, removes what it wrote once the run has finished, and leaves or
    refuses what it did not write."""
    work, out = tmp_path / 'work', tmp_path / 'resume'
    seeds = [dict(RECORD, seed=seed) for seed in range(3)]
    run = work / 'ce_adamw_seed0'
    _unfinished_run(run, [8, 16, 24], [8, 16])  # continues from 16
    _unfinished_run(work / 'ce_adamw_seed1', [8], [], record=seeds[1])  # trains again
    _unfinished_run(work / 'ce_adamw_seed2', [8], [8], record=seeds[2])
    (work / 'ce_adamw_seed2' / 'run.json').write_text(json.dumps(dict(seeds[2], finished=True)))
    (run / '20261204_000000' / '20261204_000000.log').write_text('line 1\nline 2\nhalf')
    with open(run / '20261204_000000' / 'vis_data' / 'scalars.json', 'a') as f:
        f.write('{"step": 25, "lo')  # the run is training: a line half written
    assert export_resume_points(str(work), str(out)) == 1
    copied = out / 'ce_adamw_seed0'
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob('*') if p.is_file()) == [
        '20261204_000000/20261204_000000.log', '20261204_000000/vis_data/scalars.json',
        'iter_16.pth', 'run.json']
    assert (copied / '20261204_000000' / '20261204_000000.log').read_text() == \
        'line 1\nline 2\n'
    assert read_scalars(str(copied))[1] == [{'step': s, 'mIoU': 50.0} for s in (8, 16, 24)]
    # another machine: its work dir seeded from the copy continues the run from 16
    seeded = tmp_path / 'elsewhere' / 'ce_adamw_seed0'
    shutil.copytree(copied, seeded)
    assert resume_point(str(seeded), RECORD) == (16, str(seeded / 'iter_16.pth'))
    # the run went on: a newer point replaces the copy's; an older one never does (a
    # machine not seeded from the copy, its run started again). A copy an export stopped
    # midway left is removed; a checkpoint of the user's in the folder stays.
    os.makedirs(out / '.staging-ce_adamw_seed0')
    (out / '.staging-ce_adamw_seed0' / 'iter_24.pth').write_text('half written')
    (copied / 'iter_best.pth').write_text('mine')
    for point in (24, 8):
        for old in run.glob('iter_*.pth'):
            old.unlink()
        _unfinished_run(tmp_path / f'point{point}', [8, 16, 24], [point])
        shutil.copy(tmp_path / f'point{point}' / f'iter_{point}.pth', run)
        assert export_resume_points(str(work), str(out)) == (point == 24)
        assert sorted(p.name for p in copied.glob('*.pth')) == ['iter_24.pth', 'iter_best.pth']
    # once the run has finished, what the export wrote goes; what it did not write stays
    (copied / 'notes.txt').write_text('mine')
    (run / 'run.json').write_text(json.dumps(dict(RECORD, finished=True)))
    assert export_resume_points(str(work), str(out)) == 0
    assert sorted(p.name for p in copied.rglob('*') if p.is_file()) == [
        'iter_best.pth', 'notes.txt']
    assert sorted(p.name for p in out.iterdir()) == ['ce_adamw_seed0']  # nothing staged left
    # a run's own folder there holding a record the export did not write: refused
    (run / 'run.json').write_text(json.dumps(dict(RECORD, finished=False)))
    (copied / 'run.json').write_text(json.dumps(dict(RECORD, seed=9)))
    with pytest.raises(ValueError, match='is not a record the resume points export wrote'):
        export_resume_points(str(work), str(out))
    assert json.loads((copied / 'run.json').read_text())['seed'] == 9


def test_export_finished_keeps_the_unfinished_runs_resume_points_where_the_spec_says(
        tmp_path, capsys):
    """With ``resume_points`` in the spec, --export-finished copies each unfinished run's
    newest resume point to ``<resume_points>/<study>/`` beside the finished runs'
    records (here none); without it, nothing of the unfinished runs is kept."""
    spec = dict(work_dir=str(tmp_path / 'work'), studies={'s': dict(config=BUDGET_VOC)},
                merges={'m': dict(studies=['s'], records=str(tmp_path / 'records'))})
    _unfinished_run(tmp_path / 'work' / 's' / 'ce_adamw_seed0', [8, 16], [16])
    path = tmp_path / 'spec.json'
    for kept in (False, True):
        path.write_text(json.dumps(dict(spec, **{'resume_points': str(tmp_path / 'resume')}
                                        if kept else spec)))
        study_spec.export_finished(str(path))
        assert (tmp_path / 'resume' / 's' / 'ce_adamw_seed0' / 'iter_16.pth').is_file() == kept
    assert f'a newer resume point of 1 unfinished runs copied to {tmp_path}' in \
        capsys.readouterr().out
    study_spec.export_finished(str(path))  # nothing newer: nothing said about resume points
    assert 'resume point' not in capsys.readouterr().out
    assert not (tmp_path / 'records').exists()


_STUDY_SCRIPT = '''
import sys
from ngl_lab import study
from ngl_lab.study_publish import export_records
from ngl_lab.study_settings import StudySettings
study.study(StudySettings({config!r}, ['ngl'], optimizers=['adamw'], seeds=[3],
                          work_dir=sys.argv[1], data_root={root!r}, iters=48,
                          report_split={split!r}, threads_per_run=1,
                          cfg_options={{'default_hooks.logger.interval': 1}}))
'''


def _last_iteration(log):
    """The last training iteration a run's train.log shows (0: none yet)."""
    if not log.is_file():
        return 0
    found = re.findall(r'Iter\(train\) \[\s*(\d+)/', log.read_text(errors='replace'))
    return int(found[-1]) if found else 0


@pytest.mark.slow
def test_a_run_stopped_midway_resumes_and_ends_as_if_it_never_stopped(tmp_path):
    """The NGL recipe (its CE warm-up reads the iteration) on the budget model (dropout
    in both heads), 48 iterations with a resume point every 6: once straight through,
    once killed (the whole process group, as a machine that stops) after its first
    resume point and run again, in its folder and in another work dir seeded from its
    exported resume point (export_resume_points: a machine that does not outlive its
    session). The same losses at every iteration, the same curves
    and the same weights, bit for bit."""
    from ngl_lab.synthetic import make_voc
    root = make_voc(str(tmp_path / 'voc'), num_train=8, num_val=4, num_test=4)
    script = _STUDY_SCRIPT.format(config=BUDGET_VOC, root=root, split=TEST_SPLIT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [osp.join(REPO, 'lab'), REPO, os.environ.get('PYTHONPATH', '')]))

    def launch(work):
        return subprocess.Popen([sys.executable, '-c', script, str(work)], cwd=tmp_path,
                                env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    straight = launch(tmp_path / 'straight')
    assert straight.wait(timeout=900) == 0, straight.stdout.read()
    stopped = launch(tmp_path / 'stopped')
    run_dir = tmp_path / 'stopped' / 'ngl_adamw_seed3'
    # stopped once it trains past its first resume point (then written whole)
    deadline = time.time() + 900
    while _last_iteration(run_dir / 'train.log') < 8 and stopped.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(stopped.pid, signal.SIGKILL)
    stopped.wait()
    assert not json.loads((run_dir / 'run.json').read_text())['finished']
    # its resume point exported, and continued there and on another machine (a work dir
    # seeded from the export alone)
    assert export_resume_points(str(tmp_path / 'stopped'), str(tmp_path / 'resume')) == 1
    shutil.copytree(tmp_path / 'resume', tmp_path / 'moved')
    for name in ('stopped', 'moved'):
        again = launch(tmp_path / name)
        out, _ = again.communicate(timeout=900)
        assert again.returncode == 0, out
        assert f'{tmp_path / name / run_dir.name}: resuming its unfinished run from iteration' \
            in out
    moved = json.loads((tmp_path / 'moved' / run_dir.name / 'run.json').read_text())
    assert moved['finished'] and len(moved['resumed_at']) == 1

    record = json.loads((run_dir / 'run.json').read_text())
    assert record['finished'] and len(record['resumed_at']) == 1
    at = record['resumed_at'][0]
    assert 0 < at < 48 and at % 6 == 0
    # the second launch continued from there (not trained again from the start)
    launches = sorted(glob.glob(str(run_dir / '*' / 'vis_data' / 'scalars.json')))
    assert len(launches) == 2
    with open(launches[1]) as f:
        assert json.loads(f.readline())['step'] == at + 1
    assert f'Advance dataloader {at} steps' in (run_dir / 'train.log').read_text()
    assert 'load_from = None' in (run_dir / 'config.py').read_text()  # the run's own config
    logged = {}
    for name in ('straight', 'stopped', 'moved'):
        train, val = read_scalars(str(tmp_path / name / 'ngl_adamw_seed3'))
        logged[name] = ([(r['step'], r['loss']) for r in train if 'loss' in r],
                        [(r['step'], r['mIoU']) for r in val],
                        [(r['step'], r['report_mIoU']) for r in train if 'report_mIoU' in r])
    assert [len(x) for x in logged['straight']] == [48, 8, 8]
    assert logged['stopped'] == logged['straight'] == logged['moved']
    allow_checkpoint_globals()
    weights = [torch.load(str(tmp_path / name / 'ngl_adamw_seed3' / 'iter_48.pth'),
                          map_location='cpu', weights_only=True)['state_dict']
               for name in ('straight', 'stopped', 'moved')]
    assert weights[0].keys() == weights[1].keys() == weights[2].keys()
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])
    # its record, exported (both launches' scalars) and read back, is the same run
    exported = export_records(str(tmp_path / 'stopped'), str(tmp_path / 'records'))
    back = run_from_folder(str(tmp_path / 'records' / 'ngl_adamw_seed3'))
    straight_run = run_from_folder(str(tmp_path / 'straight' / 'ngl_adamw_seed3'))
    assert exported == 1 and back['curve'] == straight_run['curve']
    assert back['report_curve'] == straight_run['report_curve']
    # the resume points are gone once the run is done; its last checkpoint stays
    for name in ('straight', 'stopped'):
        assert sorted(osp.basename(p) for p in glob.glob(
            str(tmp_path / name / 'ngl_adamw_seed3' / '*.pth'))) == ['iter_48.pth']
