"""The tuned study: the learning-rate axis, selection on one split and report on
another, paired statistics, convergence, parallel and resumed runs, and runs
that reproduce."""
import concurrent.futures
import json
import math
import os.path as osp
import threading
import time

import pytest
from helpers import VOC_CFG
from study_helpers import FakeTraining

from ngl_lab import jobs, stats, study, study_config, study_tables
from ngl_lab.heldout_miou import report_dataset
from ngl_lab.runs import read_scalars
from ngl_lab.study_settings import StudySettings

TEST_SPLIT = {'ann_file': 'ImageSets/Segmentation/test.txt'}


# --- paired statistics -------------------------------------------------------------

def test_paired_interval_matches_a_hand_computed_case():
    # d = (2, 2, -1, 4, 2): mean 1.8, sd = sqrt(12.8 / 4) = 1.78885,
    # half width = 2.776 * 1.78885 / sqrt(5) = 2.2208
    other = {0: 52.0, 1: 52.0, 2: 49.0, 3: 54.0, 4: 52.0}
    ref = {0: 50.0, 1: 50.0, 2: 50.0, 3: 50.0, 4: 50.0, 9: 10.0}  # seed 9: not paired
    d = stats.paired_difference(other, ref)
    assert d['seeds'] == [0, 1, 2, 3, 4] and d['diffs'] == [2.0, 2.0, -1.0, 4.0, 2.0]
    assert d['mean'] == pytest.approx(1.8)
    assert d['low'] == pytest.approx(1.8 - 2.2208, abs=1e-4)
    assert d['high'] == pytest.approx(1.8 + 2.2208, abs=1e-4)
    assert d['ahead'] == 4 and d['n'] == 5 and d['verdict'] == 'tie'
    assert stats.format_difference(d) == '+1.80 [-0.42, +4.02], ahead 4/5, tie'
    # shift every difference up by 1: the interval clears 0, a win
    assert stats.paired_difference({k: v + 1 for k, v in other.items()}, ref)['verdict'] == 'win'
    assert stats.paired_difference(ref, {k: v + 1 for k, v in other.items()})['verdict'] == 'loss'


def test_t_quantiles_and_small_samples():
    assert stats.t975(4) == 2.776 and stats.t975(2) == 4.303
    assert stats.t975(100) == pytest.approx(1.984, abs=1e-3)
    one = stats.paired_difference({0: 3.0}, {0: 1.0})
    assert one['mean'] == 2.0 and math.isnan(one['low']) and one['verdict'] == 'tie'
    with pytest.raises(ValueError, match='NaN'):
        stats.mean_interval([1.0, float('nan')])


def test_convergence_is_the_last_quarter_gain():
    assert stats.is_converged([(25, 10.0), (50, 30.0), (75, 50.0), (100, 50.9)])
    assert not stats.is_converged([(25, 10.0), (50, 30.0), (75, 40.0), (100, 45.0)])
    assert stats.last_quarter_gain([(25, 10.0), (50, 30.0), (75, 40.0), (100, 45.0)]) == 5.0


# --- selection split and report split ----------------------------------------------

def _run(variant, lr, seed, val_final, report_final, regime='clean'):
    curve = [(25, val_final - 10), (50, val_final - 2), (75, val_final), (100, val_final)]
    report = [(s, v - val_final + report_final) for s, v in curve]
    return dict(regime=regime, variant=variant, optimizer='adamw', lr=lr, seed=seed,
                curve=curve, report_curve=report, train_curve=[], seconds=1.0,
                work_dir=f'{variant}_{lr}_{seed}')


def test_the_lr_is_chosen_on_the_selection_split_and_scored_on_the_report_split():
    runs = []
    for seed in (0, 1):
        # lr 0.01 is best on validation, lr 0.001 would be best on the report split
        runs += [_run('ce', 0.001, seed, 60.0, 70.0), _run('ce', 0.01, seed, 65.0, 62.0 + seed)]
        runs += [_run('ngl', 0.001, seed, 64.0, 60.0 + 2 * seed),
                 _run('ngl', 0.01, seed, 50.0, 80.0)]
    runs += [_run('ce', 0.01, 2, 66.0, 63.0), _run('ngl', 0.001, 2, 63.0, 61.0)]
    rows = {r['variant']: r for r in study_tables.tuned_rows(runs)}
    assert rows['ce']['lr'] == 0.01 and rows['ngl']['lr'] == 0.001
    assert rows['ce']['search_seeds'] == [0, 1]
    assert rows['ce']['report_final'] == {0: 62.0, 1: 63.0, 2: 63.0}
    assert rows['ngl']['report_final'] == {0: 60.0, 1: 62.0, 2: 61.0}
    diff = rows['ngl']['vs_ce']
    assert diff['diffs'] == [-2.0, -1.0, -2.0] and diff['ahead'] == 0
    assert rows['ngl']['edge']  # the chosen lr is the grid's smallest
    table = study_tables.format_tuned_table(list(rows.values()))
    assert '| clean | adamw | ngl | 100 | 0.001 (grid edge) |' in table  # 100: the curve's end


def test_tuned_rows_refuse_runs_without_report_scores():
    runs = [_run('ce', lr, 0, 60.0, 60.0) for lr in (0.001, 0.01)]
    for run in runs:
        run['report_curve'] = []
    with pytest.raises(ValueError, match='no report-split scores'):
        study_tables.tuned_rows(runs)


def test_report_split_must_differ_from_the_validation_split():
    val = dict(type='PascalVOCDataset', data_root='d', ann_file='ImageSets/Segmentation/val.txt',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'))
    assert report_dataset(val, TEST_SPLIT)['ann_file'].endswith('test.txt')
    assert val['ann_file'].endswith('val.txt')  # the validation config is untouched
    with pytest.raises(ValueError, match='the validation split itself'):
        report_dataset(val, {'ann_file': 'ImageSets/Segmentation/val.txt'})
    got = report_dataset(val, {'data_prefix.img_path': 'other'})
    assert got['data_prefix'] == dict(img_path='other', seg_map_path='SegmentationClass')
    with pytest.raises(ValueError, match='names no field'):
        report_dataset(val, {'nothing.here': 'x'})


def test_a_search_without_a_report_split_is_refused():
    with pytest.raises(ValueError, match='needs a --report-split'):
        StudySettings('c.py', ['ce'], ['adamw'], [0], lrs=[1e-3, 1e-2]).check()
    with pytest.raises(ValueError, match='--search-seeds needs --lrs'):
        StudySettings('c.py', ['ce'], ['adamw'], [0], search_seeds=[0]).check()
    with pytest.raises(ValueError, match='learning rate 0.001 is given more than once'):
        StudySettings('c.py', ['ce'], ['adamw'], [0], lrs=[1e-3, 1e-3],
                      report_split=TEST_SPLIT).check()
    with pytest.raises(ValueError, match='must be a positive number'):
        StudySettings('c.py', ['ce'], ['adamw'], [0], lrs=[-1.0]).check()


def test_run_config_sets_the_lr_the_report_hook_and_determinism(tmp_path):
    from ngl_lab.presets import LOSS_PRESETS
    path = study_config.write_run_config(VOC_CFG, LOSS_PRESETS['ce'], 'adamw', 3,
                                         str(tmp_path / 'r'), lr=0.0123,
                                         report_split=TEST_SPLIT)
    text = open(path).read()
    assert "lr=0.0123" in text
    assert "type='HeldOutMIoUHook'" in text and 'test.txt' in text
    assert 'deterministic=True' in text and 'seed=3' in text


# --- the study end to end, with training stood in for --------------------------------

def _tuned_study(tmp_path, fake, monkeypatch, **kwargs):
    monkeypatch.setattr(study, 'train_run', fake)
    args = dict(optimizers=['adamw'], seeds=[0, 1, 2], lrs=[1e-3, 1e-2], search_seeds=[0, 1],
                work_dir=str(tmp_path / 'study'), iters=8, regime='clean',
                report_split=TEST_SPLIT, jobs=2, threads_per_run=1)
    args.update(kwargs)
    return study.study(StudySettings(VOC_CFG, ['ce', 'ngl'], **args))


@pytest.mark.slow
def test_study_searches_then_trains_the_chosen_lr_in_parallel(tmp_path, monkeypatch):
    fake = FakeTraining(rendezvous=2)
    _tuned_study(tmp_path, fake, monkeypatch)
    names = sorted(name for name, _ in fake.calls)
    # 2 variants x 2 lrs x 2 search seeds; both best at an edge of the grid, so one more
    # rate past it each (CE 0.02, NGL 0.0005; both worse); then seed 2 at each chosen lr
    assert len(names) == 14
    assert {'ce_adamw_lr0.02_seed0', 'ngl_adamw_lr0.0005_seed1'} <= set(names)
    assert 'ce_adamw_lr0.01_seed2' in names and 'ngl_adamw_lr0.001_seed2' in names
    assert 'ce_adamw_lr0.001_seed2' not in names and 'ce_adamw_lr0.02_seed2' not in names
    assert fake.most_in_flight == 2  # --jobs 2: two runs at once
    assert all(env['OMP_NUM_THREADS'] == '1' for _, env in fake.calls)
    # launch folders are named by the local time; every machine's runs in UTC
    assert all(env['TZ'] == 'UTC' for _, env in fake.calls)
    with open(tmp_path / 'study' / 'study.json') as f:
        data = json.load(f)
    tuned = {r['variant']: r for r in data['tuned']}
    assert tuned['ce']['lr'] == 0.01 and tuned['ngl']['lr'] == 0.001
    assert tuned['ce']['report_final'] == {'0': 61.0, '1': 62.0, '2': 63.0}
    assert tuned['ngl']['vs_ce']['diffs'] == [-3.0, -3.0, -3.0]
    assert all(run['threads'] == 1 for run in data['runs'])
    assert tuned['ngl']['lrs'] == [5e-4, 1e-3, 1e-2] and not tuned['ngl']['edge']
    md = (tmp_path / 'study' / 'study.md').read_text()
    assert 'Tuned' in md and '| clean | adamw | ngl | 8 | 0.001 |' in md  # iters=8


@pytest.mark.slow
def test_the_search_stops_extending_after_extend_edges_rates(tmp_path, monkeypatch):
    fake = FakeTraining()
    _tuned_study(tmp_path, fake, monkeypatch, extend_edges=0, seeds=[0, 1])
    assert len(fake.calls) == 8  # the grid only


class _NGLPrefersSmallerRates(FakeTraining):
    """CE is best at 1e-2 (inside a 1e-3..2e-2 grid); NGL the better the smaller the rate,
    so its search goes past the grid's lower edge twice (5e-4, then 2.5e-4)."""

    def score(self, record, split):
        if record['variant'] == 'ngl':
            return 60.0 - 1000 * record['lr'] + record['seed'] + (3 if split == 'report' else 0)
        return super().score(record, split)


@pytest.mark.slow
def test_a_settled_variants_seeds_fill_the_slots_the_search_leaves_free(tmp_path, monkeypatch):
    fake = _NGLPrefersSmallerRates(seconds=0.2)
    _tuned_study(tmp_path, fake, monkeypatch, lrs=[1e-3, 1e-2, 2e-2], search_seeds=[0],
                 seeds=list(range(9)), extend_edges=2)
    order = [name for name, _ in fake.calls]
    assert len(order) == 6 + 2 + 16  # the grid, NGL's two extra rates, 8 seeds of each
    ce_seeds = [k for k, name in enumerate(order) if name.startswith('ce_adamw_lr0.01_seed')
                and not name.endswith('seed0')]
    first_extra, second_extra = (order.index('ngl_adamw_lr0.0005_seed0'),
                                 order.index('ngl_adamw_lr0.00025_seed0'))
    # CE's seeds start while NGL's search is still going (not after it) ...
    assert min(ce_seeds) < second_extra
    # ... and NGL's next rate does not wait for all of CE's seeds (queued ahead of them)
    assert second_extra < max(ce_seeds)
    assert first_extra < second_extra
    with open(tmp_path / 'study' / 'study.json') as f:
        tuned = {r['variant']: r for r in json.load(f)['tuned']}
    assert tuned['ngl']['lr'] == 0.00025 and tuned['ce']['lr'] == 0.01
    assert len(tuned['ce']['report_final']) == len(tuned['ngl']['report_final']) == 9


class _CEGridRunWaitsForNGLsSeeds(FakeTraining):
    """CE's grid run at 1e-2 trains until NGL's last seed at its chosen rate has started
    (or 30 s have passed): only a study that decides NGL while CE's grid still trains
    gets there without the wait."""

    def __init__(self):
        super().__init__()
        self.ngl_seeds_started = threading.Event()

    def __call__(self, config_path, work_dir, *args, **kwargs):
        name = osp.basename(work_dir)
        if name == 'ngl_adamw_lr0.001_seed2':
            self.ngl_seeds_started.set()
        if name == 'ce_adamw_lr0.01_seed0':
            self.waited_out = not self.ngl_seeds_started.wait(timeout=30)
        return super().__call__(config_path, work_dir, *args, **kwargs)


@pytest.mark.slow
def test_a_variant_is_decided_as_soon_as_its_own_runs_have_finished(tmp_path, monkeypatch):
    """NGL's grid ends while one of CE's grid runs still trains: its search past the
    edge (5e-4) and its seeds at the chosen rate use the free slot at once, instead
    of waiting for every variant's grid; the report is the same."""
    fake = _CEGridRunWaitsForNGLsSeeds()
    waits = []
    wait = concurrent.futures.wait
    monkeypatch.setattr(concurrent.futures, 'wait',
                        lambda *a, **k: waits.append(1) or wait(*a, **k))
    _tuned_study(tmp_path, fake, monkeypatch, search_seeds=[0], seeds=[0, 1, 2],
                 extend_edges=1)
    order = [name for name, _ in fake.calls]
    assert not fake.waited_out, order
    assert len(waits) <= len(order) + 1  # a wait for each run that ends, not a busy loop
    assert order.index('ngl_adamw_lr0.0005_seed0') < order.index('ngl_adamw_lr0.001_seed1')
    with open(tmp_path / 'study' / 'study.json') as f:
        data = json.load(f)
    tuned = {r['variant']: r for r in data['tuned']}
    assert (tuned['ce']['lr'], tuned['ngl']['lr']) == (0.01, 0.001)
    assert len(tuned['ce']['report_final']) == len(tuned['ngl']['report_final']) == 3
    # the runs in the order the grid-wide rounds gave them: the grid, the extra rates by
    # round, then the seeds by the round that settled them (a report rewritten is the same)
    names = [osp.basename(run['work_dir']) for run in data['runs']]
    assert names[:4] == ['ce_adamw_lr0.001_seed0', 'ce_adamw_lr0.01_seed0',
                         'ngl_adamw_lr0.001_seed0', 'ngl_adamw_lr0.01_seed0']
    assert names[4:6] == ['ce_adamw_lr0.02_seed0', 'ngl_adamw_lr0.0005_seed0']
    assert names[6:] == ['ce_adamw_lr0.01_seed1', 'ce_adamw_lr0.01_seed2',
                         'ngl_adamw_lr0.001_seed1', 'ngl_adamw_lr0.001_seed2']


@pytest.mark.slow
def test_the_runs_keep_the_order_of_the_rounds_that_planned_them(tmp_path, monkeypatch):
    """NGL settles in the grid's round (1e-3, inside it), CE a round later (1e-2 at the
    grid's top, then 2e-2, worse): the runs list NGL's seeds before CE's, as the rounds
    planned them, whichever variant's runs ended first."""
    _tuned_study(tmp_path, FakeTraining(), monkeypatch, lrs=[5e-4, 1e-3, 1e-2],
                 search_seeds=[0], seeds=[0, 1], extend_edges=1)
    with open(tmp_path / 'study' / 'study.json') as f:
        names = [osp.basename(run['work_dir']) for run in json.load(f)['runs']]
    assert names[6:] == ['ce_adamw_lr0.02_seed0', 'ngl_adamw_lr0.001_seed1',
                         'ce_adamw_lr0.01_seed1']


def _a_free_worker_takes_each_job_as_it_is_queued(monkeypatch):
    submit = jobs.JobPool.submit

    def submit_then_let_a_free_worker_take_it(pool, queued, later=False):
        futures = submit(pool, queued, later)
        time.sleep(0.5)  # a worker waiting for a job takes it now, as one does in a study
        return futures

    monkeypatch.setattr(jobs.JobPool, 'submit', submit_then_let_a_free_worker_take_it)


@pytest.mark.slow
def test_a_resumed_grid_queues_the_search_past_its_edge_before_the_settled_seeds(
        tmp_path, monkeypatch):
    """A study resumed with its grid finished decides every variant at once: CE (1e-2,
    inside the grid) settles, NGL (1e-3, at its bottom) tries 5e-4. With one slot the
    first run trained is NGL's search run, not one of CE's seeds that were decided first."""
    lrs = [1e-3, 1e-2, 2e-2]
    _tuned_study(tmp_path, FakeTraining(), monkeypatch, lrs=lrs, search_seeds=[0], seeds=[0],
                 extend_edges=0)
    _a_free_worker_takes_each_job_as_it_is_queued(monkeypatch)
    resumed = FakeTraining()
    _tuned_study(tmp_path, resumed, monkeypatch, lrs=lrs, search_seeds=[0], seeds=[0, 1],
                 extend_edges=1, jobs=1)
    order = [name for name, _ in resumed.calls]
    assert order[0] == 'ngl_adamw_lr0.0005_seed0', order
    assert sorted(order[1:]) == ['ce_adamw_lr0.01_seed1', 'ngl_adamw_lr0.001_seed1']


class _NGLBetterAtEveryLowerRate(FakeTraining):
    def score(self, record, split):
        if record['variant'] == 'ngl':
            return 60.0 - 10 * math.log10(record['lr']) + record['seed']
        return super().score(record, split)


@pytest.mark.slow
def test_seeds_wait_for_every_extra_rate_that_is_already_finished(tmp_path, monkeypatch):
    """Resumed with NGL's first extra rate (5e-4) finished too: NGL is decided twice
    without waiting (5e-4, then 2.5e-4), and CE's seeds, settled in the first pass,
    are queued only after 2.5e-4, so they do not take its slot."""
    lrs = [1e-3, 1e-2, 2e-2]
    _tuned_study(tmp_path, _NGLBetterAtEveryLowerRate(), monkeypatch, lrs=lrs,
                 search_seeds=[0], seeds=[0], extend_edges=1)
    _a_free_worker_takes_each_job_as_it_is_queued(monkeypatch)
    resumed = _NGLBetterAtEveryLowerRate()
    _tuned_study(tmp_path, resumed, monkeypatch, lrs=lrs, search_seeds=[0], seeds=[0, 1],
                 extend_edges=2, jobs=1)
    order = [name for name, _ in resumed.calls]
    assert order == ['ngl_adamw_lr0.00025_seed0', 'ce_adamw_lr0.01_seed1',
                     'ngl_adamw_lr0.00025_seed1'], order


class _NGLFailsFirst(FakeTraining):
    """The grid's four runs start together; NGL's 1e-3 fails at once, CE's two runs
    end a second later, NGL's 1e-2 two seconds later."""
    seconds_of = {'ce_adamw_lr0.001_seed0': 1.0, 'ce_adamw_lr0.01_seed0': 1.0,
                  'ngl_adamw_lr0.01_seed0': 2.0}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.start_together = threading.Barrier(4)

    def __call__(self, config_path, work_dir, *args, **kwargs):
        self.start_together.wait(timeout=60)
        time.sleep(self.seconds_of.get(osp.basename(work_dir), 0.0))
        return super().__call__(config_path, work_dir, *args, **kwargs)


@pytest.mark.slow
def test_a_failed_search_run_stops_every_decision(tmp_path, monkeypatch, capsys):
    """NGL's grid run fails while CE's grid runs and NGL's other one train: the study
    fails naming it, the runs in flight finish, and no variant is decided after the
    failure (CE's grid, finished after it, would have tried 2e-2), nothing else trains."""
    fake = _NGLFailsFirst(fail={'ngl_adamw_lr0.001_seed0'})
    with pytest.raises(RuntimeError, match='training failed'):
        _tuned_study(tmp_path, fake, monkeypatch, search_seeds=[0], seeds=[0, 1], jobs=4)
    assert sorted(name for name, _ in fake.calls) == [
        'ce_adamw_lr0.001_seed0', 'ce_adamw_lr0.01_seed0', 'ngl_adamw_lr0.001_seed0',
        'ngl_adamw_lr0.01_seed0']
    out = capsys.readouterr().out
    assert 'trying' not in out and 'chosen' not in out, out


@pytest.mark.slow
def test_an_interrupted_study_resumes_from_its_finished_runs(tmp_path, monkeypatch):
    first = FakeTraining(fail={'ngl_adamw_lr0.01_seed1'})
    with pytest.raises(RuntimeError, match='training failed'):
        _tuned_study(tmp_path, first, monkeypatch, jobs=1)
    trained_first = {name for name, _ in first.calls}
    second = FakeTraining()
    _tuned_study(tmp_path, second, monkeypatch, jobs=1)
    again = {name for name, _ in second.calls}
    assert 'ngl_adamw_lr0.01_seed1' in again  # the failed run trains again ...
    assert not (again & (trained_first - {'ngl_adamw_lr0.01_seed1'}))  # ... finished ones don't
    assert (tmp_path / 'study' / 'ngl_adamw_lr0.01_seed1.interrupted-1').is_dir()  # kept
    third = FakeTraining()
    _tuned_study(tmp_path, third, monkeypatch, jobs=1)
    assert third.calls == []  # everything finished: nothing retrains


@pytest.mark.slow
def test_a_folder_of_another_study_is_refused_before_anything_trains(tmp_path, monkeypatch):
    _tuned_study(tmp_path, FakeTraining(), monkeypatch)
    fake = FakeTraining()
    with pytest.raises(FileExistsError, match=r'already holds a run of another study \(its '
                                              r'regime differ'):
        _tuned_study(tmp_path, fake, monkeypatch, regime='noisy')
    assert fake.calls == []


# --- runs that reproduce -------------------------------------------------------------

@pytest.mark.slow
def test_two_runs_with_one_seed_give_the_same_numbers(tmp_path):
    """The real train tool, twice, same seed, threads pinned: every logged
    number (losses at every iteration, mIoU) is identical."""
    from ngl_lab.synthetic import make_voc
    root = make_voc(str(tmp_path / 'voc'), num_train=8, num_val=4, num_test=4)
    rows = []
    for k in range(2):
        work = str(tmp_path / f'study{k}')
        study.study(StudySettings(VOC_CFG, ['ngl'], optimizers=['adamw'], seeds=[5],
                                  work_dir=work, data_root=root, iters=8,
                                  report_split=TEST_SPLIT, threads_per_run=1,
                                  cfg_options={'default_hooks.logger.interval': 1}))
        run_dir = osp.join(work, 'ngl_adamw_seed5')
        train, val = read_scalars(run_dir)
        rows.append(([(r['step'], r.get('loss')) for r in train if 'loss' in r],
                     [(r['step'], r['mIoU'], r['aAcc']) for r in val],
                     [(r['step'], r['report_mIoU']) for r in train if 'report_mIoU' in r]))
        with open(osp.join(run_dir, 'run.json')) as f:
            assert json.load(f)['threads'] == 1
    assert len(rows[0][0]) >= 8 and len(rows[0][1]) == 4 and len(rows[0][2]) == 4
    assert rows[0] == rows[1]
