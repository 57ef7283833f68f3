"""The learning-rate search: the rule that chooses a row's learning rate
(:func:`choose_lr`), the one rule for both the study, which trains the chosen
rate, and the report's tuned table (``study_tables.tuned_rows``), which
reports it; and a study's search, its grid, the rates past the grid's edge
and the remaining seeds (:func:`search_then_finish`)."""
import concurrent.futures
import dataclasses
import statistics

from .run_record import DOUBLE_PHASE
from .tool_args import printer

_print = printer('study')


@dataclasses.dataclass(frozen=True)
class LRChoice:
    """The learning rate chosen for one (regime, optimizer, variant).

    Args:
        lrs (list[float]): every rate tried, ascending.
        search_seeds (list[int]): the seeds that ran at every rate.
        scores (dict): each rate's mean final mIoU on the selection
            (validation) split over the search seeds.
        best (float): the rate with the highest score (the smaller on a tie).
    """
    lrs: list
    search_seeds: list
    scores: dict
    best: float

    @property
    def at_edge(self):
        """The best rate is the largest or the smallest tried: not yet a tuned rate."""
        return self.best in (self.lrs[0], self.lrs[-1])

    @property
    def past_edge(self):
        """The rate to try next past that edge: twice the largest, half the smallest."""
        return self.best * 2 if self.best == self.lrs[-1] else self.best / 2


def tried_lrs(members):
    """The learning rates the runs ``members`` trained at, ascending (None: the
    optimizer's own rate, not a rate of a search)."""
    return sorted({m.get('lr') for m in members if m.get('lr') is not None})


def choose_lr(members):
    """The learning rate of one (regime, optimizer, variant) group of runs.

    The search seeds are those that ran at every lr of the group; each lr
    scores their mean final mIoU on the selection (validation) split, and the
    best score wins (the smaller lr on a tie).

    Returns:
        LRChoice: the rates, search seeds, scores and the chosen rate.
    """
    lrs = tried_lrs(members)
    by_lr = {lr: {m['seed']: m for m in members if m.get('lr') == lr} for lr in lrs}
    search_seeds = sorted(set.intersection(*[set(v) for v in by_lr.values()])) if lrs else []
    if not search_seeds:
        m = members[0] if members else {}
        raise ValueError(f"{m.get('regime', '')} {m.get('variant', '')} "
                         f"{m.get('optimizer', '')}: no seed ran at every learning "
                         f'rate {lrs}, so the rates cannot be compared')
    scores = {lr: statistics.fmean(by_lr[lr][s]['curve'][-1][1] for s in search_seeds)
              for lr in lrs}
    return LRChoice(lrs, search_seeds, scores, max(lrs, key=lambda lr: scores[lr]))


def _scores(choice):
    return ', '.join(f'{lr:g}: {v:.2f}' for lr, v in choice.scores.items())


def _key(record):
    return record['variant'], record['optimizer']


def search_then_finish(pool, grid, variants, settings, plan):
    """Train the grid, each variant's search past the grid's edge, then its
    remaining seeds at the chosen lr. Returns every run this trained or reused:
    the grid's in the order of ``grid``, then every extra rate (by round, then
    variant), then every variant's remaining seeds (by the round that settled
    it, then variant): the order the grid-wide rounds of earlier versions gave.

    A best rate at the grid's edge is not a tuned rate: the search goes on past
    that edge (doubling or halving) for that variant, up to
    ``settings.extend_edges`` more rates. Each (variant, optimizer) is decided as
    soon as its own last runs have finished, not when every variant's have: one
    at the edge queues its next rate at once, one that is settled its seeds
    behind the search runs still queued, so a slot never idles for a decision
    that waits on another variant's runs.

    Args:
        pool (JobPool): trains the runs.
        grid (list[dict]): the jobs of the grid (``study.first_runs``).
        variants (list[tuple]): the parsed variants, (name, losses).
        settings (StudySettings): the study's.
        plan (callable): ``plan(variant, losses, optimizer, lr, seed, phase)``,
            the job of one run.
    """
    seed_phases = [(s, 'final') for s in settings.seeds if s not in settings.search_seeds] + [
        (s, DOUBLE_PHASE) for s in settings.double_seeds or ()]
    losses = dict(variants)
    keys = [(name, optimizer) for optimizer in settings.optimizers for name, _ in variants]
    grid_futures = pool.submit(grid)
    waiting = {key: [f for job, f in zip(grid, grid_futures) if _key(job['record']) == key]
               for key in keys}
    known = {key: [] for key in keys}
    rounds = dict.fromkeys(keys, 0)
    planned = []  # (round, key's index, 0 an extra rate / 1 seeds, futures)
    settled = []  # (round, key's index, jobs): seeds not queued yet

    def queue_settled_seeds():
        # Only once no variant is ready to decide (each waits on a run in training):
        # a worker waiting for a job takes the first one queued, so seeds queued
        # while a reused (or copied) extra rate is still to be decided would take
        # the slot its next rate needs.
        for round_, index, jobs in settled:
            planned.append((round_, index, 1, pool.submit(jobs, later=True)))
        settled.clear()

    while waiting:
        submitted = [f for fs in waiting.values() for f in fs] + [
            f for *_, fs in planned for f in fs]
        failed = [f for f in submitted if f.done() and not f.cancelled() and f.exception()]
        if failed:  # nothing more is decided (or queued) once a run has failed
            pool.results(failed)
        ready = [key for key in keys if key in waiting and all(f.done() for f in waiting[key])]
        if not ready:  # wait for a run still training (never on those done: no busy loop)
            queue_settled_seeds()
            concurrent.futures.wait([f for f in submitted if not f.done()],
                                    return_when=concurrent.futures.FIRST_COMPLETED)
            continue
        for key in ready:
            index = keys.index(key)
            known[key] += pool.results(waiting.pop(key))
            name, optimizer = key
            choice = choose_lr(known[key])
            if rounds[key] < settings.extend_edges and choice.at_edge:
                _print(f'{name} {optimizer}: best lr {choice.best:g} is at the edge of the '
                       f'rates tried: trying {choice.past_edge:g}')
                rounds[key] += 1
                waiting[key] = pool.submit([plan(name, losses[name], optimizer, choice.past_edge,
                                                 s, 'search') for s in settings.search_seeds])
                planned.append((rounds[key], index, 0, waiting[key]))
                continue
            _print(f'{name} {optimizer}: lr {choice.best:g} chosen on the validation split '
                   f'(mean final mIoU over the search seeds: {_scores(choice)})')
            settled.append((rounds[key], index, [
                plan(name, losses[name], optimizer, choice.best, seed, phase)
                for seed, phase in seed_phases]))
    queue_settled_seeds()
    runs = pool.results(grid_futures)
    # the extra rates by round, then the remaining seeds by the round that settled them
    for *_, futures in sorted(planned, key=lambda p: (p[2], p[0], p[1])):
        runs += pool.results(futures)
    return runs
