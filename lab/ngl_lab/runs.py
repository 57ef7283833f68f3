"""Launching training runs and reading what they logged: the machinery that the
comparison (``compare.py``) and the study (``study.py``) share.

A run is one folder: its config, mmengine's timestamped log folders (scalars in
``<timestamp>/vis_data/scalars.json``; a resumed run adds one), its checkpoints.
A folder holds exactly one run: the tools refuse a folder that already holds
one, so no table mixes runs.
"""
import glob
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import time


def free_port():
    """A TCP port free on this machine now (for torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def check_fresh_run_dir(run_dir):
    """Refuse a folder that already holds a run (its log folders or checkpoints)."""
    held = (glob.glob(osp.join(run_dir, '*', 'vis_data')) + glob.glob(osp.join(run_dir, '*.pth'))
            + glob.glob(osp.join(run_dir, 'last_checkpoint')))
    if held:
        raise FileExistsError(f'{run_dir} already holds a run ({osp.relpath(held[0], run_dir)}); '
                              'refusing to mix runs in one folder: use a new --work-dir (or '
                              'remove that folder)')


def launch_command(module, args, gpus=1, port=None):
    """``python -m module args`` in one process, or in ``gpus`` processes under
    torchrun (``torch.distributed.run``, the launcher of ``tools/dist_train.sh``)
    with ``--launcher pytorch``; without CUDA they run on CPU with gloo."""
    if gpus <= 1:
        return [sys.executable, '-m', module, *map(str, args)]
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
            f'--master_port={port or free_port()}', '-m', module, *map(str, args),
            '--launcher', 'pytorch']


def call_logged(cmd, log_path, what, progress_name=None, quiet=True, env=None, append=False):
    """Run ``cmd`` with its output in ``log_path`` (after what it holds, with
    ``append``); on failure, raise with the log's end. Not ``quiet``: the output goes
    to the terminal instead. ``env``: variables set for the command on top of this
    process's environment."""
    full_env = dict(os.environ, **env) if env else None
    if not quiet:
        subprocess.run(cmd, check=True, env=full_env)
        return
    with open(log_path, 'a' if append else 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        if progress_name:
            _follow_progress(proc, log_path, progress_name)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = ''.join(log.readlines()[-30:])
        raise RuntimeError(f'{what} failed (exit {proc.returncode}); the end of '
                           f'{log_path}:\n{tail}')


def train_run(config_path, work_dir, gpus=1, port=None, quiet=False, progress=True, env=None,
              resume_from=None):
    """Train with ngl-mmseg's train tool in ``gpus`` processes; returns seconds.

    ``quiet``: mmengine's output goes to ``work_dir/train.log`` instead of the
    terminal (with ``progress``, one progress line stands in for it); if
    training fails, its last lines are shown in the error. ``env``: extra
    environment variables (the study pins threads and devices with them).
    ``resume_from``: a checkpoint of the run in ``work_dir`` to continue from
    (``--resume`` with ``load_from`` given on the command line), its output after the
    log of what it trained before.
    """
    args = [config_path, '--work-dir', work_dir]
    if resume_from:
        args += ['--resume', '--cfg-options', f'load_from={resume_from}']
    cmd = launch_command('ngl_mmseg.cli.train', args, gpus, port)
    start = time.time()
    call_logged(cmd, osp.join(work_dir, 'train.log'), f'training {config_path}',
                osp.basename(osp.normpath(work_dir)) if progress else None, quiet, env,
                append=bool(resume_from))
    return time.time() - start


_ITER = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?eta: (\S+).*?loss: ([\d.e+-]+)')
_PROGRESS = re.compile(r'ngl_progress: ([\d.e+-]+)')


def _follow_progress(proc, log_path, name, every=2.0):
    """One progress line per run while ``proc`` trains: redrawn in place on a
    terminal, else printed at each quarter of the iterations."""
    tty = sys.stdout.isatty()
    shown_quarter = 0
    last = ''
    while proc.poll() is None:
        time.sleep(every)
        with open(log_path, errors='replace') as f:
            tail = f.read()[-20000:]
        matches = _ITER.findall(tail)
        if not matches:
            continue
        it, total, eta, loss = matches[-1]
        progress = _PROGRESS.findall(tail)
        extra = f', NGL progress {float(progress[-1]):.2f}' if progress else ''
        line = (f'[compare_losses] {name}: iter {it}/{total}, loss {float(loss):.4g}{extra}, '
                f'eta {eta}')
        if tty and line != last:
            print('\r' + line.ljust(100), end='', flush=True)
        elif not tty and int(it) * 4 // int(total) > shown_quarter:
            shown_quarter = int(it) * 4 // int(total)
            print(line, flush=True)
        last = line
    if tty and last:
        print(flush=True)


class DamagedLogError(ValueError):
    """A run's ``scalars.json`` holds a line that is not a JSON row with a step;
    ``damage`` names the file and the line."""

    def __init__(self, damage):
        super().__init__(f'{damage}: a damaged log (a full disk or a killed process?); fix or '
                         'remove that file, or train the run again')
        self.damage = damage


def scalar_logs(work_dir):
    """The ``scalars.json`` of each launch of the run in ``work_dir``, in launch order."""
    return sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def launch_logs(work_dir):
    """The text log mmengine writes for each launch of the run in ``work_dir``
    (``<timestamp>/<timestamp>.log``), in launch order."""
    return sorted(glob.glob(osp.join(work_dir, '*', '*.log')))


def read_scalars(work_dir):
    """Training and validation scalars that mmengine's LocalVisBackend logged
    for the one run in ``work_dir``.

    mmengine writes a timestamped log folder per launch. Read in launch order,
    each folder's rows replace what earlier ones logged from its first step on:
    a resumed run (``--resume`` from iteration 1000 logs from 1010) continues
    the run before it, and a run started again from the beginning replaces it,
    so the curve never holds two runs' points.
    """
    rows = []
    for path in scalar_logs(work_dir):
        launch = []
        with open(path, errors='replace') as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DamagedLogError(f'{path}, line {number}, is not JSON ({exc})') \
                        from None
                if not isinstance(row, dict) or isinstance(row.get('step'), bool) or \
                        not isinstance(row.get('step'), (int, float)):
                    raise DamagedLogError(f'{path}, line {number}, is not a JSON object with '
                                          'a "step"')
                launch.append(row)
        if launch:
            first = min(row['step'] for row in launch)
            rows = [row for row in rows if row['step'] < first] + launch
    train = [row for row in rows if 'mIoU' not in row]
    val = [row for row in rows if 'mIoU' in row]
    return train, val


def last_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no checkpoint was saved in {work_dir} (missing {path})')
    with open(path) as f:
        return f.read().strip()
