"""The job pool that trains a study's runs, ``size`` at a time (:class:`JobPool`).

A job is one run. While it trains it holds a slot: its share of the CPU
threads and, with ``gpus_per_job``, GPUs of its own, handed to the run through
its environment (:func:`job_env`). Jobs the caller waits on (``complete``) go
ahead of jobs queued for later (``submit(jobs, later=True)``) still in the queue
when a slot frees: a slot never idles while the caller needs one job more, and
never waits on jobs it does not need yet; those fill the slots left free. (A
slot that is free already takes the first job queued, whatever its priority:
queue the jobs needed first.) Jobs are queued from the thread that entered
``with pool:``.

A failed job (or ^C) cancels every queued job: once one has failed, no job
starts. Jobs in flight finish first; then ``with pool:`` ends with
:class:`JobsFailed`, naming every job that failed (an error of the caller's
own, ^C included, is raised as it is).
"""
import collections
import concurrent.futures
import itertools
import os
import queue
import threading
import time

from .tool_args import printer

_print = printer('study')

# How far the pool is: jobs done, jobs to do (both counting only jobs trained
# here), and the seconds left at the pace so far.
Progress = collections.namedtuple('Progress', 'done total eta')


class JobsFailed(RuntimeError):
    """Jobs of a pool failed; ``failures``: each failed job and its error, in the
    order they failed (jobs queued then never started)."""

    def __init__(self, failures, where=''):
        self.failures = failures
        first = failures[0][1]
        super().__init__(f'{len(failures)} job(s) failed{" in " + where if where else ""}; '
                         f'the first: {type(first).__name__}: {first}')


def visible_gpus(count):
    """The ids of the first ``count`` GPUs this process sees: its own
    ``CUDA_VISIBLE_DEVICES`` entries where it has one (a run must not be handed a
    GPU the study was not given), else 0, 1, ..."""
    listed = os.environ.get('CUDA_VISIBLE_DEVICES')
    ids = [i.strip() for i in listed.split(',') if i.strip()] if listed is not None else []
    return ids[:count] if listed is not None else [str(k) for k in range(count)]


def job_env(threads, devices=None):
    """The environment a run trains in: ``threads`` CPU threads (pinned: a run's
    numbers must not depend on the machine's load), cuBLAS's deterministic
    workspace, UTC, and ``devices`` (``CUDA_VISIBLE_DEVICES``) when given.

    UTC: mmengine names each launch's log folder by the local time, and a run
    resumed on another machine (from an exported resume point) orders its
    launches by those names; one time zone for every machine keeps that order."""
    env = {'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads),
           'CUBLAS_WORKSPACE_CONFIG': ':4096:8', 'TZ': 'UTC'}
    if devices is not None:
        env['CUDA_VISIBLE_DEVICES'] = devices
    return env


class JobPool:
    """Trains jobs on ``size`` worker threads, inside ``with pool:``.

    Args:
        do_job (callable): ``do_job(job, env)`` trains one job in the
            environment ``env`` (:func:`job_env`) and returns its result.
        reuse (callable): ``reuse(job)``: the result of a job finished before
            (it is not trained again), or None.
        on_done (callable): ``on_done(job, result, progress)`` once a job
            trained here has finished (one call at a time; ``progress``: a
            :data:`Progress`).
        size (int): jobs trained at once.
        threads (int): CPU threads of each job.
        gpus_per_job (int): GPUs of each job (0: the environment sets none).
        where (str): where the jobs' results go, named in the messages.
    """

    # Priorities in the queue: jobs waited on first, then the later ones, then
    # the workers' stop signals.
    _NOW, _LATER, _STOP = 0, 1, 2

    def __init__(self, do_job, reuse, on_done, size=1, threads=1, gpus_per_job=0, where=''):
        self.do_job, self.reuse, self.on_done = do_job, reuse, on_done
        self.size, self.threads, self.where = size, threads, where
        self.slots = queue.Queue()
        gpus = visible_gpus(size * gpus_per_job)
        for k in range(size):
            self.slots.put(','.join(gpus[k * gpus_per_job:(k + 1) * gpus_per_job])
                           if gpus_per_job else None)
        self.lock = threading.Lock()
        self.queue = None  # the workers and their queue live inside `with pool:`

    def __enter__(self):
        self.queue = queue.PriorityQueue()
        self.order = itertools.count()
        self.submitted = []
        self.total, self.done, self.started = 0, 0, time.time()
        self.failures = []
        self.workers = [threading.Thread(target=self._work, daemon=True)
                        for _ in range(self.size)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # a job failed (or ^C): queued jobs never start
            self._cancel_queued()
        for _ in self.workers:
            self.queue.put((self._STOP, next(self.order), None, None))
        for worker in self.workers:
            worker.join()
        self.queue = None
        if self.failures and (exc[0] is None or isinstance(exc[1], Exception)):
            raise JobsFailed(self.failures, self.where) from exc[1]
        return False

    def _work(self):
        while True:
            _, _, job, future = self.queue.get()
            if job is None:
                return
            with self.lock:
                if self.failures:  # a job failed: none starts after it
                    future.cancel()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._train(job))
            except BaseException as e:  # noqa: B036 - handed to the thread waiting on it
                with self.lock:
                    self.failures.append((job, e))
                future.set_exception(e)

    def _train(self, job):
        devices = self.slots.get()
        try:
            result = self.do_job(job, job_env(self.threads, devices))
        finally:
            self.slots.put(devices)
        with self.lock:
            self.done += 1
            elapsed = time.time() - self.started
            self.on_done(job, result, Progress(self.done, self.total,
                                               elapsed / self.done * (self.total - self.done)))
        return result

    def _cancel_queued(self):
        # Every future is recorded as it is made (see `_submit`), so this
        # reaches the queued jobs and one a worker has taken but not started;
        # a worker skips a cancelled job. Running and finished ones are left.
        for future in self.submitted:
            future.cancel()

    def _submit(self, jobs, priority):
        if self.queue is None:
            raise RuntimeError('JobPool trains only inside `with pool:` (which starts its '
                               'workers)')
        futures, reused = [], 0
        for job in jobs:
            future = concurrent.futures.Future()
            self.submitted.append(future)  # before anything can raise: cancellable
            result = self.reuse(job)
            if result is not None:
                future.set_result(result)
                reused += 1  # counted here: a queued job may be done by the time of the message
            else:
                with self.lock:
                    self.total += 1
                self.queue.put((priority, next(self.order), job, future))
            futures.append(future)
        if reused:
            _print(f'{reused} of {len(jobs)} runs already finished in {self.where}: reused')
        if reused < len(jobs):
            _print(f'training {len(jobs) - reused} runs, {self.size} at a time, '
                   f'{self.threads} CPU thread(s) each')
        return futures

    def complete(self, jobs):
        """Every job's result (reused or trained), in the order of ``jobs``, the
        jobs trained ahead of any job queued ``later`` and still queued; a failed
        job cancels every queued one and raises."""
        return self.results(self.submit(jobs))

    def submit(self, jobs, later=False):
        """Queue jobs without waiting: their futures, in the order of ``jobs`` (a
        reused job's is done already). ``later``: behind every job not queued
        later that is in the queue when a slot frees.
        ``results`` waits for them."""
        return self._submit(jobs, self._LATER if later else self._NOW)

    def results(self, futures):
        """The results of ``submit``'s futures, in order (waiting for them); a
        failed job cancels every queued one and raises."""
        try:
            return [future.result() for future in futures]
        except BaseException:
            self._cancel_queued()
            raise
