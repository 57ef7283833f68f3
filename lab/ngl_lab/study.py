"""The trainability study: one config, a grid of loss variants x optimizers x
learning rates x seeds, trained in parallel and reported with paired statistics.

The engine of ``tools/study_ngl.py``. Every run trains through ngl-mmseg's
train tool (``python -m ngl_mmseg.cli.train``, under torchrun with
``gpus > 1``), exactly as a user would, with mmseg's validation every quarter
of the run; the study reads the mIoU-vs-iteration curve each run logged and
writes ``study.md`` (tables), ``study.json`` (every number and curve) and
``study.png`` (curves); ``study_report.py`` builds them.

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
run is refused.

With ``pretrain_iters``, the config is first trained with CE on other
synthetic scenes (``pretrain_data_root``) and each run starts from that
backbone with a fresh decode head. ``regime`` labels every run of a study
(say ``uniform-40``), so that merged studies give one row per regime;
``train_miou`` also scores each run on its training labels as written.
"""
import argparse
import concurrent.futures
import copy
import itertools
import json
import math
import os
import os.path as osp
import queue
import re
import threading
import time
import warnings

from .compare import check_count
from .presets import LOSS_PRESETS, apply_loss_preset, parse_loss_spec, parse_loss_specs
from .runs import check_fresh_run_dir, train_run
from .study_report import (
    IDENTITY,
    RUN_RECORD,
    collect,
    lr_search,
    merge,
    read_run_record,
    replot,
    run_from_folder,
    write_report,
)

# Optimizers the study can put under any config. 'config' keeps the config's own.
OPTIMIZERS = {
    # mmseg's schedule for its VOC / COCO-Stuff CNN configs.
    'sgd': dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005),
    # What the quickstarts use; the authors trained with Adam.
    'adamw': dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4),
}
# Printable labels: one line of a Markdown table, one folder name part.
REGIME = re.compile(r'[A-Za-z0-9_.+-]{0,64}')


def _print(msg):
    print(f'[study] {msg}', flush=True)


def _replace_values(node, old, new):
    """Every string equal to ``old`` in a nested config becomes ``new``."""
    if isinstance(node, (dict, list)):
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if value == old:
                node[key] = new
            else:
                _replace_values(value, old, new)


def _scale_schedule(cfg, iters):
    """``iters`` iterations: validation every quarter; every scheduler's
    ``begin`` and ``end`` scaled by ``iters / max_iters`` (a warm-up stays the
    same share of the run and a PolyLR after it still begins where it ends)."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = max(1, iters // 4)
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if sched.get('by_epoch', False):
            raise ValueError(f'{sched.get("type")} is scheduled by epoch: --iters rescales '
                             'iteration-based schedules only')
        begin = min(sched.get('begin', 0), old)
        end = min(sched.get('end', old), old)
        sched['begin'] = int(round(begin * iters / old))
        sched['end'] = max(sched['begin'] + 1, int(round(end * iters / old)))


def load_config(config, cfg_options=None, data_root=None, iters=None):
    """The config with ``cfg_options``, its ``data_root`` replaced in every
    dataloader, and ``iters`` iterations (``_scale_schedule``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        old_root = cfg.get('data_root')
        if not old_root:
            raise ValueError(f'{config} has no top-level data_root to replace')
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            _replace_values(cfg[key], old_root, data_root)
        cfg.data_root = data_root
    if iters is not None:
        _scale_schedule(cfg, iters)
    return cfg


def _add_hook(cfg, module, hook):
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    if module not in imports:
        cfg.custom_imports = dict(imports=imports + [module], allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [hook]


def run_config(config, losses, optimizer, seed, work_dir, cfg_options=None, backbone=None,
               data_root=None, iters=None, train_miou=False, lr=None, report_split=None):
    """Write the config of one run (``losses``: its loss dicts); returns its path."""
    cfg = load_config(config, cfg_options, data_root, iters)
    apply_loss_preset(cfg, losses)
    if train_miou:
        _add_hook(cfg, 'ngl_lab.train_miou', dict(type='TrainSetMIoUHook'))
    if report_split:
        _add_hook(cfg, 'ngl_lab.heldout_miou',
                  dict(type='HeldOutMIoUHook', overrides=dict(report_split)))
    if optimizer != 'config':
        cfg.optim_wrapper.optimizer = copy.deepcopy(OPTIMIZERS[optimizer])
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    # Same seed, same numbers: mmengine's deterministic algorithms (threads are
    # pinned by the study through the environment).
    cfg.randomness = dict(seed=seed, deterministic=True)
    if backbone:
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=backbone,
                                           prefix='backbone.')
    return _dump_run(cfg, work_dir)


def _dump_run(cfg, work_dir):
    """Write ``work_dir/config.py`` for a run that keeps only its last
    checkpoint (the study needs the curve, and pretraining the end)."""
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=cfg.train_cfg.max_iters, max_keep_ckpts=1)
    cfg.work_dir = work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'config.py')
    cfg.dump(path)
    return path


def pretrain_backbone(config, work_dir, iters, data_root, cfg_options=None, gpus=1, env=None):
    """Train ``config`` with CE for ``iters`` on ``data_root``; returns the checkpoint
    (a finished pretraining in ``work_dir`` is reused)."""
    ckpt = osp.join(work_dir, f'iter_{iters}.pth')
    if osp.isfile(ckpt) and osp.isfile(osp.join(work_dir, 'pretrain.done')):
        _print(f'reusing the pretrained backbone {ckpt}')
        return ckpt
    _move_aside(work_dir)
    cfg = load_config(config, cfg_options, data_root, iters)
    apply_loss_preset(cfg, parse_loss_spec('ce')[1])
    cfg.train_cfg.val_interval = iters
    cfg.randomness = dict(seed=0, deterministic=True)
    path = _dump_run(cfg, work_dir)
    _print(f'pretraining the backbone with CE for {iters} iterations on {data_root}')
    train_run(path, work_dir, gpus, quiet=True, progress=False, env=env)
    if not osp.isfile(ckpt):
        raise FileNotFoundError(f'pretraining wrote no {ckpt}')
    open(osp.join(work_dir, 'pretrain.done'), 'w').close()
    return ckpt


def _move_aside(run_dir):
    """An interrupted run's folder goes to ``<folder>.interrupted-N`` (kept, not deleted)."""
    if not osp.exists(run_dir) or not os.listdir(run_dir):
        return
    k = 1
    while osp.exists(f'{run_dir}.interrupted-{k}'):
        k += 1
    os.rename(run_dir, f'{run_dir}.interrupted-{k}')
    _print(f'{run_dir} held an unfinished run: moved to {run_dir}.interrupted-{k}')


def run_dir_name(variant, optimizer, seed, lr=None):
    lr_part = '' if lr is None else f'_lr{lr:g}'
    return f'{variant}_{optimizer}{lr_part}_seed{seed}'


def _check_lrs(lrs):
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
                or lr <= 0:
            raise ValueError(f'learning rate {lr!r} must be a positive number')
    repeated = sorted({lr for lr in lrs if list(lrs).count(lr) > 1})
    if repeated:
        raise ValueError(f'learning rate {repeated[0]!r} is given more than once')


def check_study_args(variants, optimizers, seeds, gpus=1, iters=None, pretrain_iters=0,
                     lrs=None, search_seeds=None, jobs=1, regime='', report_split=None,
                     pretrain_data_root=None, gpus_per_run=0, threads_per_run=None):
    """Every argument checked before the first run; returns the parsed variants."""
    for optimizer in optimizers:
        if optimizer != 'config' and optimizer not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {optimizer!r}: use config or one of '
                             f'{sorted(OPTIMIZERS)}')
    for name, values in (('optimizer', optimizers), ('seed', seeds),
                         ('search seed', search_seeds or ())):
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        if repeated:
            raise ValueError(f'{name} {repeated[0]!r} is given more than once: each run '
                             'must be one row of the results')
    for seed in list(seeds) + list(search_seeds or ()):
        check_count('seed', seed, 0)
    check_count('gpus', gpus, 1)
    check_count('jobs', jobs, 1)
    check_count('gpus_per_run', gpus_per_run, 0)
    if threads_per_run is not None:
        check_count('threads_per_run', threads_per_run, 1)
    if iters is not None:
        check_count('iters', iters, 1)
    check_count('pretrain_iters', pretrain_iters, 0)
    if pretrain_data_root and not pretrain_iters:
        raise ValueError('--pretrain-data-root is given without --pretrain-iters: say how long '
                         'to pretrain (or drop --pretrain-data-root)')
    if pretrain_iters and not pretrain_data_root:
        raise ValueError('pretrain_iters needs pretrain_data_root (other scenes)')
    if not isinstance(regime, str) or not REGIME.fullmatch(regime):
        raise ValueError(f'regime {regime!r} is not allowed: up to 64 letters, digits and '
                         '_ . + - (it labels table rows and run records)')
    if lrs is not None:
        _check_lrs(lrs)
        if len(lrs) > 1 and not report_split:
            raise ValueError('a learning-rate search (--lrs with more than one rate) needs a '
                             '--report-split: the rate is chosen on the validation split, and '
                             'the tuned table must not report the split it selected on')
    if search_seeds and (lrs is None or len(lrs) < 2):
        raise ValueError('--search-seeds needs --lrs with at least two learning rates')
    if report_split is not None and (not isinstance(report_split, dict) or not report_split):
        raise ValueError('--report-split takes KEY=VALUE fields of the validation dataset, '
                         'e.g. ann_file=ImageSets/Segmentation/test.txt')
    return parse_loss_specs(variants)


def _identity(record):
    return json.dumps({k: record.get(k) for k in IDENTITY}, sort_keys=True, default=str)


def _existing_run(run_dir, record):
    """A finished run in ``run_dir`` with the same identity (reused), or None
    (nothing there, or an unfinished run of this study, moved aside); a folder
    holding another run is refused."""
    if osp.isfile(osp.join(run_dir, RUN_RECORD)):
        held = read_run_record(run_dir)
        if _identity(held) != _identity(record):
            differs = [k for k in IDENTITY if json.dumps(held.get(k), default=str)
                       != json.dumps(record.get(k), default=str)]
            raise FileExistsError(f'{run_dir} already holds a run of another study (its '
                                  f'{", ".join(differs)} differ): use a new --work-dir, or '
                                  'remove that folder')
        if held.get('finished'):
            return run_from_folder(run_dir, held)
        if osp.isfile(osp.join(run_dir, f"iter_{record['iters']}.pth")):
            # Trained to the end, but the study stopped before it wrote so: a run
            # whose log reaches the last validation and whose last checkpoint is
            # there is finished.
            try:
                run = run_from_folder(run_dir, held)
            except ValueError:
                return None
            _write_record(run_dir, dict(held, finished=True, seconds=run['seconds']))
            return run
        return None
    check_fresh_run_dir(run_dir)
    return None


def _write_record(run_dir, record):
    os.makedirs(run_dir, exist_ok=True)
    tmp = osp.join(run_dir, RUN_RECORD + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, osp.join(run_dir, RUN_RECORD))


class _Runner:
    """Trains a list of runs, ``jobs`` at a time, each with pinned threads (and
    its own GPUs with ``gpus_per_run``); reuses finished runs."""

    def __init__(self, config, work_dir, jobs=1, gpus=1, gpus_per_run=0, threads_per_run=None,
                 cfg_options=None, data_root=None, iters=None, train_miou=False,
                 report_split=None, backbone=None):
        self.config, self.work_dir, self.jobs, self.gpus = config, work_dir, jobs, gpus
        self.threads = threads_per_run or max(1, (os.cpu_count() or 1) // jobs)
        self.devices = queue.Queue()
        for k in range(jobs):
            self.devices.put(','.join(str(k * gpus_per_run + g) for g in range(gpus_per_run))
                             if gpus_per_run else None)
        self.common = dict(cfg_options=cfg_options, data_root=data_root, iters=iters,
                           train_miou=train_miou, report_split=report_split)
        self.backbone = backbone
        self.lock = threading.Lock()
        self.queue = None  # the workers and their queue live inside `with runner:`

    def env(self, devices):
        env = {'OMP_NUM_THREADS': str(self.threads), 'MKL_NUM_THREADS': str(self.threads),
               'CUBLAS_WORKSPACE_CONFIG': ':4096:8'}
        if devices is not None:
            env['CUDA_VISIBLE_DEVICES'] = devices
        return env

    def _train(self, task):
        record, run_dir = task['record'], task['run_dir']
        devices = self.devices.get()
        try:
            _move_aside(run_dir)
            _write_record(run_dir, dict(record, finished=False))
            # mmengine's Config (through pkg_resources) is not thread-safe: one at a time.
            with self.lock:
                path = run_config(self.config, record['losses'], record['optimizer'],
                                  record['seed'], run_dir, backbone=self.backbone,
                                  lr=record['lr'], **self.common)
            seconds = train_run(path, run_dir, self.gpus, quiet=True, progress=False,
                                env=self.env(devices))
        finally:
            self.devices.put(devices)
        _write_record(run_dir, dict(record, finished=True, seconds=seconds))
        run = run_from_folder(run_dir)
        with self.lock:
            self.done += 1
            elapsed = time.time() - self.started
            eta = elapsed / self.done * (self.total - self.done)
            report = (f', report split {run["report_curve"][-1][1]:.2f}'
                      if run['report_curve'] else '')
            lr = '' if record['lr'] is None else f' lr {record["lr"]:g}'
            regime = record['regime'] + ' ' if record['regime'] else ''
            _print(f'({self.done}/{self.total}) {regime}{record["variant"]} '
                   f'{record["optimizer"]}{lr} seed {record["seed"]}: '
                   f'mIoU {run["curve"][-1][1]:.2f}{report} ({seconds:.0f} s; '
                   f'eta {eta / 60:.0f} min)')
        return run

    # Scheduling: `jobs` worker threads take tasks from one priority queue. `run` queues
    # tasks the study waits on (the search) ahead of `run_later`'s (seeds at a settled lr),
    # so a slot never idles while the search needs one run more and never waits on seeds
    # the search does not need; those fill the slots the search leaves free.
    _NOW, _LATER = 0, 1

    def __enter__(self):
        self.queue = queue.PriorityQueue()
        self.order = itertools.count()
        self.later = []
        self.total, self.done, self.started = 0, 0, time.time()
        self.workers = [threading.Thread(target=self._work, daemon=True)
                        for _ in range(self.jobs)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # a run failed (or ^C): queued runs never start
            self._cancel_queued()
        for _ in self.workers:
            self.queue.put((self._LATER + 1, next(self.order), None, None))
        for worker in self.workers:
            worker.join()
        self.queue = None
        return False

    def _work(self):
        while True:
            _, _, task, future = self.queue.get()
            if task is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._train(task))
            except BaseException as e:  # noqa: B036 - handed to the thread waiting on it
                future.set_exception(e)

    def _cancel_queued(self):
        for future in self.later:
            future.cancel()
        with self.queue.mutex:
            for _, _, _, future in self.queue.queue:
                if future is not None:
                    future.cancel()

    def _submit(self, tasks, priority):
        if self.queue is None:
            raise RuntimeError('_Runner trains only inside `with runner:` (which starts its '
                               'workers)')
        futures = []
        for task in tasks:
            future = concurrent.futures.Future()
            run = _existing_run(task['run_dir'], task['record'])
            if run is not None:
                future.set_result(run)
            else:
                with self.lock:
                    self.total += 1
                self.queue.put((priority, next(self.order), task, future))
            futures.append(future)
        reused = sum(f.done() for f in futures)
        if reused:
            _print(f'{reused} of {len(tasks)} runs already finished in {self.work_dir}: reused')
        if reused < len(tasks):
            _print(f'training {len(tasks) - reused} runs, {self.jobs} at a time, '
                   f'{self.threads} CPU thread(s) each')
        return futures

    def run(self, tasks):
        """Every task's run (reused or trained), in the order of ``tasks``, trained
        ahead of any ``run_later`` task still queued; a failed run cancels every
        queued one and raises."""
        futures = self._submit(tasks, self._NOW)
        try:
            return [future.result() for future in futures]
        except BaseException:
            self._cancel_queued()
            raise

    def run_later(self, tasks):
        """Queue tasks behind every ``run`` task; ``collect`` returns their runs."""
        self.later += self._submit(tasks, self._LATER)

    def collect(self):
        """The runs of every ``run_later`` task, in the order queued."""
        try:
            return [future.result() for future in self.later]
        except BaseException:
            self._cancel_queued()
            raise


def study(config, variants=('ce', 'ngl-plain', 'ngl'), *, optimizers=('sgd', ), seeds=(0, ),
          work_dir='work_dirs/study', gpus=1, cfg_options=None, pretrain_iters=0,
          pretrain_data_root=None, title='', data_root=None, iters=None, regime='',
          train_miou=False, lrs=None, search_seeds=None, jobs=1, gpus_per_run=0,
          threads_per_run=None, report_split=None, spec=None, extend_edges=2):
    """Train every (variant, optimizer, lr, seed); write study.md/.json/.png.
    Returns the rows.

    ``lrs``: absolute learning rates (None: the optimizer's own). With
    ``search_seeds``, only those seeds train at every lr; a variant whose best
    lr is the largest (smallest) tried also trains at twice (half) that, up to
    ``extend_edges`` more rates; each variant then trains ``seeds`` at its lr
    chosen on the validation split.
    """
    parsed = check_study_args(variants, optimizers, seeds, gpus, iters, pretrain_iters, lrs,
                              search_seeds, jobs, regime, report_split, pretrain_data_root,
                              gpus_per_run, threads_per_run)
    check_count('extend_edges', extend_edges, 0)
    if not osp.isfile(config):
        raise ValueError(f'config {config!r} is not a file')
    if osp.isfile(work_dir):
        raise ValueError(f'--work-dir {work_dir!r} is a file: the study needs a folder')
    cfg = load_config(config, cfg_options, data_root, iters)
    _check_variants(cfg, parsed)
    run_iters = cfg.train_cfg.max_iters  # recorded: the config's own without --iters
    lr_axis = list(lrs) if lrs else [None]
    pretrain = dict(iters=pretrain_iters, data_root=pretrain_data_root) \
        if pretrain_iters else None

    def task(name, losses, optimizer, lr, seed, phase):
        record = dict(regime=regime, variant=name, losses=losses, optimizer=optimizer, lr=lr,
                      seed=seed, config=config, data_root=data_root, iters=run_iters,
                      pretrain=pretrain, train_miou=train_miou, report_split=report_split,
                      cfg_options=cfg_options, phase=phase, threads=None)
        return dict(record=record,
                    run_dir=osp.join(work_dir, run_dir_name(name, optimizer, seed, lr)))

    first_seeds = list(search_seeds) if search_seeds else list(seeds)
    first = [task(name, losses, o, lr, s, 'search' if search_seeds else 'grid')
             for o in optimizers for name, losses in parsed for lr in lr_axis
             for s in first_seeds]
    runner = _Runner(config, work_dir, jobs, gpus, gpus_per_run, threads_per_run, cfg_options,
                     data_root, iters, train_miou, report_split)
    for t in first:
        t['record']['threads'] = runner.threads
    # Refuse foreign folders before anything trains (pretraining included).
    for t in first:
        _existing_run(t['run_dir'], t['record'])
    os.makedirs(work_dir, exist_ok=True)
    with runner:
        if pretrain_iters:
            runner.backbone = pretrain_backbone(config, osp.join(work_dir, 'pretrain'),
                                                pretrain_iters, pretrain_data_root, cfg_options,
                                                gpus, runner.env(None))
        runs = runner.run(first)
        if search_seeds:
            runs += _extend_and_finish(runner, runs, parsed, optimizers, search_seeds, seeds,
                                       extend_edges, task)
    return write_report(work_dir, config, title, runs, spec)


def _extend_and_finish(runner, runs, parsed, optimizers, search_seeds, seeds, extend_edges,
                       task):
    """After the grid: each variant's search past the grid's edge, then its
    remaining seeds at the chosen lr. Returns the runs this trained.

    A best rate at the grid's edge is not a tuned rate: the search goes on past
    that edge (doubling or halving) for that variant, up to ``extend_edges``
    more rates. A variant whose best rate is inside its grid is settled: its
    remaining seeds are queued behind the other variants' extra rates, so they
    fill the job slots the search leaves free and never hold it up.
    """
    known, trained = list(runs), []
    finals = [s for s in seeds if s not in search_seeds]
    settled = set()
    for round_ in range(extend_edges + 1):
        extra = []
        for o in optimizers:
            for name, losses in parsed:
                if (name, o) in settled:
                    continue
                # the rule tuned_rows reports with, on this study's runs
                _, _, scores, best = lr_search([r for r in known if r['variant'] == name
                                                and r['optimizer'] == o])
                lrs_run = sorted(scores)
                if round_ < extend_edges and best in (lrs_run[0], lrs_run[-1]):
                    new_lr = best * 2 if best == lrs_run[-1] else best / 2
                    _print(f'{name} {o}: best lr {best:g} is at the edge of the rates '
                           f'tried: trying {new_lr:g}')
                    extra += [task(name, losses, o, new_lr, s, 'search') for s in search_seeds]
                    continue
                _print(f'{name} {o}: lr {best:g} chosen on the validation split (mean '
                       'final mIoU over the search seeds: ' + ', '.join(
                           f'{lr:g}: {v:.2f}' for lr, v in scores.items()) + ')')
                settled.add((name, o))
                later = [task(name, losses, o, best, s, 'final') for s in finals]
                for t in later:
                    t['record']['threads'] = runner.threads
                runner.run_later(later)
        if not extra:  # every variant settled
            break
        for t in extra:
            t['record']['threads'] = runner.threads
        more = runner.run(extra)
        known += more
        trained += more
    return trained + runner.collect()


def _check_variants(cfg, parsed):
    """Build every variant's losses on the config's heads before the first run."""
    from .presets import check_variant_losses
    check_variant_losses(cfg, parsed)


def _report_split_arg(values):
    """``--report-split KEY=VALUE ...`` as a dict (values kept as strings)."""
    if not values:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition('=')
        if not sep or not key or not value:
            raise ValueError(f'--report-split takes KEY=VALUE, got {item!r}')
        out[key] = value
    return out


def main():
    """``python -m ngl_lab.study`` (``tools/study_ngl.py``)."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Does NGL train? One config under a grid of loss variants x optimizers x '
                    'learning rates x seeds; writes study.md, study.json and study.png.')
    parser.add_argument('config', nargs='?', help='the config to train (not with --merge)')
    parser.add_argument('--variants', nargs='+', default=['ce', 'ngl-plain', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--optimizers', nargs='+', default=['sgd'],
                        help=f"config (the config's own) or {sorted(OPTIMIZERS)}")
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--lrs', nargs='+', type=float,
                        help="absolute learning rates, replacing the optimizer's (default: "
                        "the optimizer's own); more than one needs --report-split")
    parser.add_argument('--search-seeds', nargs='+', type=int,
                        help='with --lrs: only these seeds train at every lr; each variant '
                        'then trains --seeds at the lr best on the validation split')
    parser.add_argument('--extend-edges', type=int, default=2,
                        help='with --search-seeds: when a variant\'s best lr is the largest '
                        '(smallest) tried, also try twice (half) it, up to this many more '
                        'rates (default 2; 0: the grid only)')
    parser.add_argument('--report-split', nargs='+', metavar='KEY=VALUE',
                        help='fields of the validation dataset that make it the report split, '
                        'scored at every validation (e.g. ann_file=ImageSets/Segmentation/'
                        'test.txt, which make_synthetic_dataset.py --num-test writes)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained at once, each with its share of the CPU threads '
                        '(default 1)')
    parser.add_argument('--gpus-per-run', type=int, default=0,
                        help='with --jobs: GPUs given to each run (CUDA_VISIBLE_DEVICES)')
    parser.add_argument('--threads-per-run', type=int,
                        help='CPU threads per run (default: CPU cores / --jobs)')
    parser.add_argument('--work-dir', help='default: work_dirs/study/<config name>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run (> 1: under torchrun)')
    parser.add_argument('--pretrain-iters', type=int, default=0,
                        help='first train the backbone with CE this long on other scenes')
    parser.add_argument('--pretrain-data-root', help='the other scenes (same layout)')
    parser.add_argument('--data-root', help="replaces the config's data_root in its loaders")
    parser.add_argument('--iters', type=int,
                        help='iterations per run (validation every quarter)')
    parser.add_argument('--title', default='')
    parser.add_argument('--regime', default='',
                        help='a label for every run of this study (e.g. the label noise of '
                             '--data-root); merged studies give one row per regime')
    parser.add_argument('--train-miou', action='store_true',
                        help='also score each run on its training labels (as written) at '
                             'every validation')
    parser.add_argument('--replot', action='store_true',
                        help='only rewrite study.md/.png of --work-dir from its study.json')
    parser.add_argument('--collect', action='store_true',
                        help='only rebuild study.md/.json/.png of --work-dir from the run '
                        'folders in it (a study interrupted, or run in parts)')
    parser.add_argument('--merge', nargs='+', metavar='STUDY_DIR',
                        help='only write one table and figure in --work-dir from the runs of '
                        'these finished studies (CONFIG is ignored)')
    parser.add_argument('--overwrite-merge', action='store_true',
                        help='with --merge: replace a study already in --work-dir')
    parser.add_argument('--spec', metavar='FILE',
                        help='run a study spec (JSON: datasets, studies, merges; see '
                        'docs/tools.md); resumable')
    parser.add_argument('--only', nargs='+', metavar='STUDY',
                        help='with --spec: run only these studies of the spec')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every run, as in tools/train.py')
    args = parser.parse_args()
    modes = [m for m in ('merge', 'collect', 'replot', 'spec') if getattr(args, m)]
    if len(modes) > 1:
        parser.error(f'--{modes[0]} and --{modes[1]} do not go together')
    if not args.config and not modes:
        parser.error('CONFIG is required (except with --merge, --collect, --replot, --spec)')
    if (args.collect or args.replot) and not args.work_dir:
        parser.error(f'--{modes[0]} needs --work-dir')
    if args.merge and not args.work_dir:
        parser.error('--merge needs --work-dir for the merged table')
    if modes and modes[0] in ('merge', 'replot', 'collect') and args.regime:
        parser.error(f'--regime labels the runs of a new study; with --{modes[0]} each run '
                     'keeps the regime it was trained under')
    work_dir = args.work_dir or osp.join('work_dirs', 'study',
                                         osp.splitext(osp.basename(args.config or ''))[0])
    try:
        if args.spec:
            from .study_spec import run_spec
            run_spec(args.spec, jobs=args.jobs, only=args.only, gpus_per_run=args.gpus_per_run,
                     threads_per_run=args.threads_per_run)
        elif args.replot:
            replot(work_dir)
        elif args.collect:
            collect(work_dir, args.config or '', args.title)
        elif args.merge:
            merge(work_dir, args.merge, args.title, args.overwrite_merge)
        else:
            study(args.config, args.variants, optimizers=args.optimizers, seeds=args.seeds,
                  work_dir=work_dir, gpus=args.gpus, cfg_options=args.cfg_options,
                  pretrain_iters=args.pretrain_iters,
                  pretrain_data_root=args.pretrain_data_root, title=args.title,
                  data_root=args.data_root, iters=args.iters, regime=args.regime,
                  train_miou=args.train_miou, lrs=args.lrs, search_seeds=args.search_seeds,
                  jobs=args.jobs, gpus_per_run=args.gpus_per_run,
                  threads_per_run=args.threads_per_run, extend_edges=args.extend_edges,
                  report_split=_report_split_arg(args.report_split))
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))


if __name__ == '__main__':
    main()
