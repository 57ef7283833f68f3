"""The settings of one study (:class:`StudySettings`): what ``tools/study_ngl.py``
or a study spec asks for, checked as a whole before the first run."""
import dataclasses
import math
import os
import os.path as osp
import re
from collections.abc import Sequence
from typing import Optional

from .presets import parse_loss_specs
from .run_folders import run_dir_name
from .study_config import OPTIMIZERS
from .tool_args import check_count, check_plain_name

# A regime label: one cell of a Markdown table and one part of a folder name.
REGIME_LABEL_PATTERN = re.compile(r'[A-Za-z0-9_.+-]{0,64}')


@dataclasses.dataclass
class StudySettings:
    """One study: a config under a grid of loss variants x optimizers x learning
    rates x seeds, and how its runs train.

    Args:
        config (str): the config every run trains.
        variants (Sequence[str]): loss presets or ``NAME=<dict literal>``.
        optimizers (Sequence[str]): ``config`` (the config's own) or keys of
            ``study_config.OPTIMIZERS``.
        seeds (Sequence[int]): the seeds of every (variant, optimizer, lr); with
            ``search_seeds``, those the chosen lr trains.
        work_dir (str): the study's folder (one folder per run inside).
        title (str): the report's title (default: the config's file name).
        regime (str): a label of every run (``REGIME_LABEL_PATTERN``); merged
            studies give one row per regime.
        data_root (str, optional): replaces the config's ``data_root``.
        iters (int, optional): iterations per run (validation every quarter).
        cfg_options (dict, optional): settings of every run (``--cfg-options``).
        train_miou (bool): also score each run on its training labels.
        lrs (Sequence[float], optional): absolute learning rates (None: the
            optimizer's own); more than one needs ``report_split``.
        search_seeds (Sequence[int], optional): with ``lrs``, the seeds that
            train at every rate; each variant then trains ``seeds`` at its best.
        extend_edges (int): with ``search_seeds``, rates tried past the grid's
            edge where a variant's best rate lies on it.
        double_seeds (Sequence[int], optional): with ``search_seeds`` and
            ``iters``, these of the ``seeds`` also train each variant's chosen
            rate at twice ``iters``: the plateau check (runs of phase
            ``'double'``).
        wide_seeds (Sequence[int], optional): with ``search_seeds``, more seeds
            for a variant whose paired interval against CE is wider than
            ``wide_half_width`` (its half-width): it and CE train them at their
            chosen rates.
        wide_half_width (float): see ``wide_seeds``.
        report_split (dict, optional): fields of the validation dataset that
            make it the report split.
        pretrain_iters (int): first train the backbone with CE this long ...
        pretrain_data_root (str, optional): ... on these other scenes.
        gpus (int): processes per run (> 1: under torchrun).
        jobs (int): runs trained at once.
        gpus_per_run (int): GPUs given to each run (``CUDA_VISIBLE_DEVICES``).
        threads_per_run (int, optional): CPU threads per run (default: CPU
            cores / ``jobs``).
        reuse_from (Sequence[str], optional): other studies' folders: a run
            there with every identity key of one of this study's runs (the same
            training, e.g. a shorter study's plateau check for a study at twice
            its budget) is copied instead of trained (``copy_identical_run``).
        spec (dict, optional): the spec file and study name this study comes
            from, kept in its ``study.json``.
    """
    config: str
    variants: Sequence[str] = ('ce', 'ngl-plain', 'ngl')
    optimizers: Sequence[str] = ('sgd', )
    seeds: Sequence[int] = (0, )
    work_dir: str = 'work_dirs/study'
    title: str = ''
    regime: str = ''
    data_root: Optional[str] = None
    iters: Optional[int] = None
    cfg_options: Optional[dict] = None
    train_miou: bool = False
    lrs: Optional[Sequence[float]] = None
    search_seeds: Optional[Sequence[int]] = None
    extend_edges: int = 2
    double_seeds: Optional[Sequence[int]] = None
    wide_seeds: Optional[Sequence[int]] = None
    wide_half_width: float = 5.0
    report_split: Optional[dict] = None
    pretrain_iters: int = 0
    pretrain_data_root: Optional[str] = None
    gpus: int = 1
    jobs: int = 1
    gpus_per_run: int = 0
    threads_per_run: Optional[int] = None
    reuse_from: Optional[Sequence[str]] = None
    spec: Optional[dict] = None

    @property
    def threads(self):
        """CPU threads of each run (recorded in its ``run.json``)."""
        return self.threads_per_run or max(1, (os.cpu_count() or 1) // self.jobs)

    @property
    def pretrain(self):
        """What the run records say of the pretraining (None: none)."""
        if not self.pretrain_iters:
            return None
        return dict(iters=self.pretrain_iters, data_root=self.pretrain_data_root)

    def check(self):
        """Every setting checked before the first run (the config file and the
        work dir are the study's to check). Returns the parsed variants."""
        if self.spec is not None:
            check_plain_name(self.spec.get('study'), 'study')
        self._check_grid()
        self._check_counts()
        if self.pretrain_data_root and not self.pretrain_iters:
            raise ValueError('--pretrain-data-root is given without --pretrain-iters: say how '
                             'long to pretrain (or drop --pretrain-data-root)')
        if self.pretrain_iters and not self.pretrain_data_root:
            raise ValueError('pretrain_iters needs pretrain_data_root (other scenes)')
        if not isinstance(self.regime, str) or not REGIME_LABEL_PATTERN.fullmatch(self.regime):
            raise ValueError(f'regime {self.regime!r} is not allowed: up to 64 letters, digits '
                             'and _ . + - (it labels table rows and run records)')
        self._check_search()
        self._check_reuse_from()
        parsed = parse_loss_specs(self.variants)
        check_count('extend_edges', self.extend_edges, 0)
        return parsed

    def _check_grid(self):
        for optimizer in self.optimizers:
            if optimizer != 'config' and optimizer not in OPTIMIZERS:
                raise ValueError(f'unknown optimizer {optimizer!r}: use config or one of '
                                 f'{sorted(OPTIMIZERS)}')
        for name, values in (('optimizer', self.optimizers),
                             ('seed', list(self.seeds) + list(self.wide_seeds or ())),
                             ('search seed', self.search_seeds or ()),
                             ('double seed', self.double_seeds or ())):
            repeated = sorted({v for v in values if list(values).count(v) > 1})
            if repeated:
                raise ValueError(f'{name} {repeated[0]!r} is given more than once: each run '
                                 'must be one row of the results')
        for seed in list(self.seeds) + list(self.search_seeds or ()):
            check_count('seed', seed, 0)

    def _check_reuse_from(self):
        if isinstance(self.reuse_from, str):
            raise ValueError(f'reuse_from {self.reuse_from!r}: give a list of folders')
        for folder in self.reuse_from or ():
            if not isinstance(folder, str) or not folder:
                raise ValueError(f'reuse_from {folder!r}: give the folders of other studies')
            if osp.abspath(folder) == osp.abspath(self.work_dir):
                raise ValueError(f'reuse_from {folder!r} is this study\'s own folder: its '
                                 'finished runs are reused anyway; name other studies')

    def _check_counts(self):
        check_count('gpus', self.gpus, 1)
        check_count('jobs', self.jobs, 1)
        check_count('gpus_per_run', self.gpus_per_run, 0)
        if self.gpus_per_run:
            _check_visible_gpus(self.jobs, self.gpus_per_run)
        if self.threads_per_run is not None:
            check_count('threads_per_run', self.threads_per_run, 1)
        if self.iters is not None:
            check_count('iters', self.iters, 1)
        check_count('pretrain_iters', self.pretrain_iters, 0)

    def _check_search(self):
        lrs, report_split = self.lrs, self.report_split
        if lrs is not None:
            check_lrs(lrs)
            if len(lrs) > 1 and not report_split:
                raise ValueError('a learning-rate search (--lrs with more than one rate) needs '
                                 'a --report-split: the rate is chosen on the validation split, '
                                 'and the tuned table must not report the split it selected on')
        if self.search_seeds and (lrs is None or len(lrs) < 2):
            raise ValueError('--search-seeds needs --lrs with at least two learning rates')
        self._check_plateau_seeds()
        if report_split is not None and (not isinstance(report_split, dict) or not report_split):
            raise ValueError('--report-split takes KEY=VALUE fields of the validation dataset, '
                             'e.g. ann_file=ImageSets/Segmentation/test.txt')

    def _check_plateau_seeds(self):
        if (self.double_seeds or self.wide_seeds) and not self.search_seeds:
            raise ValueError('--double-seeds and --wide-seeds need --search-seeds: they train '
                             "each variant's chosen learning rate")
        if self.double_seeds:
            if not self.iters:
                raise ValueError('--double-seeds needs --iters: the plateau check trains twice '
                                 'that many iterations')
            stray = [s for s in self.double_seeds if s not in self.seeds]
            if stray:
                raise ValueError(f'double seed {stray[0]!r} is not one of the seeds '
                                 f'{list(self.seeds)}: the check compares a seed at both budgets')
        width = self.wide_half_width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or \
                not math.isfinite(width) or width <= 0:
            raise ValueError(f'wide_half_width {width!r} must be a positive number')


def _check_visible_gpus(jobs, gpus_per_run):
    """``jobs`` runs at once with ``gpus_per_run`` GPUs each need that many GPUs
    visible here (``torch.cuda.device_count()``, which ``CUDA_VISIBLE_DEVICES``
    limits): without them the runs would train on CPU, or share a GPU."""
    import torch
    needed, visible = jobs * gpus_per_run, torch.cuda.device_count()
    if needed > visible:
        listed = os.environ.get('CUDA_VISIBLE_DEVICES')
        where = f' (CUDA_VISIBLE_DEVICES={listed})' if listed is not None else ''
        raise ValueError(f'--jobs {jobs} x --gpus-per-run {gpus_per_run} = {needed} '
                         f'GPU{"s" if needed != 1 else ""}, but {visible} are visible{where}: '
                         'lower --jobs or --gpus-per-run (0: train on CPU)')


def check_lrs(lrs):
    """Positive, finite, each given once, and each naming a run folder of its own
    (rates that print alike, such as 0.001 and 0.0010000001, would share one);
    else a ValueError naming the rate."""
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
                or lr <= 0:
            raise ValueError(f'learning rate {lr!r} must be a positive number')
    repeated = sorted({lr for lr in lrs if list(lrs).count(lr) > 1})
    if repeated:
        raise ValueError(f'learning rate {repeated[0]!r} is given more than once')
    by_folder = {}
    for lr in sorted(lrs):
        folder = run_dir_name('<variant>', '<optimizer>', '<s>', lr)
        if folder in by_folder:
            raise ValueError(f'learning rates {by_folder[folder]!r} and {lr!r} both name the run '
                             f'folders {folder}: give rates that differ in their first 6 '
                             'significant digits')
        by_folder[folder] = lr
