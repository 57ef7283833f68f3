"""The plateau study's parts: the budget configs' validations, the tuned rows' speed column
(report split at a quarter of the budget) and plateau check (the chosen rate rerun at twice
the budget), and the run profiler."""
import functools
import json
import math
import os.path as osp
import shutil
import sys
import time

import pytest
import torch
from helpers import REPO, VOC_CFG, make_dataset, run
from study_helpers import FakeTraining

from ngl_lab import loss_clock, run_profile, study, study_config, study_spec
from ngl_lab.study_settings import StudySettings
from ngl_lab.study_tables import (
    cell_at_plateau,
    format_tuned_table,
    summarise,
    tuned_rows,
)

BUDGET_VOC = osp.join(REPO, 'configs', 'quickstart',
                      'fcn_r18-s3w16-d8_ngl_1xb8-2k_voc12aug-synthetic-64x64.py')
QUICKSTART = osp.join(REPO, 'configs', 'quickstart',
                      'fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py')


def fake_run(variant, lr, seed, final, iters=800, phase='search', lift=0.0):
    """A run record with 8 validations: the selection split rises to ``final``, the report
    split ends ``lift`` above it."""
    steps = [iters * k // 8 for k in range(1, 9)]
    curve = [(s, final * k / 8) for k, s in enumerate(steps, 1)]
    report = [(s, v + lift * k / 8) for k, (s, v) in enumerate(curve, 1)]
    return dict(regime='r', variant=variant, optimizer='adamw', lr=lr, seed=seed, iters=iters,
                phase=phase, curve=curve, report_curve=report, train_curve=[], seconds=1.0,
                work_dir=f'{variant}_lr{lr}_seed{seed}_it{iters}')


def study_runs(ngl_twice_lift):
    runs = []
    for variant, best in (('ce', 1e-3), ('ngl', 2e-3)):
        for lr in (1e-3, 2e-3, 4e-3):
            for seed in (0, 1):
                runs.append(fake_run(variant, lr, seed, 80.0 + 10 * (lr == best) + seed))
        runs.append(fake_run(variant, best, 2, 90.0 + 2))
        for seed in (0, 1):
            lift = ngl_twice_lift if variant == 'ngl' else 0.4
            runs.append(fake_run(variant, best, seed, 90.0 + seed, iters=1600, phase='double',
                                 lift=lift))
    return runs


def test_tuned_rows_carry_the_quarter_budget_score_and_the_plateau_check():
    rows = {r['variant']: r for r in tuned_rows(study_runs(ngl_twice_lift=3.0))}
    ce, ngl = rows['ce'], rows['ngl']
    assert (ce['lr'], ngl['lr']) == (1e-3, 2e-3)  # the doubled runs chose nothing
    assert ce['seeds'] == [0, 1, 2] and ce['iters'] == 800
    # the quarter of 800 iterations is the second of 8 validations: a quarter of the final
    assert ce['report_quarter'] == {0: 90.0 / 4, 1: 91.0 / 4, 2: 92.0 / 4}
    assert ngl['vs_ce_quarter']['mean'] == pytest.approx(0.0)
    assert ce['doubled']['seeds'] == [0, 1] and ce['doubled']['iters'] == 1600
    assert ce['doubled']['delta'] == pytest.approx(0.4) and ce['doubled']['at_plateau']
    assert ngl['doubled']['delta'] == pytest.approx(3.0) and not ngl['doubled']['at_plateau']
    assert cell_at_plateau(list(rows.values()), 'r', 'adamw') is False
    table = format_tuned_table(list(rows.values()))
    assert '+3.00 (90.50 to 93.50, seeds 0, 1): NOT at plateau' in table
    assert '+0.40 (90.50 to 90.90, seeds 0, 1): at plateau' in table
    # the budget's own table leaves the reruns out: no seed appears twice
    for row in summarise(study_runs(0.0)):
        assert len(row['seeds']) == len(set(row['seeds'])), row


def test_a_cell_is_at_plateau_only_when_every_variant_was_checked_and_held():
    rows = tuned_rows(study_runs(ngl_twice_lift=0.9))
    assert cell_at_plateau(rows, 'r', 'adamw') is True
    unchecked = tuned_rows([r for r in study_runs(0.9)
                            if not (r['phase'] == 'double' and r['variant'] == 'ngl')])
    assert cell_at_plateau(unchecked, 'r', 'adamw') is None
    assert 'not run' in format_tuned_table(unchecked)


@pytest.mark.slow
def test_budget_configs_keep_eight_validations_when_a_study_rescales_them():
    cfg = study_config.load_study_config(BUDGET_VOC, iters=4000)
    assert cfg.train_cfg.max_iters == 4000 and cfg.train_cfg.val_interval == 500
    cfg = study_config.load_study_config(QUICKSTART, iters=4000)
    assert cfg.train_cfg.val_interval == 1000  # every other config: quarters
    with pytest.raises(ValueError, match='study_validations must be a positive integer'):
        study_config.load_study_config(BUDGET_VOC, {'study_validations': 0}, iters=100)


@pytest.mark.slow
def test_the_profiler_accounts_for_a_short_run(tmp_path):
    make_dataset('voc', tmp_path / 'data' / 'synthetic' / 'voc', '--num-train', 4,
                 '--num-val', 2)
    out = tmp_path / 'profile.json'
    proc = run([sys.executable, osp.join(REPO, 'tools', 'profile_run.py'), BUDGET_VOC,
                '--work-dir', tmp_path / 'w', '--threads', 1, '--flops', '--out', out,
                '--cfg-options', 'train_cfg.max_iters=8', 'train_cfg.val_interval=4',
                'default_hooks.checkpoint.interval=8', '--loss-time', 4], tmp_path)
    result = json.loads(out.read_text())
    assert (result['iters'], result['validations'], result['threads']) == (8, 2, 1)
    seconds = result['seconds']
    assert all(v >= 0 for k, v in seconds.items() if k != 'other'), seconds
    assert sum(seconds.values()) == pytest.approx(result['total'])
    assert abs(seconds['other']) < 0.05 * result['total']  # the phases account for the run
    assert 'op_profiler' not in seconds and 'ops' not in result  # only with --ops
    assert seconds['step'] > 0 and seconds['validation'] > 0 and seconds['checkpoints'] > 0
    assert set(result['flops']['parts']) >= {'backbone.layer3', 'decode_head.conv_seg'}
    assert 'backbone.layer4' not in result['flops']['parts']  # the budget model has 3 stages
    assert '| training step (forward, backward, optimizer) |' in proc.stdout
    # --loss-time: the two heads' losses in the last 4 steps, a part of those steps
    lt = result['loss_time']
    assert (lt['iters'], lt['calls_per_iter']) == (4, 2.0) and len(lt['losses']) == 2
    assert 0 < lt['forward_ms_per_iter'] and 0 < lt['backward_ms_per_iter']
    assert lt['loss_ms_per_iter'] == pytest.approx(
        lt['forward_ms_per_iter'] + lt['backward_ms_per_iter'])
    assert lt['loss_ms_per_iter'] < lt['step_ms_per_iter'] < 1e3 * seconds['step'] / 4 * 1.5
    assert '| losses, both |' in proc.stdout


class _Sleep(torch.autograd.Function):
    """The identity, sleeping ``fwd`` seconds forward and ``bwd`` backward."""

    @staticmethod
    def forward(ctx, x, fwd, bwd):
        ctx.bwd = bwd
        time.sleep(fwd)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(ctx.bwd)
        return grad, None, None


def test_the_loss_clock_times_the_loss_and_not_the_head_around_it():
    """Two heads, each with 200 ms of its own forward and backward around losses whose
    forward takes 10 ms and backward 20: the clock counts the losses' time and none of
    the heads', one loss a head or two on one input (timed together)."""

    class Loss(torch.nn.Module):
        def forward(self, x, label):
            return _Sleep.apply(x, 0.01, 0.02).pow(2).mean()

    class Head(torch.nn.Module):
        def __init__(self, losses):
            super().__init__()
            self.lin, self.loss_decode = torch.nn.Linear(4, 4), torch.nn.ModuleList(
                Loss() for _ in range(losses))

        def forward(self, x):
            logits = _Sleep.apply(self.lin(x), 0.2, 0.2)
            return sum(loss(logits, None) for loss in self.loss_decode)

    x = torch.randn(2, 4)
    for losses in (1, 2):
        heads, clock = [Head(losses), Head(losses)], loss_clock.LossClock()
        for head in heads:
            for loss in head.loss_decode:
                clock.wrap(loss)
        sum(head(x) for head in heads).backward()  # not active: nothing counted
        assert (clock.calls, clock.awaited, clock.forward_s) == (0, 0, 0.0)
        clock.active = True
        sum(head(x) for head in heads).backward()
        clock.end_step()
        clock.check_paired()
        assert (clock.calls, clock.awaited, clock.backward_done) == (2 * losses, ) * 3
        assert clock.names == ['Loss'] * 2 * losses
        # 10 and 20 ms a loss (at most 40 and 80 ms); one head's 200 ms in either would take
        # it past 0.15
        assert 0.01 * 2 * losses <= clock.forward_s < 0.15
        assert 0.02 * 2 * losses <= clock.backward_s < 0.15


def test_the_profiler_counts_a_study_runs_resume_points_once(tmp_path):
    """A study run saves a resume point between each validation and the next iteration:
    the profile counts it as a checkpoint, not also as the next batch's data loading."""
    root = make_dataset('voc', tmp_path / 'data', '--num-train', 4, '--num-val', 2,
                        '--num-test', 2)
    out = tmp_path / 'profile.json'
    proc = run([sys.executable, osp.join(REPO, 'tools', 'profile_run.py'), BUDGET_VOC,
                '--work-dir', tmp_path / 'w', '--threads', 1, '--as-study-run', root,
                '--iters', 16, '--loss', 'ce', '--ops', 3, '--out', out], tmp_path)
    result = json.loads(out.read_text())
    seconds = result['seconds']
    assert (result['iters'], result['validations'], result['checkpoint_saves']) == (16, 8, 8)
    assert sum(seconds.values()) == pytest.approx(result['total'])
    assert seconds['checkpoints'] > 0 and seconds['data'] >= 0
    # counted twice, the 7 resume points would show as a negative rest of their size
    assert abs(seconds['other']) < 0.2 * seconds['checkpoints'], seconds
    # --loss: the study variant trained; --ops: the last 3 iterations op by op
    trained = (tmp_path / 'w' / 'config.py').read_text()
    assert "type='CrossEntropyLoss'" in trained and 'NGLLoss' not in trained
    ops = result['ops']
    assert ops['iters'] == 3 and len(ops['top']) == run_profile.OPS_SHOWN  # iters: counted
    assert seconds['op_profiler'] > 0  # the profiler's own processing, out of 'other'
    assert 0 < ops['step_ms_per_iter'] < ops['ms_per_iter']
    assert 3 * ops['step_ms_per_iter'] < 1e3 * seconds['step']
    names = [t['name'] for t in ops['top']]
    assert any(n.startswith('aten::') and 'conv' in n for n in names), names
    shares = [t['self_ms_per_iter'] for t in ops['top']]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= ops['ms_per_iter']
    assert '| op | ms per iteration | share | calls per iteration |' in proc.stdout


def test_the_profiler_refuses_what_it_cannot_profile(tmp_path):
    tool = osp.join(REPO, 'tools', 'profile_run.py')
    for args, message in (
            (['--loss', 'ce'], '--loss names the loss of --as-study-run'),
            (['--as-study-run', tmp_path, '--iters', 4, '--loss', 'nope'], '--loss: unknown loss'),
            (['--ops', 0], '--ops must be a positive integer, not 0'),
            (['--as-study-run', tmp_path, '--iters', 4, '--ops', 5],
             '--ops 5: the run has only 4 iterations'),
            (['--loss-time', 0], '--loss-time must be a positive integer, not 0'),
            (['--ops', 2, '--loss-time', 2], '--ops and --loss-time: the profiler slows'),
            (['--as-study-run', tmp_path, '--iters', 4, '--loss-time', 5],
             '--loss-time 5: the run has only 4 iterations')):
        proc = run([sys.executable, tool, BUDGET_VOC, '--work-dir', tmp_path / 'w', *args],
                   tmp_path, expect_ok=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


class _SeedsSplitNGLAndTwiceTheBudgetLifts(FakeTraining):
    """NGL 12 points up on odd seeds and down on even ones (a wide paired interval); every
    run of more than 8 iterations 2.5 points up (the budget doubled moves the mean)."""

    def score(self, record, split):
        score = super().score(record, split)
        if record['variant'] == 'ngl':
            score += 12 if record['seed'] % 2 else -12
        return score + (2.5 if record['iters'] > 8 else 0.0)


def _plateau_study(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(study, 'train_run', fake)
    return study.study(StudySettings(
        VOC_CFG, ['ce', 'ngl'], optimizers=['adamw'], seeds=[0, 1, 2], lrs=[1e-3, 1e-2],
        search_seeds=[0, 1], extend_edges=0, double_seeds=[0, 1], wide_seeds=[3, 4],
        work_dir=str(tmp_path / 'study'), iters=8, regime='clean', jobs=2,
        threads_per_run=1, report_split={'ann_file': 'ImageSets/Segmentation/test.txt'}))


@pytest.mark.slow
def test_the_study_reruns_the_chosen_rates_at_twice_the_budget_and_widens_wide_intervals(
        tmp_path, monkeypatch):
    fake = _SeedsSplitNGLAndTwiceTheBudgetLifts()
    _plateau_study(tmp_path, fake, monkeypatch)
    names = sorted(name for name, _ in fake.calls)
    doubled = ['ce_adamw_lr0.01_seed0_it16', 'ce_adamw_lr0.01_seed1_it16',
               'ngl_adamw_lr0.001_seed0_it16', 'ngl_adamw_lr0.001_seed1_it16']
    widened = ['ce_adamw_lr0.01_seed3', 'ce_adamw_lr0.01_seed4', 'ngl_adamw_lr0.001_seed3',
               'ngl_adamw_lr0.001_seed4']
    # 2 variants x 2 lrs x 2 search seeds, seed 2 at each chosen rate, the reruns, the seeds
    # added where NGL's interval against CE is wide (NGL - CE: -15, +9, -15 on seeds 0-2)
    assert len(names) == 8 + 2 + 4 + 4 and set(doubled + widened) <= set(names)
    record = json.loads((tmp_path / 'study' / doubled[0] / 'run.json').read_text())
    assert (record['iters'], record['phase'], record['lr']) == (16, 'double', 0.01)
    config = (tmp_path / 'study' / doubled[0] / 'config.py').read_text()
    assert 'max_iters=16' in config.replace(' ', '')
    data = json.loads((tmp_path / 'study' / 'study.json').read_text())
    tuned = {r['variant']: r for r in data['tuned']}
    assert tuned['ce']['seeds'] == tuned['ngl']['seeds'] == [0, 1, 2, 3, 4]
    assert tuned['ngl']['doubled']['delta'] == pytest.approx(2.5)
    assert not tuned['ngl']['doubled']['at_plateau'] and tuned['ce']['doubled']['seeds'] == [0, 1]
    assert 'NOT at plateau' in (tmp_path / 'study' / 'study.md').read_text()
    # run again: every run, the reruns too, is found finished and nothing trains
    again = _SeedsSplitNGLAndTwiceTheBudgetLifts()
    _plateau_study(tmp_path, again, monkeypatch)
    assert again.calls == []


def test_plateau_settings_are_checked():
    def check(**kwargs):
        args = dict(optimizers=['adamw'], seeds=[0, 1], lrs=[1e-3, 1e-2], search_seeds=[0, 1],
                    iters=8, report_split={'ann_file': 'x'})
        args.update(kwargs)
        StudySettings(VOC_CFG, ['ce'], **args).check()

    check(double_seeds=[0, 1], wide_seeds=[5])  # fine
    with pytest.raises(ValueError, match='double seed 7 is not one of the seeds'):
        check(double_seeds=[7])
    with pytest.raises(ValueError, match='--double-seeds needs --iters'):
        check(double_seeds=[0], iters=None)
    with pytest.raises(ValueError, match='need --search-seeds'):
        check(double_seeds=[0], search_seeds=None, lrs=[1e-3])
    with pytest.raises(ValueError, match='seed 1 is given more than once'):
        check(wide_seeds=[1])
    with pytest.raises(ValueError, match='wide_half_width nan must be a positive number'):
        check(wide_seeds=[5], wide_half_width=float('nan'))


@pytest.mark.slow
def test_a_study_stopped_midway_keeps_its_finished_runs_and_resumes_from_them(
        tmp_path, monkeypatch):
    """--export-finished copies the finished runs' records of a study that did not end
    (here one run failed) to its merge's records folder; a fresh work dir seeded from
    them trains only what is missing."""
    records = tmp_path / 'records'
    spec = dict(work_dir=str(tmp_path / 'work'), datasets={}, studies={'s': dict(
        config=VOC_CFG, variants=['ce', 'ngl'], optimizers=['adamw'], lrs=[1e-3, 1e-2],
        search_seeds=[0, 1], seeds=[0, 1, 2], iters=8, extend_edges=0,
        report_split={'ann_file': 'ImageSets/Segmentation/test.txt'})},
        merges={'m': dict(studies=['s'], records=str(records))})
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    monkeypatch.setattr(study, 'train_run', FakeTraining(fail={'ngl_adamw_lr0.01_seed1'}))
    with pytest.raises(study.RunsFailed):
        study_spec.run_spec(str(path))
    finished = sorted(p.parent.name for p in (tmp_path / 'work' / 's').glob('*/run.json')
                      if json.loads(p.read_text())['finished'])
    study_spec.export_finished(str(path))
    assert sorted(p.name for p in records.joinpath('s').iterdir()) == finished
    assert 'ngl_adamw_lr0.01_seed1' not in finished and len(finished) >= 3
    # a fresh machine: the records copied into a new work dir, the study run again
    shutil.copytree(records / 's', tmp_path / 'work2' / 's')
    spec['work_dir'] = str(tmp_path / 'work2')
    path.write_text(json.dumps(spec))
    again = FakeTraining()
    monkeypatch.setattr(study, 'train_run', again)
    study_spec.run_spec(str(path))
    trained = {name for name, _ in again.calls}
    assert not trained & set(finished) and 'ngl_adamw_lr0.01_seed1' in trained


@pytest.mark.slow
def test_a_study_at_twice_the_budget_copies_the_shorter_ones_plateau_check(
        tmp_path, monkeypatch):
    """A study that names another in ``reuse_runs_of`` copies that study's finished runs
    where every identity key is alike (here the shorter study's reruns at twice its
    budget are the longer one's runs at those rates: a search run on seed 0, a final one
    on seed 1) and trains the rest: not a run of the same folder name but another budget,
    an unfinished one, or one whose record is damaged."""
    grid = dict(config=VOC_CFG, variants=['ce', 'ngl'], optimizers=['adamw'],
                lrs=[1e-3, 1e-2], seeds=[0, 1, 2], extend_edges=0, double_seeds=[0, 1],
                report_split={'ann_file': 'ImageSets/Segmentation/test.txt'})
    spec = dict(work_dir=str(tmp_path / 'work'), datasets={}, studies={
        'short': dict(grid, iters=8, search_seeds=[0, 1]),
        'long': dict(grid, iters=16, search_seeds=[0], reuse_runs_of=['short'])})
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    fake = FakeTraining()
    monkeypatch.setattr(study, 'train_run', fake)
    study_spec.run_spec(str(path), only=['short'])
    short, long_dir = tmp_path / 'work' / 'short', tmp_path / 'work' / 'long'
    reruns = ['ce_adamw_lr0.01_seed0_it16', 'ce_adamw_lr0.01_seed1_it16',
              'ngl_adamw_lr0.001_seed0_it16', 'ngl_adamw_lr0.001_seed1_it16']
    assert set(reruns) <= {name for name, _ in fake.calls}
    (short / reruns[0] / 'iter_16.pth').write_bytes(b'checkpoint')
    (short / reruns[0] / 'last_checkpoint').write_text(str(short / reruns[0] / 'iter_16.pth'))
    unfinished = short / reruns[3] / 'run.json'  # as if it had stopped midway
    unfinished.write_text(json.dumps(dict(json.loads(unfinished.read_text()), finished=False)))
    shutil.copytree(short / reruns[2], short / 'damaged')
    (short / 'damaged' / 'run.json').write_text('{not json')
    long_dir.mkdir()
    (long_dir / '.ce_adamw_lr0.01_seed0.copying').mkdir()  # a copy that stopped midway
    long_ = FakeTraining()
    monkeypatch.setattr(study, 'train_run', long_)
    study_spec.run_spec(str(path), only=['long'])
    trained = sorted(name for name, _ in long_.calls)
    copied = {'ce_adamw_lr0.01_seed0': ('search', reruns[0]),
              'ngl_adamw_lr0.001_seed0': ('search', reruns[2]),
              'ce_adamw_lr0.01_seed1': ('final', reruns[1])}
    # 4 search runs less 2 copied, seeds 1 and 2 at each chosen rate less 1, 4 reruns
    assert len(trained) == 2 + 3 + 4 and not set(copied) & set(trained), trained
    assert 'ngl_adamw_lr0.001_seed1' in trained  # its source never finished
    for name, (phase, source) in copied.items():
        record = json.loads((long_dir / name / 'run.json').read_text())
        assert (record['phase'], record['iters']) == (phase, 16)
        assert record['copied_from'] == str(short / source)
    assert not {'iter_16.pth', 'last_checkpoint'} & set(
        p.name for p in (long_dir / 'ce_adamw_lr0.01_seed0').iterdir())
    assert (short / reruns[0] / 'iter_16.pth').exists()  # the source keeps everything
    assert [p.name for p in long_dir.glob('.*')] == []  # the stale copy replaced, renamed
    tuned = {r['variant']: r for r in json.loads((long_dir / 'study.json').read_text())['tuned']}
    assert tuned['ce']['seeds'] == tuned['ngl']['seeds'] == [0, 1, 2]
    # run again: everything is there, nothing trains
    again = FakeTraining()
    monkeypatch.setattr(study, 'train_run', again)
    study_spec.run_spec(str(path), only=['long'])
    assert again.calls == []


def test_reusing_runs_names_other_studies(tmp_path):
    spec = dict(work_dir=str(tmp_path / 'work'), datasets={}, studies={
        's': dict(config=VOC_CFG, reuse_runs_of=['t'])})
    path = tmp_path / 'spec.json'
    for others in (['t'], ['s']):
        spec['studies']['s']['reuse_runs_of'] = others
        path.write_text(json.dumps(spec))
        with pytest.raises(ValueError, match=f"reuses the runs of '{others[0]}', which is not "
                                             'another study of the spec'):
            study_spec.load_spec(str(path))
    with pytest.raises(ValueError, match="is this study's own folder"):
        StudySettings(VOC_CFG, ['ce'], work_dir=str(tmp_path / 'w'),
                      reuse_from=[str(tmp_path / 'w')]).check()
    with pytest.raises(ValueError, match='give a list of folders'):
        StudySettings(VOC_CFG, ['ce'], reuse_from=str(tmp_path / 'v')).check()


def test_a_study_like_another_takes_its_settings_and_gives_only_what_differs(tmp_path):
    """``like`` stands for every key of the study it names (expanded first, so chains work)
    but ``reuse_runs_of`` and ``title``; the entry's own keys replace that study's, a dict as
    a whole; a study's runs are those of the same entry written in full."""
    base = dict(config=VOC_CFG, variants=['ce', 'ngl'], lrs=[1e-3, 1e-2], iters=8,
                search_seeds=[0, 1], cfg_options={'study_matmul_resize': True, 'x': 1},
                report_split={'ann_file': 'ImageSets/Segmentation/test.txt'},
                title='the short one', reuse_runs_of=['long'])
    spec = dict(work_dir=str(tmp_path / 'work'), datasets={}, studies={
        'short': base,
        'long': dict(like='short', iters=16, reuse_runs_of=['short']),
        'longer': dict(like='long', lrs=[1e-2, 3e-2], cfg_options={'x': 2}),
        'plain': dict(base, iters=16, lrs=[1e-2, 3e-2], cfg_options={'x': 2})})
    for key in ('reuse_runs_of', 'title'):
        spec['studies']['plain'].pop(key)
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    loaded = study_spec.load_spec(str(path))
    studies = loaded['studies']
    assert studies['short'] == base
    long_ = dict(base, iters=16, reuse_runs_of=['short'])
    del long_['title']
    assert studies['long'] == long_
    assert studies['longer'] == studies['plain'] != studies['long']
    assert not {'like', 'reuse_runs_of', 'title'} & set(studies['longer'])
    settings = {name: study_spec.study_settings(loaded, name, {}, str(path))
                for name in ('longer', 'plain')}
    first = {name: [job['record'] for job in study.first_runs(s, *study.check_study(s))[1]]
             for name, s in settings.items()}
    assert first['longer'] and first['longer'] == first['plain']
    studies['longer']['cfg_options']['x'] = 3  # no study's values are another's
    studies['short']['lrs'].append(1.0)
    assert studies['long']['cfg_options']['x'] == studies['short']['cfg_options']['x'] == 1
    assert studies['long']['lrs'] == [1e-3, 1e-2]


@pytest.mark.parametrize('studies, message', [
    ({'a': dict(config=VOC_CFG, like='b')}, "is \"like\" 'b', which is not another study"),
    ({'a': dict(config=VOC_CFG, like='a')}, 'is "like" itself: name another study'),
    ({'a': dict(like='b'), 'b': dict(like='c'), 'c': dict(like='b')},
     r"in a cycle \(b -> c -> b\): one of them must give its settings in full"),
    ({'a': dict(config=VOC_CFG, like=['b']), 'b': dict(config=VOC_CFG)},
     '"like" must be a string'),
    ({'a': dict(like='b', iters=4), 'b': dict(iters=8)}, "study 'a' needs a \"config\""),
])
def test_a_like_that_stands_for_nothing_is_refused(tmp_path, studies, message):
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(dict(work_dir=str(tmp_path / 'work'), studies=studies)))
    with pytest.raises(ValueError, match=message):
        study_spec.load_spec(str(path))


def test_the_plateau_reruns_are_their_shorter_studies_at_twice_the_budget():
    """The plateau spec writes each rerun as its shorter study's difference: the same cell at
    twice the iterations, the rerun's own rates, copying the shorter study's runs."""
    spec = study_spec.load_spec(osp.join(REPO, 'configs', 'studies', 'plateau.json'))
    studies = spec['studies']
    differ = {'iters', 'lrs', 'reuse_runs_of'}
    for longer, shorter in (('coco-clean-adamw-32k', 'coco-clean-adamw-16k'),
                            ('unlabelled-ignore-40-adamw-8k', 'unlabelled-ignore-40-adamw-4k'),
                            ('clean-sgd-8k', 'clean-sgd-4k'),
                            ('pretrained-sgd-4k', 'pretrained-sgd')):
        a, b = studies[longer], studies[shorter]
        assert a['iters'] == 2 * b['iters'] and a['reuse_runs_of'] == [shorter]
        same = {key: value for key, value in a.items() if key not in differ}
        assert same == {key: value for key, value in b.items() if key not in differ}, longer
    # the 171-class uniform-40 cell is the clean one at 32000 but for its data and variants,
    # and copies no study's runs
    a, b = studies['coco-uniform-40-adamw-32k'], studies['coco-clean-adamw-32k']
    assert (a['data'], a['regime'], a['iters']) == ('coco-uniform-40', '171-uniform-40', 32000)
    assert a['variants'] == ['ce', 'ngl', 'ngl-plain', 'ce-ls', 'gce', 'sce']
    assert 'reuse_runs_of' not in a and {key: value for key, value in a.items() if key not in (
        'data', 'regime', 'variants')} == {key: value for key, value in b.items() if key not in (
            'data', 'regime', 'variants', 'reuse_runs_of')}


def _table_rows(page, header):
    """The body rows of the page's table whose header starts with ``header``."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith('|')), len(lines))
    return lines[start:end]


def _table_cells(row):
    """The cells of one Markdown table row, stripped."""
    return [c.strip() for c in row.strip('|').split('|')]


def _profile(name):
    """A profile (or benchmark) JSON of docs/profile/, by its name."""
    return json.load(open(osp.join(REPO, 'docs', 'profile', f'{name}.json')))


def _check_phase_rows(rows, profiles):
    """Each phase row's seconds (one column per profile) as the profile recorded them, and
    every ``ms an iteration`` as its seconds over the iterations; the cells checked."""
    labels = {'start-up': 'startup', 'data loading': 'data', 'training step': 'step',
              'hooks after': 'after_iter_hooks', 'validation, selection': 'validation',
              'after validation': 'after_val_hooks', 'checkpoints': 'checkpoints'}
    checked = 0
    for row in rows:
        cells = _table_cells(row)
        key = next((k for label, k in labels.items() if cells[0].startswith(label)), None)
        assert len(cells) == len(profiles) + 1 and (key or cells[0].startswith('**total')), row
        for cell, profile in zip(cells[1:], profiles):
            seconds = float(cell.split(' s')[0].strip('*'))
            expected = profile['total'] if key is None else profile['seconds'][key]
            assert seconds == pytest.approx(expected, abs=0.05), (row, expected)
            if key == 'step':
                ms = float(cell.split(', ')[1].split(' ms')[0])
                assert ms == pytest.approx(1e3 * expected / profile['iters'], abs=0.05), row
            checked += 1
    return checked


def test_the_cost_page_figures_are_the_profiles():
    """docs/study-cost.md's table: each phase's seconds (and the step's milliseconds an
    iteration) as the profiles in docs/profile/ recorded them."""
    page = open(osp.join(REPO, 'docs', 'study-cost.md')).read()
    profiles = [_profile(name)
                for name in ('quickstart-500', 'budget-2000', 'budget-2000-speedups')]
    rows = _table_rows(page, '| phase | quickstart')
    assert _check_phase_rows(rows, profiles) == 24
    assert _check_phase_rows(_table_rows(page, '| phase (matrix products)'), [
        _profile(name) for name in ('budget-2000-mmseg-resize', 'budget-2000-matmul-resize',
                                    'coco-budget-500-mmseg-resize',
                                    'coco-budget-500-matmul-resize')]) == 24
    # the freed memory kept and the accuracy by amax: three side-by-side pairs
    pairs = [_profile(name) for name in (
        'coco-budget-500-freed-memory-returned', 'coco-budget-500-freed-memory-kept',
        'coco-budget-500-freed-memory-kept-again', 'coco-budget-500-amax-accuracy',
        'budget-2000-before-memory-and-amax', 'budget-2000-memory-and-amax')]
    assert _check_phase_rows(_table_rows(page, '| phase (memory and accuracy)'), pairs) == 36
    pair_ms = [1e3 * p['seconds']['step'] / p['iters'] for p in pairs]
    flat = ' '.join(page.split())
    for before, after in ((0, 1), (2, 3), (4, 5)):
        assert f'from {pair_ms[before]:.1f} to {pair_ms[after]:.1f} ms' in flat
    assert f'{pair_ms[1]:.1f} x {pair_ms[3]:.1f} / {pair_ms[2]:.1f} = ' \
        f'{pair_ms[1] * pair_ms[3] / pair_ms[2]:.1f} ms, against {pair_ms[0]:.1f}' in flat
    # a 4000-iteration run from the 2000-iteration profile with every speedup: start-up once
    fast, quick = pairs[5], profiles[0]
    start, total = fast['seconds']['startup'], fast['total']
    run_4000 = start + 2 * (total - start)
    assert f"{start:.1f} + 2 x ({total:.1f} - {start:.1f}) = {run_4000:.1f} s" in flat
    assert f"{run_4000 / quick['total']:.1f}x the quickstart's {quick['total']:.1f} s" in flat
    step_ms = [1e3 * p['seconds']['step'] / p['iters'] for p in profiles]
    assert all(f'{ms:.1f} ms' in page for ms in step_ms)
    # the speedups' paragraph: the step and the run, before and after
    assert f"step fell from {step_ms[1]:.1f} to {step_ms[2]:.1f} ms and the run from " \
        f"{profiles[1]['total']:.1f} to {profiles[2]['total']:.1f} s" in ' '.join(page.split())
    assert f"{profiles[0]['flops']['total'] / 1e6:.1f} M" in page
    assert f"{profiles[1]['flops']['total'] / 1e6:.1f} M" in page
    # the resume points' cost: the profile's checkpoints, against the 2000-iteration run
    resume = _profile('budget-400-resume-points')
    saves = resume['seconds']['checkpoints']
    assert resume['validations'] == 8
    assert f"its 8 saves (7 resume points, the last checkpoint) took {saves:.1f} s, " \
        f"{saves / 8:.2f} s each: about {100 * saves / profiles[2]['total']:.0f}% of a " \
        f"2000-iteration run's {profiles[2]['total']:.1f} s" in ' '.join(page.split())


def _unprofiled_step_ms(profile):
    """A profile's step time an iteration over the iterations before its ``--ops`` window
    (the profiler slows CE's steps, which it watches, more than twice over)."""
    ops = profile['ops']
    window = ops['step_ms_per_iter'] * ops['iters'] / 1e3
    return 1e3 * (profile['seconds']['step'] - window) / (profile['iters'] - ops['iters'])


def test_the_cost_page_recipe_plain_and_ce_figures_are_the_measurements():
    """docs/study-cost.md's section on the recipe, ``ngl-plain`` and CE: its table, the steps
    before and within the profiler's window, the ratios to CE (the fifteenth session's
    too) as the profiles recorded them, and the loss-only figures as the benchmark's JSON
    holds them."""
    from ngl_lab.benchmark import SHAPES
    from ngl_mmseg.ops.backends import COMPILE_MIN_ELEMENTS
    page = open(osp.join(REPO, 'docs', 'study-cost.md')).read()
    flat = ' '.join(page.split())
    ngl, plain, ce, ngl_ce = [_profile(f'coco-budget-300-{name}-ops')
                              for name in ('ngl', 'ngl-plain', 'ce', 'ngl-beside-ce')]
    assert {(p['iters'], p['ops']['iters'], p['validations'], p['threads'])
            for p in (ngl, plain, ce, ngl_ce)} == {(300, 50, 1, 1)}
    rows = _table_rows(page, '| phase (recipe, plain, CE)')
    assert _check_phase_rows(rows, [ngl, plain, ce, ngl_ce]) == 20
    before = {name: _unprofiled_step_ms(p) for name, p in
              (('ngl', ngl), ('plain', plain), ('ce', ce), ('ngl_ce', ngl_ce))}
    assert f"({ce['ops']['step_ms_per_iter']:.1f} ms in its window against " \
        f"{before['ce']:.1f} before it)" in flat
    assert f"first 250 iterations take {before['ngl']:.1f} against {before['plain']:.1f} ms " \
        "a step" in flat
    assert f"{ngl['ops']['step_ms_per_iter']:.1f} against " \
        f"{plain['ops']['step_ms_per_iter']:.1f} ms in the step" in flat
    assert f"took {before['ngl']:.1f} and {before['ngl_ce']:.1f} ms a step" in flat
    assert f"first 250 iterations take {before['ngl_ce']:.1f} against {before['ce']:.1f} ms, " \
        f"{before['ngl_ce'] / before['ce']:.2f} times" in flat
    # the fifteenth session's pair, by the same formula
    old_ngl, old_ce = (_profile(f'coco-budget-200-{name}-ops') for name in ('ngl', 'ce'))
    old = [_unprofiled_step_ms(p) for p in (old_ngl, old_ce)]
    assert f"gave {old[0]:.1f} against {old[1]:.1f} ms, {old[0] / old[1]:.2f} times" in flat
    # the compiled loss's two graphs (forward, backward) per head, two heads a step
    heads = {op['calls_per_iter'] for p in (ngl, plain, ngl_ce) for op in p['ops']['top']
             if op['name'] in ('NGLPixelLossFunction', 'NGLPixelLossFunctionBackward')}
    assert heads == {2.0}
    per_head = sorted(sum(op['self_ms_per_iter'] for op in p['ops']['top']
                          if 'CompiledFxGraph' in op['name']) / 2 for p in (ngl, plain, ngl_ce))
    assert f"graphs at {per_head[0]:.1f} to {per_head[-1]:.1f} ms a head" in flat
    loss_json = _profile('loss-budget-shapes')
    assert (loss_json['threads'], loss_json['repeats']) == (1, 9)
    loss = {(r['shape_name'], r['variant']): r for r in loss_json['rows']}
    assert {variant for _, variant in loss} == {'ce', 'ngl-torch', 'ngl-compile'}
    assert all(r['shape'] == list(SHAPES[name]) for (name, _), r in loss.items())
    coco = [loss['budget-coco-stuff', v] for v in ('ngl-compile', 'ce')]
    assert f"{coco[0]['time_ratio']:.2f} times CE's (" \
        f"{coco[0]['ms']:.2f} against {coco[1]['ms']:.2f} ms;" in flat
    eager, compiled, voc_ce = [loss['budget-voc', v] for v in ('ngl-torch', 'ngl-compile', 'ce')]
    elements = math.prod(eager['shape'])
    assert elements < COMPILE_MIN_ELEMENTS == 2 ** 20 <= 8 * 171 * 64 * 64
    assert f"8x21x64x64 = {elements:,} elements".replace(',', ' ') + ", under the 2^20" in flat
    assert f"{compiled['first_call_ms'] / 1e3:.1f} s at the first call" in flat
    assert f"the eager NGL is {eager['time_ratio']:.2f} times CE's forward and backward " \
        f"({eager['ms']:.2f} against {voc_ce['ms']:.2f} ms) and the compiled one " \
        f"{compiled['time_ratio']:.2f} times ({compiled['ms']:.2f} ms): by this benchmark, " \
        f"about {2 * (eager['ms'] - compiled['ms']):.0f} ms" in flat
    # the reruns the section names copy runs of their shorter studies
    studies = json.load(open(osp.join(REPO, 'configs', 'studies', 'plateau.json')))['studies']
    for name in ('unlabelled-ignore-40-adamw-8k', 'clean-sgd-8k', 'pretrained-sgd-4k'):
        assert f'`{name}`' in flat and studies[name]['reuse_runs_of']


def test_the_cost_page_loss_in_the_step_figures_are_the_measurements():
    """docs/study-cost.md on where NGL's dearer 171-class step goes: the losses in the step
    by the clock (``--loss-time``) and the benchmark before it kept freed memory, as their
    JSON files hold them."""
    page = open(osp.join(REPO, 'docs', 'study-cost.md')).read()
    flat = ' '.join(page.split())
    # the same command before the benchmark kept freed memory: this machine, then the 24th's
    for name, text in (('before-heap', 'read CE at {ce} ms and the compiled NGL at {ngl} '
                        '({ratio} times)'),
                       ('session24', 'had read {ratio} times ({ngl} against {ce} ms)')):
        rows = {(r['shape_name'], r['variant']): r
                for r in _profile(f'loss-budget-shapes-{name}')['rows']}
        ngl, ce = (rows['budget-coco-stuff', v] for v in ('ngl-compile', 'ce'))
        assert text.format(ce=f"{ce['ms']:.2f}", ngl=f"{ngl['ms']:.2f}",
                           ratio=f"{ngl['time_ratio']:.2f}") in flat, name
    # the losses in the step, by the clock: the table, and what the loss explains
    timed = {name: _profile(f'coco-budget-300-{name}-loss-time') for name in ('ce', 'ngl')}
    assert {(p['iters'], p['loss_time']['iters'], p['loss_time']['calls_per_iter'],
             p['threads']) for p in timed.values()} == {(300, 250, 2.0, 1)}
    assert timed['ce']['loss_time']['losses'] == ['CrossEntropyLoss'] * 2
    assert timed['ngl']['loss_time']['losses'] == ['NGLLoss'] * 2
    rest = {name: p['loss_time']['step_ms_per_iter'] - p['loss_time']['loss_ms_per_iter']
            for name, p in timed.items()}
    rows = _table_rows('\n'.join(line.lstrip() for line in page.splitlines()),
                       '| in the step, ms an iteration (two heads)')  # a table in a bullet
    keys = {'training step': 'step_ms_per_iter', 'the losses, forward': 'forward_ms_per_iter',
            'the losses, backward': 'backward_ms_per_iter', 'the losses, both': 'loss_ms_per_iter'}
    assert len(rows) == 5
    for row in rows:
        label, *cells = _table_cells(row)
        expected = [rest[n] if label == 'the rest of the step' else
                    timed[n]['loss_time'][keys[label]] for n in ('ce', 'ngl')]
        assert [float(c) for c in cells] == pytest.approx(expected, abs=0.05), row
    ce_t, ngl_t = timed['ce']['loss_time'], timed['ngl']['loss_time']
    assert f"{ngl_t['loss_ms_per_iter'] - ce_t['loss_ms_per_iter']:.1f} of the step's " \
        f"{ngl_t['step_ms_per_iter'] - ce_t['step_ms_per_iter']:.1f} ms" in flat
    assert "the NGL loss (compiled) is " \
        f"{ngl_t['loss_ms_per_iter'] / ce_t['loss_ms_per_iter']:.2f} times CE's" in flat
    assert f"({ngl_t['step_ms_per_iter'] / ce_t['step_ms_per_iter']:.2f} times past the " \
        "warm-up, in the twenty-fifth session's measurement below" in flat


@pytest.mark.slow
def test_a_spec_with_the_plateau_check_merges_publishes_exports_and_collects(
        tmp_path, monkeypatch):
    """The reruns at twice the budget go through every later step: the spec's merge (its
    table and checks), publishing, the records export (and exporting again over it), and
    --collect of the study's folders."""
    from ngl_lab.study_rebuild import collect
    records, publish = tmp_path / 'records', tmp_path / 'pub' / 'plateau'
    spec = dict(work_dir=str(tmp_path / 'work'), datasets={}, studies={'s': dict(
        config=VOC_CFG, variants=['ce', 'ngl'], optimizers=['adamw'], lrs=[1e-3, 1e-2],
        search_seeds=[0, 1], seeds=[0, 1, 2], iters=8, extend_edges=0, double_seeds=[0, 1],
        report_split={'ann_file': 'ImageSets/Segmentation/test.txt'})},
        merges={'m': dict(studies=['s'], records=str(records), publish=str(publish),
                          title='plateau')})
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    monkeypatch.setattr(study, 'train_run', _SeedsSplitNGLAndTwiceTheBudgetLifts())
    study_spec.run_spec(str(path))
    reruns = sorted(p.name for p in records.joinpath('s').iterdir() if '_it16' in p.name)
    assert reruns == ['ce_adamw_lr0.01_seed0_it16', 'ce_adamw_lr0.01_seed1_it16',
                      'ngl_adamw_lr0.001_seed0_it16', 'ngl_adamw_lr0.001_seed1_it16']
    published = json.loads((tmp_path / 'pub' / 'plateau.json').read_text())
    assert all(row['doubled']['iters'] == 16 for row in published['tuned'])
    assert sum(run['phase'] == 'double' for run in published['runs']) == 4
    study_spec.export_finished(str(path))  # over its own records: recognised, replaced
    assert sorted(p.name for p in records.joinpath('s').iterdir() if '_it16' in p.name) == reruns
    rows = collect(str(tmp_path / 'work' / 's'))
    assert all(len(r['seeds']) == len(set(r['seeds'])) for r in rows)
    again = _SeedsSplitNGLAndTwiceTheBudgetLifts()
    monkeypatch.setattr(study, 'train_run', again)
    study_spec.run_spec(str(path))  # resumed: nothing trains, the merge is written again
    assert again.calls == []


def test_a_merge_checks_each_rows_reruns_against_that_rows_own_budget():
    """A merge may hold a cell run at 800 iterations beside one run at 1600 (a cell that
    failed its check and ran again longer): each rerun doubles its own row's budget."""
    from ngl_lab.study_rebuild import check_one_study

    def cell(regime, iters):
        runs = []
        for variant in ('ce', 'ngl'):
            runs.append(dict(fake_run(variant, 1e-3, 0, 90.0, iters=iters), regime=regime))
            runs.append(dict(fake_run(variant, 1e-3, 0, 90.0, iters=2 * iters, phase='double'),
                             regime=regime))
        return runs

    short, long = cell('short', 800), cell('long', 1600)
    for record in short + long:
        record['work_dir'] = f"{record['regime']}/{record['work_dir']}"
    check_one_study(short + long, 'the merge', per_row=True)  # each row's reruns: its own
    stray = dict(long[1], regime='short', seed=1, work_dir='short/ce_lr0.001_seed1_it3200')
    with pytest.raises(ValueError, match='short/ce_lr0.001_seed1_it3200 in the merge is a rerun '
                       r'at twice the budget \(3200 iterations\) of no run'):
        check_one_study(short + [stray], 'the merge', per_row=True)
    orphan = dict(long[1], regime='elsewhere', work_dir='elsewhere/ce_it3200')
    with pytest.raises(ValueError, match='elsewhere/ce_it3200 in the merge is a rerun'):
        check_one_study(short + [orphan], 'the merge', per_row=True)
    check_one_study(short, 'one study')
    with pytest.raises(ValueError, match='one study is a rerun at twice the budget'):
        check_one_study(short + [stray], 'one study')


def test_the_short_answer_gives_each_cell_its_verdict_and_marks_a_failed_plateau():
    from ngl_lab.stats import format_difference
    from ngl_lab.study_answer import format_short_answer, situation
    failed = tuned_rows(study_runs(ngl_twice_lift=3.0))
    ngl = next(r for r in failed if r['variant'] == 'ngl')
    table = format_short_answer(failed, pending=[('171-uniform-40', 'adamw')])
    row = next(line for line in table.splitlines() if '(`r`, adamw)' in line)
    # the verdicts of a cell that failed its doubling check say so; speed is not a verdict
    assert f"| {format_difference(ngl['vs_ce'])} (not at plateau) |" in row
    assert f"| {format_difference(ngl['vs_ce_peak'])} (not at plateau) |" in row
    assert f"| {format_difference(ngl['vs_ce_quarter'])} |" in row
    assert '**no** (largest move +3.00, ngl)' in row
    # where the cell failed: the verdict at twice the budget, on the seeds both reran
    assert '; ngl - ce at 1600: +2.60 [+2.60, +2.60], ahead 2/2, win |' in row
    assert ('| 171 classes, 40% of objects relabelled to a random class, AdamW from scratch '
            '(`171-uniform-40`, adamw) | - | not finished yet |') in table
    held = format_short_answer(tuned_rows(study_runs(ngl_twice_lift=0.9)))
    assert 'not at plateau' not in held and 'yes (largest move +0.90, ngl)' in held
    assert 'ngl - ce at 1600' not in held  # a cell at its plateau: its verdict stands
    unchecked = format_short_answer(tuned_rows(
        [r for r in study_runs(0.9) if not (r['phase'] == 'double' and r['variant'] == 'ngl')]))
    assert 'not checked yet' in unchecked and 'not at plateau' not in unchecked
    assert '(plateau not checked) |' in unchecked
    assert situation('pretrained', 'sgd') == \
        'clean labels, SGD from a pretrained backbone (`pretrained`, sgd)'
    # the tuned table marks the verdicts of the failed cell too, each variant's row
    tuned_table = format_tuned_table(failed)
    assert f"| {format_difference(ngl['vs_ce'])} (not at plateau) |" in tuned_table
    assert 'not at plateau' not in format_tuned_table(tuned_rows(study_runs(0.9)))


def _reruns_peaking_halfway(peak_drop, final_drop):
    """The study's runs, its reruns at twice the budget peaking halfway on the selection
    split: the report split there ``peak_drop`` and at the end ``final_drop`` below the
    base runs' final (which is also their peak)."""
    runs = study_runs(ngl_twice_lift=0.0)
    for rerun in runs:
        if rerun['phase'] == 'double':
            top = 90.0 + rerun['seed']
            steps = [s for s, _ in rerun['curve']]
            rerun['curve'] = [(s, top - abs(k - 4)) for k, s in enumerate(steps, 1)]
            rerun['report_curve'] = [
                (s, top - (peak_drop if k == 4 else final_drop if k == 8 else 10.0))
                for k, s in enumerate(steps, 1)]
    return tuned_rows(runs)


def _short_answer_spans(rows):
    """The short answer's final, peak and quarter cells of the ngl row, as one span."""
    from ngl_lab.study_answer import format_short_answer
    row = next(line for line in format_short_answer(rows).splitlines() if '(`r`, adamw)' in line)
    return row.split(' | ')[2:5]


def test_the_validation_peak_has_a_plateau_check_of_its_own():
    """Under label noise a longer run can end lower (it fits more of the wrong labels)
    while its early-stopped score holds, or the other way round: the move of the peak
    scores is checked too, and a verdict at the peak is marked where either check failed."""
    from ngl_lab.stats import format_difference
    falls = _reruns_peaking_halfway(peak_drop=0.0, final_drop=3.0)
    ngl = next(r for r in falls if r['variant'] == 'ngl')
    assert ngl['doubled']['delta'] == pytest.approx(-3.0)
    assert ngl['doubled']['peak_delta'] == pytest.approx(0.0)
    assert cell_at_plateau(falls, 'r', 'adamw') is False
    assert cell_at_plateau(falls, 'r', 'adamw', 'peak') is True
    final, peak, quarter = (format_difference(ngl[k])
                            for k in ('vs_ce', 'vs_ce_peak', 'vs_ce_quarter'))
    # the cell failed its check: both verdicts are marked, speed is not a verdict
    assert _short_answer_spans(falls) == [f'{final} (not at plateau)',
                                          f'{peak} (not at plateau)', quarter]
    from ngl_lab.study_answer import format_short_answer
    assert '**no** (largest move -3.00, ce); peak yes (+0.00, ce)' in format_short_answer(falls)
    assert '-3.00 (90.50 to 87.50, seeds 0, 1): NOT at plateau; at val peak +0.00 ' \
        '(90.50 to 90.50) |' in format_tuned_table(falls)
    # the final scores hold, the peak scores moved: only the verdicts at the peak are marked
    peak_moved = _reruns_peaking_halfway(peak_drop=3.0, final_drop=0.0)
    assert cell_at_plateau(peak_moved, 'r', 'adamw') is True
    assert cell_at_plateau(peak_moved, 'r', 'adamw', 'peak') is False
    assert _short_answer_spans(peak_moved) == [final, f'{peak} (not at plateau)', quarter]
    table = [line.split(' | ') for line in format_tuned_table(peak_moved).splitlines()
             if line.startswith('| r | adamw | ngl |')][0]
    assert (table[6], table[8]) == (final, f'{peak} (not at plateau)')
    assert 'at plateau; at val peak -3.00 (90.50 to 87.50)' in table[12]
    # a study published before the peak was checked: the final check stands for it
    for row in peak_moved:
        for key in ('peak_delta', 'peak_at_plateau', 'peak_base_mean', 'peak_mean', 'peaks'):
            del row['doubled'][key]
    assert cell_at_plateau(peak_moved, 'r', 'adamw', 'peak') is True
    assert _short_answer_spans(peak_moved) == [final, peak, quarter]


@pytest.mark.slow
def test_a_partial_merge_publishes_the_finished_studies_and_lists_the_others(
        tmp_path, monkeypatch):
    """A merge marked partial is published as soon as one of its studies has finished, its
    short answer listing the cells of the others as not finished yet; an ordinary merge waits."""
    publish = tmp_path / 'pub' / 'plateau'
    one = dict(config=VOC_CFG, variants=['ce', 'ngl'], optimizers=['adamw'], lrs=[1e-3, 1e-2],
               search_seeds=[0, 1], seeds=[0, 1, 2], iters=8, extend_edges=0,
               double_seeds=[0, 1], report_split={'ann_file': 'ImageSets/Segmentation/test.txt'})
    spec = dict(work_dir=str(tmp_path / 'work'), datasets={}, studies={
        'a': dict(one, regime='clean'), 'b': dict(one, regime='uniform-40', optimizers=['sgd'])},
        merges={'m': dict(studies=['a', 'b'], publish=str(publish), title='plateau',
                          partial=True, records=str(tmp_path / 'records')),
                'whole': dict(studies=['a', 'b'], title='waits')})
    path = tmp_path / 'spec.json'
    path.write_text(json.dumps(spec))
    monkeypatch.setattr(study, 'train_run', _SeedsSplitNGLAndTwiceTheBudgetLifts())
    study_spec.run_spec(str(path), only=['a'])
    published = json.loads((tmp_path / 'pub' / 'plateau.json').read_text())
    assert published['pending'] == [['uniform-40', 'sgd']]
    assert {r['regime'] for r in published['tuned']} == {'clean'}
    md = (tmp_path / 'pub' / 'plateau.md').read_text()
    assert '(`uniform-40`, sgd) | - | not finished yet |' in md and '(`clean`, adamw) | ' in md
    assert not (tmp_path / 'work' / 'whole').exists()
    assert sorted(p.name for p in (tmp_path / 'records').iterdir()) == ['a']
    study_spec.run_spec(str(path))  # every study: the whole merge replaces the partial one
    published = json.loads((tmp_path / 'pub' / 'plateau.json').read_text())
    assert 'pending' not in published and 'not finished yet' not in \
        (tmp_path / 'pub' / 'plateau.md').read_text()
    assert {r['regime'] for r in published['tuned']} == {'clean', 'uniform-40'}
    assert (tmp_path / 'work' / 'whole' / 'study.json').is_file()
    assert sorted(p.name for p in (tmp_path / 'records').iterdir()) == ['a', 'b']
    # a fresh machine seeded from the records: study a's runs, not its study.json; running b
    # alone would publish a's cells as not finished, so it is refused before anything is made
    (tmp_path / 'work' / 'a' / 'study.json').unlink()
    before = (tmp_path / 'pub' / 'plateau.json').read_text()
    with pytest.raises(ValueError, match=r"publishes the studies \['a'\], which have no "
                                         r"study.json"):
        study_spec.run_spec(str(path), only=['b'])
    assert (tmp_path / 'pub' / 'plateau.json').read_text() == before
    study_spec.run_spec(str(path), only=['a', 'b'])  # a trains nothing and writes it again
    assert json.loads((tmp_path / 'pub' / 'plateau.json').read_text())['tuned'] == \
        json.loads(before)['tuned']


def test_the_speedups_top1_accuracy_is_mmsegs():
    import torch
    from mmseg.models.losses.accuracy import accuracy

    from ngl_lab.study_run_speedups import top1_accuracy
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 21, 16, 16, generator=g)
    target = torch.randint(0, 21, (4, 16, 16), generator=g)
    target[:, :4] = 255
    for kwargs in (dict(ignore_index=255), dict(), dict(topk=(1, 2), ignore_index=255),
                   dict(topk=(1,), ignore_index=255)):
        ours, theirs = top1_accuracy(pred, target, **kwargs), accuracy(pred, target, **kwargs)
        for a, b in zip(*(x if isinstance(x, list) else [x] for x in (ours, theirs))):
            assert a.shape == b.shape and torch.equal(a, b), kwargs
    everything_ignored = torch.full_like(target, 255)
    assert top1_accuracy(pred, everything_ignored, ignore_index=255) == \
        accuracy(pred, everything_ignored, ignore_index=255)
    right = pred.argmax(1)  # a batch predicted right: 100, as mmseg's
    assert torch.equal(top1_accuracy(pred, right, ignore_index=255),
                       accuracy(pred, right, ignore_index=255))
    # 171 classes, labels out of range without an ignore_index (never right), a gradient
    pred = torch.randn(2, 171, 16, 16, generator=g, requires_grad=True)
    target = torch.randint(0, 171, (2, 16, 16), generator=g)
    target[0, 0], target[1, 1] = 255, -1
    for kwargs in (dict(ignore_index=255), dict()):
        assert torch.equal(top1_accuracy(pred, target, **kwargs), accuracy(pred, target, **kwargs))
    assert top1_accuracy(pred, pred.argmax(1)) == 100
    # an exact tie for the largest logit: the label is right if it is one of the tied classes
    tied = pred.detach().clone()
    tied[:, 3] = tied.amax(1)
    assert top1_accuracy(tied, torch.full_like(target, 3)) == 100
    assert top1_accuracy(tied, tied.argmax(1)) == 100
    # what it does not take goes to mmseg's function, checks included
    assert torch.equal(top1_accuracy(pred, target.int()), accuracy(pred, target.int()))
    with pytest.raises(AssertionError):
        top1_accuracy(pred, target[:1])


def _budget_model_steps_script(config, classes, batch, lr, tail, deterministic=False):
    """The script both speedup tests run in fresh processes, ``on`` or ``off`` as its first
    argument (``speedups``: the module when on, None when off): the budget model of
    ``config`` (seeded), ``batch`` random 64x64 images labelled in [0, ``classes``), AdamW
    at ``lr`` and ``step()`` (one training step, returning its loss dict), then ``tail``."""
    return (
        'import sys, torch; torch.set_num_threads(1)\n'
        'from mmengine.config import Config; from mmengine.structures import PixelData\n'
        'from mmseg.registry import MODELS; from mmseg.structures import SegDataSample\n'
        'from mmseg.utils import register_all_modules; import ngl_mmseg\n'
        'speedups = None\n'
        'if sys.argv[1] == "on": import ngl_lab.study_run_speedups as speedups\n'
        'register_all_modules()\n'
        + ('torch.use_deterministic_algorithms(True)\n' if deterministic else '')
        + f'cfg = Config.fromfile({config!r}); torch.manual_seed(0)\n'
        'model = MODELS.build(cfg.model).train(); g = torch.Generator().manual_seed(1)\n'
        f'x = torch.randn({batch}, 3, 64, 64, generator=g); samples = []\n'
        f'for _ in range({batch}):\n'
        '    s = SegDataSample(); s.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64)))\n'
        f'    labels = torch.randint(0, {classes}, (1, 64, 64), generator=g)\n'
        '    s.gt_sem_seg = PixelData(data=labels)\n'
        '    samples.append(s)\n'
        f'opt = torch.optim.AdamW(model.parameters(), lr={lr!r})\n'
        'def step():\n'
        '    opt.zero_grad(); losses = model.loss(x, samples)\n'
        '    sum(v for k, v in losses.items() if "loss" in k).backward(); opt.step()\n'
        '    return losses\n'
        + tail)


@pytest.mark.slow
def test_the_speedups_leave_every_trained_weight_as_it_was(tmp_path):
    """Three deterministic steps of the budget model (the loss dict included), in two fresh
    processes, without and with the study's speedups: the same weights, bit for bit."""
    script = _budget_model_steps_script(BUDGET_VOC, classes=21, batch=2, lr=1e-2, tail=(
        'for _ in range(3): losses = step()\n'
        'from mmseg.models.decode_heads import decode_head\n'
        'from torch.utils import deterministic as d\n'
        'print(d.fill_uninitialized_memory, float(losses["decode.acc_seg"]),\n'
        '      decode_head.accuracy.__name__)\n'
        'torch.save([p.detach() for p in model.parameters()], sys.argv[2])\n'),
        deterministic=True)
    import torch
    out = {}
    for mode in ('off', 'on'):
        path = str(tmp_path / f'{mode}.pt')
        printed = run([sys.executable, '-c', script, mode, path], cwd=tmp_path).stdout.split()
        out[mode] = printed, torch.load(path)
    # both speedups took effect
    assert out['off'][0][0::2] == ['True', 'accuracy']
    assert out['on'][0][0::2] == ['False', 'top1_accuracy']
    assert out['off'][0][1] == out['on'][0][1]  # the logged accuracy
    assert all(torch.equal(a, b) for a, b in zip(out['off'][1], out['on'][1]))


@pytest.mark.slow
def test_the_speedups_keep_freed_memory_for_the_next_step(tmp_path):
    """Budget-model steps at 171 classes free large tensors (a head's upsampled logits and
    their gradients, 22 MB each) and ask for them again the next step: without the
    speedups glibc hands them back to the kernel, which gives them again as fresh pages
    (thousands of page faults a step); with them they stay in the process."""
    budget_coco = BUDGET_VOC.replace('voc12aug', 'coco-stuff164k')
    script = _budget_model_steps_script(budget_coco, classes=171, batch=8, lr=1e-3, tail=(
        'import resource\n'
        'for _ in range(4): step()\n'
        'faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n'
        'for _ in range(6): step()\n'
        'print(speedups is not None and speedups.MALLOC_TUNED,\n'
        '      (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 6)\n'))
    out = {mode: run([sys.executable, '-c', script, mode], cwd=tmp_path).stdout.split()
           for mode in ('off', 'on')}
    import platform
    if platform.libc_ver()[0] != 'glibc':
        pytest.skip('not glibc: the allocator is left as it is')
    assert out['on'][0] == 'True', out  # glibc took both settings
    faults_off, faults_on = float(out['off'][1]), float(out['on'][1])
    # Without the speedups a step takes fresh pages: how many depends on glibc's dynamic
    # mmap threshold (one 22 MB tensor is 5400 pages; CI machines measured 1800 to 5400),
    # so the bar is 2 MB a step, enough to show the cost is there to remove.
    assert faults_off > 500, out
    assert faults_on < faults_off / 4, out


def test_every_study_run_config_imports_the_speedups(tmp_path):
    from mmengine.config import Config

    from ngl_lab.presets import parse_loss_spec
    path = study_config.write_run_config(BUDGET_VOC, parse_loss_spec('ce')[1], 'adamw', 0,
                                         str(tmp_path / 'run'))
    # not imported here: the speedups would stay applied in this test process
    imports = Config.fromfile(path, import_custom_modules=False).custom_imports['imports']
    assert 'ngl_lab.study_run_speedups' in imports


@pytest.fixture
def matmul_resize(monkeypatch):
    """``ngl_lab.study_matmul_resize``, its patch of mmseg's decode heads undone after the
    test (importing it replaces ``decode_head.resize`` for the whole process)."""
    from mmseg.models.decode_heads import decode_head
    from mmseg.models.utils import resize
    monkeypatch.setattr(decode_head, 'resize', resize)
    import ngl_lab.study_matmul_resize as module
    monkeypatch.setattr(decode_head, 'resize', module.matmul_resize)
    return module


@pytest.mark.parametrize('shape,size', [((8, 21, 8, 8), (64, 64)), ((2, 3, 5, 7), (13, 11)),
                                        ((2, 3, 16, 12), (5, 7)), ((1, 4, 6, 6), (6, 6)),
                                        ((1, 2, 1, 3), (4, 9))])
@pytest.mark.parametrize('dtype,tolerance', [('float64', 1e-12), ('float32', 1e-5)])
def test_matmul_resize_is_bilinear_interpolation(matmul_resize, shape, size, dtype, tolerance):
    """Forward and backward against F.interpolate (bilinear, align_corners=False),
    upsampling and downsampling by ratios that are not integers: the same to float
    rounding (the sums run in another order)."""
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    dtype = getattr(torch, dtype)
    x = torch.randn(shape, generator=g, dtype=dtype).requires_grad_()
    grad = torch.randn(shape[:2] + size, generator=g, dtype=dtype)
    ours = matmul_resize.matmul_resize(x, size=torch.Size(size), mode='bilinear',
                                       align_corners=False)
    (ours_grad, ) = torch.autograd.grad(ours, x, grad)
    theirs = F.interpolate(x, size, mode='bilinear', align_corners=False)
    (theirs_grad, ) = torch.autograd.grad(theirs, x, grad)
    assert ours.shape == theirs.shape and ours.dtype == dtype and ours.is_contiguous()
    torch.testing.assert_close(ours, theirs, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=tolerance, atol=tolerance)


def test_matmul_resize_leaves_everything_else_to_mmseg(matmul_resize):
    import torch
    from mmseg.models.utils import resize
    x = torch.randn(2, 3, 5, 7)
    for args in (dict(size=(9, 9), mode='nearest'),
                 dict(size=(9, 13), mode='bilinear', align_corners=True),
                 dict(scale_factor=2.0, mode='bilinear', align_corners=False)):
        assert torch.equal(matmul_resize.matmul_resize(x, **args), resize(x, **args)), args
    labels = torch.randint(0, 21, (2, 1, 5, 7)).float()
    assert torch.equal(matmul_resize.matmul_resize(labels, size=(10, 14)),
                       resize(labels, size=(10, 14)))


def test_the_budget_models_loss_and_gradients_with_matmul_resize(matmul_resize, monkeypatch):
    """The budget model's losses (both heads) and every gradient, with the heads upsampling
    by mmseg's resize and by matrix products: the same to float rounding."""
    import torch
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.models.decode_heads import decode_head
    from mmseg.models.utils import resize
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    import ngl_mmseg  # noqa: F401
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(BUDGET_VOC).model).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=g)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 21, (1, 64, 64), generator=g))
        samples.append(s)
    results = {}
    for name, fn in (('mmseg', resize), ('matmul', matmul_resize.matmul_resize)):
        monkeypatch.setattr(decode_head, 'resize', fn)
        model.zero_grad()
        torch.manual_seed(2)  # the heads' dropout: the same masks for both
        losses = {k: v for k, v in model.loss(x, samples).items() if 'loss' in k}
        sum(losses.values()).backward()
        results[name] = losses, [p.grad.clone() for p in model.parameters()]
    (theirs, theirs_grads), (ours, ours_grads) = results['mmseg'], results['matmul']
    assert sorted(ours) == sorted(theirs) == ['aux.loss_ngl', 'decode.loss_ngl']
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-6)
    for a, b in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(ours_grads, theirs_grads))  # it ran


def test_study_run_configs_import_matmul_resize_only_when_asked(tmp_path):
    from mmengine.config import Config

    from ngl_lab.presets import parse_loss_spec
    imports = {}
    for asked in (None, False, True):
        path = study_config.write_run_config(
            BUDGET_VOC, parse_loss_spec('ce')[1], 'adamw', 0, str(tmp_path / str(asked)),
            cfg_options=None if asked is None else {'study_matmul_resize': asked})
        imports[asked] = Config.fromfile(path, import_custom_modules=False).custom_imports
    assert 'ngl_lab.study_matmul_resize' in imports[True]['imports']
    assert 'ngl_lab.study_matmul_resize' not in imports[None]['imports'] + imports[False]['imports']
    with pytest.raises(ValueError, match=r"study_matmul_resize is 'yes': give true or false"):
        study_config.write_run_config(BUDGET_VOC, parse_loss_spec('ce')[1], 'adamw', 0,
                                      str(tmp_path / 'bad'),
                                      cfg_options={'study_matmul_resize': 'yes'})


@functools.cache
def _published_runs(name):
    """The runs of docs/study/<name>.json, read once (the callers only read them)."""
    with open(osp.join(REPO, 'docs', 'study', f'{name}.json')) as f:
        return tuple(json.load(f)['runs'])


def _sizing_run(name, variant, iters, lr=None, seed=0, regime=None):
    """The one run of docs/study/<name>.json with this variant and budget (and rate, seed,
    regime where given)."""
    runs = [r for r in _published_runs(name)
            if r['variant'] == variant and r['iters'] == iters and r['seed'] == seed
            and lr in (None, r['lr']) and regime in (None, r['regime'])]
    assert len(runs) == 1, (name, variant, iters, len(runs))
    return runs[0]


def test_the_sizing_figures_are_the_records():
    """docs/study-cost.md's two sizing sections (171 classes; 40% uniform noise): every figure
    in their tables, and those their text derives, from the published runs."""
    page = open(osp.join(REPO, 'docs', 'study-cost.md')).read()
    flat = ' '.join(page.split())
    variants = {'CE': 'ce', 'NGL recipe': 'ngl'}
    # 171 classes: report split at each quarter of one seed's run, by budget
    final = {}
    rows = _table_rows(page, '| run | quarter')
    for row in rows:
        cells = _table_cells(row)
        name, iters = cells[0].split(', ')
        iters = int(iters.split()[0])
        run = _sizing_run(f'coco-sizing-{iters}', variants[name], iters, lr=4e-3)
        curve = [v for _, v in run['report_curve']]
        assert len(curve) == 8 and [float(c) for c in cells[1:]] == [
            round(curve[k], 2) for k in (1, 3, 5, 7)], row
        final[name, iters] = curve[-1]
    assert len(rows) == 4
    assert f"CE by {final['CE', 8000] - final['CE', 4000]:+.2f} from 4000 to 8000 and by " \
        f"{final['CE', 16000] - final['CE', 8000]:+.2f} from 8000 to 16000" in flat

    # uniform-40: seed 0's final report split (4000 and 8000 from the plateau study's cell,
    # longer from the sizing study), and the training labels as written
    rates = {'ce': 4e-3, 'ngl': 8e-3}

    def noise_run(variant, iters):
        if iters <= 8000:
            return _sizing_run('plateau', variant, iters, lr=rates[variant], regime='uniform-40')
        return _sizing_run(f'noise-sizing-{iters}', variant, iters, lr=rates[variant])

    header = '| run | 4000 iterations'
    budgets = [4000 * 2**k for k in range(6)]
    report, checked = {}, 0
    for row in _table_rows(page, header):
        cells = _table_cells(row)
        name = cells[0].split(', ')[0]
        train_labels = cells[0].endswith('training labels')
        assert len(cells) == len(budgets) + 1, row
        for iters, cell in zip(budgets, cells[1:]):
            if cell == '-':
                continue
            run = noise_run(variants[name], iters)
            curve = run['train_curve' if train_labels else 'report_curve']
            assert float(cell) == round(curve[-1][1], 2), (row, iters)
            if not train_labels:
                report[name, iters] = curve[-1][1]
            checked += 1
    assert checked == 16
    ce = [report['CE', n] for n in budgets]
    ngl = [report['NGL recipe', n] for n in budgets[:4]]
    assert f'by {ce[4] - ce[3]:+.2f} and {ce[5] - ce[4]:+.2f})' in flat
    assert f'(CE {ce[3] - ce[0]:+.2f}, NGL {ngl[3] - ngl[0]:+.2f})' in flat
    leads = [n - c for n, c in zip(ngl, ce)]
    assert f'(by {min(leads):.1f} to {max(leads):.1f} points)' in flat
    moves = [abs(b - a) for s in (ce, ngl) for a, b in zip(s, s[1:])]
    assert f'moves a run by {min(moves):.1f} to {max(moves):.1f} points' in flat

    def slope(scores):  # least squares, per doubling
        xs = range(len(scores))
        mx, my = sum(xs) / len(scores), sum(scores) / len(scores)
        return sum((x - mx) * (y - my) for x, y in zip(xs, scores)) / sum(
            (x - mx) ** 2 for x in xs)

    assert f"CE's six budgets falls by {-slope(ce):.1f} a doubling, one through NGL's four " \
        f'by {-slope(ngl):.1f}' in flat
    # the swings: the largest between two validations of the 16000-iteration run, the
    # range along the 64000- and 128000-iteration ones
    scores = [v for _, v in noise_run('ce', 16000)['report_curve']]
    a, b = max(zip(scores, scores[1:]), key=lambda pair: abs(pair[1] - pair[0]))
    assert f"({a:.2f} to {b:.2f} between two validations of CE's 16000-iteration run)" in flat
    for iters, text in ((64000, "Along CE's 64000-iteration run the report-split score "
                                'moves between {} and {}'),
                        (128000, 'along its 128000-iteration one between {} and {}')):
        scores = [v for _, v in noise_run('ce', iters)['report_curve']]
        assert text.format(f'{min(scores):.2f}', f'{max(scores):.2f}') in flat, iters
    val = {(v, n): noise_run(v, n)['curve'][-1][1] for v in ('ce', 'ngl') for n in (16000, 32000)}
    assert f"{val['ngl', 16000]:.2f} against {val['ce', 16000]:.2f}, " \
        f"{val['ngl', 32000]:.2f} against {val['ce', 32000]:.2f}" in flat
    # what the sizing runs cost, as their records timed them
    assert f"({_sizing_run('coco-sizing-16000', 'ce', 16000)['seconds']:.0f} s for the " \
        '16000-iteration run above' in flat
    seconds = [noise_run(v, n)['seconds'] for v in ('ce', 'ngl') for n in (16000, 32000)]
    assert f'{min(seconds):.0f} to {max(seconds):.0f} s a run' in flat
    assert f"{noise_run('ce', 64000)['seconds']:.0f} and " \
        f"{noise_run('ce', 128000)['seconds']:.0f} s beside" in flat
