"""Fake study runs for the study tests: run folders (run.json and logged
scalars), and a stand-in for training."""
import json
import os
import os.path as osp
import threading
import time


def fake_study_run(root, variant, seed, finals, regime='r', iters=None, name=None, **record):
    """A finished run folder as the study writes it: run.json, and mmengine's
    scalars with ``finals`` at evenly spaced validations (and a train mIoU)."""
    iters = iters or 2 * len(finals)
    run_dir = root / (name or f'{variant}_adamw_seed{seed}')
    stamp = run_dir / '20261128_000000'
    os.makedirs(stamp / 'vis_data')
    (run_dir / 'config.py').write_text('')
    base = dict(regime=regime, variant=variant, losses=[{'type': 'X'}], optimizer='adamw',
                lr=None, seed=seed, config='c.py', data_root='d', iters=iters, pretrain=None,
                train_miou=True, report_split=None, cfg_options=None, finished=True,
                seconds=100.0)
    base.update(record)
    (run_dir / 'run.json').write_text(json.dumps(base))
    step = iters // len(finals)
    rows = [{'step': step * (k + 1), 'mIoU': v} for k, v in enumerate(finals)]
    rows += [{'step': iters, 'train_mIoU': 70.0}]
    (stamp / 'vis_data' / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return run_dir


class FakeTraining:
    """Stands in for train_run: logs a curve set by the run's record (variant,
    lr, seed), counts the runs in flight and records each run's environment."""

    def __init__(self, seconds=0.0, fail=(), rendezvous=0):
        self.seconds, self.fail = seconds, set(fail)
        # the first `rendezvous` runs wait (up to 60 s) until they are all in flight
        self.barrier = threading.Barrier(rendezvous) if rendezvous else None
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        self.calls = []
        self.resumed = []  # the runs continued from a resume point (``resume_from``)

    def score(self, record, split):
        # CE is best at 1e-2, NGL at 1e-3; any other rate scores lower than both
        lr_bonus = {'ce': {1e-3: 0, 1e-2: 8}, 'ngl': {1e-3: 5, 1e-2: 1}}[record['variant']]
        return (50.0 + lr_bonus.get(record['lr'], -1) + record['seed'] +
                (3 if split == 'report' else 0))

    def __call__(self, config_path, work_dir, gpus=1, quiet=True, progress=False, env=None,
                 resume_from=None):
        with self.lock:
            if resume_from:
                self.resumed.append(osp.basename(work_dir))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.calls.append((osp.basename(work_dir), dict(env or {})))
        try:
            if self.barrier is not None and len(self.calls) <= self.barrier.parties:
                try:
                    self.barrier.wait(timeout=60)
                except threading.BrokenBarrierError:
                    pass
            time.sleep(self.seconds)
            if osp.basename(work_dir) in self.fail:
                raise RuntimeError('training failed')
            with open(osp.join(work_dir, 'run.json')) as f:
                record = json.load(f)
            vis = osp.join(work_dir, '20260101_000000', 'vis_data')
            os.makedirs(vis)
            iters = record['iters']
            rows = []
            for k in range(1, 5):
                step = iters * k // 4
                rows.append({'step': step, 'mIoU': self.score(record, 'val') - 4 + k})
                rows.append({'step': step, 'report_mIoU': self.score(record, 'report') - 4 + k})
            with open(osp.join(vis, 'scalars.json'), 'w') as f:
                f.write(''.join(json.dumps(r) + '\n' for r in rows))
            return 1.0
        finally:
            with self.lock:
                self.in_flight -= 1
