"""The trainability study: one config, a grid of loss variants x optimizers x
learning rates x seeds, trained in parallel and reported with paired statistics.

The engine of ``tools/study_ngl.py`` (its command line: ``study_cli``): ``study``
trains the runs of one :class:`StudySettings`. Every run trains through ngl-mmseg's
train tool (``python -m ngl_mmseg.cli.train``, under torchrun with
``gpus > 1``), exactly as a user would, with mmseg's validation every quarter
of the run; the study reads the mIoU-vs-iteration curve each run logged and
writes ``study.md`` (tables), ``study.json`` (every number and curve) and
``study.png`` (curves); ``study_report`` builds them.

Its parts, one job each: ``study_settings`` (the settings, checked),
``study_config`` (the configs the runs train), ``run_record`` (``run.json``),
``run_folders`` (naming, reusing and moving aside run folders), ``jobs`` (the
job pool), ``lr_search`` (the learning-rate rule and search); ``study_spec``
runs studies from a spec file, ``study_rebuild`` rebuilds reports without
training.

**Tuned comparisons.** With ``lrs`` (absolute learning rates, replacing the
optimizer's) and ``search_seeds``, each variant first trains at every lr with
the search seeds; its lr is the one with the best mean final mIoU on the
validation split (the *selection* split); then it trains at that lr with the
remaining ``seeds``. Every run is also scored on a *report* split
(``report_split``: fields of the validation dataset that make it another
split, e.g. the ``test.txt`` the synthetic maker writes with ``--num-test``),
and the tuned table reports that split only: nothing in it was selected on
the images that score it.

**Runs that reproduce.** Each run pins its CPU threads (``OMP_NUM_THREADS``,
recorded in its ``run.json``) and asks mmengine for deterministic algorithms
(``randomness.deterministic``): two runs of one seed give the same numbers on
one machine (tested).

**Parallel and resumable.** ``jobs`` runs train at once, each with its share
of the CPU threads (or, with ``gpus_per_run``, its own GPUs). Each run folder
holds a ``run.json`` naming what it is (variant, losses, optimizer, lr, seed,
regime, config, data root, iterations, ...). Run again, the study keeps every
finished run whose record matches, moves an unfinished one aside
(``<folder>.interrupted-N``) and trains the rest; a folder holding another
run is refused. A run's record names its data by path and by content (the
synthetic dataset's manifest: split sizes and label noise), so that data
remade at the same path is not taken for the data a run trained on.

With ``pretrain_iters``, the config is first trained with CE on other
synthetic scenes (``pretrain_data_root``) and each run starts from that
backbone with a fresh decode head. ``regime`` labels every run of a study
(say ``uniform-40``), so that merged studies give one row per regime;
``train_miou`` also scores each run on its training labels as written.
"""
import os
import os.path as osp
import threading

from .jobs import JobPool, JobsFailed, job_env
from .lr_search import search_then_finish
from .presets import check_variant_losses
from .run_folders import (
    copy_identical_run,
    existing_run,
    move_aside,
    record_dir_name,
    resume_point,
)
from .run_record import (
    DOUBLE_PHASE,
    logged_seconds,
    read_record,
    run_from_folder,
    write_record,
)
from .runs import train_run
from .study_config import load_study_config, write_pretrain_config, write_run_config
from .study_report import write_report
from .study_settings import StudySettings
from .study_tables import tuned_rows
from .synthetic import manifest_identity
from .tool_args import check_folder, printer

__all__ = ['RunsFailed', 'StudySettings', 'check_study', 'first_runs', 'pretrain_backbone',
           'study']

_print = printer('study')


def check_study(settings):
    """Everything of one study that can be checked before anything is made: its
    settings, its config file, its work dir (a folder, or none yet) and its
    variants (built on the config's heads). Returns the parsed variants and the
    config as the study trains it.

    Args:
        settings (StudySettings): the study.
    """
    parsed = settings.check()
    if not osp.isfile(settings.config):
        raise ValueError(f'config {settings.config!r} is not a file')
    check_folder(settings.work_dir, '--work-dir')
    cfg = load_study_config(settings.config, settings.cfg_options, settings.data_root,
                            settings.iters)
    check_variant_losses(cfg, parsed)
    return parsed, cfg


def first_runs(settings, parsed, cfg):
    """The trainer of a study's runs and the jobs of the runs it trains first:
    every variant, optimizer and rate with the search seeds (without a search,
    the whole grid). Their records name the data by the manifest now at its data
    root (None: no manifest there).

    Args:
        settings (StudySettings): the study.
        parsed (list): its variants, as ``check_study`` returns them.
        cfg (Config): its config, as ``check_study`` returns it.

    Returns:
        tuple: the ``_RunTrainer`` and the jobs (``record`` and ``run_dir`` each).
    """
    # recorded: the config's own iterations without --iters
    data_root = settings.data_root or cfg.get('data_root')
    trainer = _RunTrainer(settings, cfg.train_cfg.max_iters,
                          manifest_identity(data_root) if data_root else None)
    lr_axis = list(settings.lrs) if settings.lrs else [None]
    phase = 'search' if settings.search_seeds else 'grid'
    first = [trainer.plan(name, losses, optimizer, lr, seed, phase)
             for optimizer in settings.optimizers for name, losses in parsed for lr in lr_axis
             for seed in (settings.search_seeds or settings.seeds)]
    return trainer, first


def study(settings):
    """Train every (variant, optimizer, lr, seed) of ``settings``; write
    study.md/.json/.png in its work dir. Returns the report's rows.

    Every setting, variant (built on the config's heads) and run folder is
    checked before the first run (``check_study``). With ``settings.search_seeds``,
    only those seeds train at every lr; a variant whose best lr is the largest
    (smallest) tried also trains at twice (half) that, up to
    ``settings.extend_edges`` more rates; each variant then trains its seeds at
    the lr chosen on the validation split (``lr_search``). A run that fails
    ends the study with :class:`RunsFailed` once the runs in flight are done
    (the finished ones are kept: the same study run again resumes).

    Args:
        settings (StudySettings): the study.
    """
    parsed, cfg = check_study(settings)
    trainer, first = first_runs(settings, parsed, cfg)
    # Refuse foreign folders before anything trains (pretraining included).
    for job in first:
        existing_run(job['run_dir'], job['record'])
    os.makedirs(settings.work_dir, exist_ok=True)
    for folder in settings.reuse_from or ():
        if not osp.isdir(folder):
            _print(f'{folder} is not there, so none of its runs can be copied: a study not '
                   'run yet, or, on a fresh machine, one whose records were not copied in')

    def reuse(job):
        return (existing_run(job['run_dir'], job['record']) or
                copy_identical_run(job['run_dir'], job['record'], settings.reuse_from or ()))

    pool = JobPool(trainer.train, reuse=reuse,
                   on_done=trainer.announce, size=settings.jobs, threads=settings.threads,
                   gpus_per_job=settings.gpus_per_run, where=settings.work_dir)
    try:
        with pool:
            if settings.pretrain_iters:
                trainer.backbone = pretrain_backbone(settings)
            if settings.search_seeds:
                runs = search_then_finish(pool, first, parsed, settings, trainer.plan)
            else:
                runs = pool.complete(first)
            if settings.wide_seeds:
                runs += _widen(pool, runs, parsed, settings, trainer.plan)
    except JobsFailed as failed:
        raise RunsFailed([(job['run_dir'], exc) for job, exc in failed.failures]) from failed
    return write_report(settings.work_dir, settings.config, settings.title, runs, settings.spec)


def _widen(pool, runs, parsed, settings, plan):
    """More seeds where a variant's paired interval against CE is wider than
    ``settings.wide_half_width``: that variant and CE train ``settings.wide_seeds``
    at their chosen rates. Returns the runs this trained."""
    rows = tuned_rows(runs)
    chosen = {(r['optimizer'], r['variant']): r['lr'] for r in rows}
    wide = {(r['optimizer'], name) for r in rows
            if r['vs_ce'] and r['vs_ce']['high'] - r['vs_ce']['mean'] > settings.wide_half_width
            for name in (r['variant'], 'ce')}
    losses = dict(parsed)
    jobs = []
    for optimizer, name in sorted(wide):
        _print(f'{name} {optimizer}: a paired interval wider than +-'
               f'{settings.wide_half_width:g}: seeds {list(settings.wide_seeds)} too')
        jobs += [plan(name, losses[name], optimizer, chosen[(optimizer, name)], seed, 'final')
                 for seed in settings.wide_seeds]
    return pool.complete(jobs) if jobs else []


class RunsFailed(RuntimeError):
    """Runs of a study failed (the finished ones are kept); the message is one
    line naming each failed run, its log and how to resume.

    Args:
        failures (list[tuple]): each failed run's folder and its error.
    """

    def __init__(self, failures):
        self.failures = failures
        named = '; '.join(
            f'{run_dir} (log: {osp.join(run_dir, "train.log")}; {_first_line(exc)})'
            for run_dir, exc in failures)
        super().__init__(f'{len(failures)} run(s) failed: {named}. The finished runs are kept: '
                         'run the same command again to resume (the failed runs train again)')


def _first_line(exc):
    lines = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {lines[0] if lines else ""}'


class _RunTrainer:
    """What each run of one study is (its record and folder: ``plan``) and how
    it trains (``train``, a job of the pool; ``announce``, once it is done)."""

    def __init__(self, settings, iters, dataset):
        self.settings, self.iters, self.dataset = settings, iters, dataset
        self.backbone = None  # the pretrained checkpoint, once pretraining is done
        # mmengine's Config (through pkg_resources) is not thread-safe: one at a time.
        self.config_lock = threading.Lock()

    def plan(self, variant, losses, optimizer, lr, seed, phase):
        """The job of one run: its record and its folder. A run of the plateau check
        (``DOUBLE_PHASE``) trains twice the study's iterations, in a folder of its own."""
        s = self.settings
        iters = 2 * self.iters if phase == DOUBLE_PHASE else self.iters
        record = dict(regime=s.regime, variant=variant, losses=losses, optimizer=optimizer,
                      lr=lr, seed=seed, config=s.config, data_root=s.data_root,
                      dataset=self.dataset, iters=iters, pretrain=s.pretrain,
                      train_miou=s.train_miou, report_split=s.report_split,
                      cfg_options=s.cfg_options, phase=phase, threads=s.threads)
        return dict(record=record, run_dir=osp.join(s.work_dir, record_dir_name(record)))

    def train(self, job, env):
        """Train one run in ``env`` (its threads and devices); returns the run. An
        unfinished run of the same record continues from its newest resume point
        (``resume_point``; its record lists the iterations it resumed at,
        ``resumed_at``, and its seconds are its launches' logged spans, the replay of
        the data up to the point included); without one, it is moved aside. A resumed
        launch that fails marks its point (``failed_resume``): run again, the run
        does not resume from it a second time."""
        s, record, run_dir = self.settings, job['record'], job['run_dir']
        point = resume_point(run_dir, record)
        if point is None:
            move_aside(run_dir)
        else:
            resumed_at = read_record(run_dir).get('resumed_at', []) + [point[0]]
            record = dict(record, resumed_at=resumed_at)
            _print(f'{run_dir}: resuming its unfinished run from iteration {point[0]}')
        write_record(run_dir, dict(record, finished=False))
        with self.config_lock:
            path = write_run_config(s.config, record['losses'], record['optimizer'],
                                    record['seed'], run_dir, cfg_options=s.cfg_options,
                                    backbone=self.backbone, data_root=s.data_root,
                                    iters=record['iters'] if record['phase'] == DOUBLE_PHASE
                                    else s.iters, train_miou=s.train_miou, lr=record['lr'],
                                    report_split=s.report_split)
        with open(path) as f:
            own_config = f.read()
        try:
            seconds = train_run(path, run_dir, s.gpus, quiet=True, progress=False, env=env,
                                resume_from=point and point[1])
        except Exception:
            if point is not None:
                write_record(run_dir, dict(record, finished=False, failed_resume=point[0]))
            raise
        if point is not None:
            seconds = logged_seconds(run_dir)
            # mmengine dumps the config it ran over the run's, with the resume point
            # (removed by now) as load_from: the run's own config goes back.
            with open(path, 'w') as f:
                f.write(own_config)
        write_record(run_dir, dict(record, finished=True, seconds=seconds))
        return run_from_folder(run_dir)

    def announce(self, job, run, progress):
        """One line per run trained: its final scores, time and the study's eta."""
        record = job['record']
        report = (f', report split {run["report_curve"][-1][1]:.2f}'
                  if run['report_curve'] else '')
        lr = '' if record['lr'] is None else f' lr {record["lr"]:g}'
        regime = record['regime'] + ' ' if record['regime'] else ''
        _print(f'({progress.done}/{progress.total}) {regime}{record["variant"]} '
               f'{record["optimizer"]}{lr} seed {record["seed"]}: '
               f'mIoU {run["curve"][-1][1]:.2f}{report} ({run["seconds"]:.0f} s; '
               f'eta {progress.eta / 60:.0f} min)')


def pretrain_backbone(settings):
    """Train the study's config with CE for ``settings.pretrain_iters`` on
    ``settings.pretrain_data_root`` in ``<work_dir>/pretrain``; returns the
    checkpoint (a finished pretraining there is reused)."""
    work_dir = osp.join(settings.work_dir, 'pretrain')
    iters, data_root = settings.pretrain_iters, settings.pretrain_data_root
    ckpt = osp.join(work_dir, f'iter_{iters}.pth')
    if osp.isfile(ckpt) and osp.isfile(osp.join(work_dir, 'pretrain.done')):
        _print(f'reusing the pretrained backbone {ckpt}')
        return ckpt
    move_aside(work_dir)
    path = write_pretrain_config(settings.config, work_dir, iters, data_root,
                                 settings.cfg_options)
    _print(f'pretraining the backbone with CE for {iters} iterations on {data_root}')
    try:
        train_run(path, work_dir, settings.gpus, quiet=True, progress=False,
                  env=job_env(settings.threads))
    except Exception as exc:
        raise RunsFailed([(work_dir, exc)]) from exc
    if not osp.isfile(ckpt):
        raise FileNotFoundError(f'pretraining wrote no {ckpt}')
    open(osp.join(work_dir, 'pretrain.done'), 'w').close()
    return ckpt


if __name__ == '__main__':
    # The engine has no command line of its own (the CLI imports the engine, not the reverse).
    raise SystemExit('the study\'s command line is python -m ngl_lab.study_cli '
                     '(tools/study_ngl.py)')
