"""Study runs that survive being stopped: a resume point after each validation, and a
resumed run that continues with the numbers an uninterrupted one has.

A study run is a few minutes to two hours on a CPU core; a session that ends (or a
machine that stops) with runs in flight used to lose them whole. Every study run's
config imports this module and adds :class:`ResumePointHook`
(``study_config.write_run_config``); the study resumes an unfinished run from its
newest resume point (``run_folders.resume_point``, ``study._RunTrainer.train``).

**Why after the validation, not with mmengine's CheckpointHook.** CheckpointHook
saves in ``after_train_iter``, before the validation of that iteration: a run stopped
between the two has a checkpoint whose point on the curve was never logged, and the
resumed run would not log it either. A resume point saved once the validation and the
report split's scoring are done has its whole curve up to it.

**Why the RNG state.** mmengine's resume restores the weights, the optimizer, the
schedulers, the message hub and the iteration; the train loop then replays the
sampler and the data pipeline up to that iteration, so the data order and the
pipeline's numpy draws continue as they were. torch's global generator is not
restored: dropout draws from it, and so does every validation (a DataLoader
iterator draws its base seed from it). This hook saves that generator's state as it
is after the validation, which is the state the next training step starts from, and
sets it back before the first step after a resume (once that step's batch is loaded:
the data pipeline, in the training process, draws from numpy, not from torch). The
result: a resumed run in one process gives the same curve and the same weights, bit
for bit, as the run never stopped (tests/lab/test_study_resume.py, on a CPU). A run
over several processes (``gpus > 1``) saves the main process's state, which every
process gets back: it continues with other dropout masks than it would have drawn,
and is no longer the same bit for bit.
"""
import glob
import os
import os.path as osp

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ngl_mmseg.launch import checkpoint_number

__all__ = ['ResumePointHook', 'resume_points']


def resume_points(work_dir, below):
    """``(iteration, path)`` of each ``iter_<n>.pth`` in ``work_dir`` with n < ``below``
    (the run's last checkpoint, at its last iteration, is not one), newest first."""
    points = []
    for path in glob.glob(osp.join(work_dir, 'iter_*.pth')):
        # mmengine's name for an iteration's checkpoint, read as the plugin's --resume reads it
        n = checkpoint_number(path)
        if n is not None and osp.basename(path) == f'iter_{n}.pth' and n < below:
            points.append((n, path))
    return sorted(points, reverse=True)


@HOOKS.register_module()
class ResumePointHook(Hook):
    """After each validation but the last, save ``iter_<n>.pth`` (weights, optimizer,
    schedulers, message hub and torch's generator state) and remove the run's older
    resume points; after training, remove them all (the run keeps its last checkpoint,
    which CheckpointHook saves). Resumed from one, set torch's generator back to the
    state saved in it before the first training step.
    """

    priority = 'VERY_LOW'  # after every hook that scores or logs the validation

    def __init__(self):
        self._training = False
        self._rng_to_restore = None

    def before_train(self, runner):
        self._training = True

    def after_val(self, runner):
        max_iters = runner.max_iters
        if not self._training or runner.iter >= max_iters:
            return
        name = f'iter_{runner.iter}.pth'
        # save_checkpoint's default names the iteration after the current one (it is
        # meant for after_train_iter, before the loop counts it): name it here.
        runner.save_checkpoint(runner.work_dir, name, meta=dict(iter=runner.iter),
                               by_epoch=False)  # by the main process only
        if is_main_process():
            for _, path in resume_points(runner.work_dir, runner.iter):
                os.remove(path)

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = dict(
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [])

    def after_load_checkpoint(self, runner, checkpoint):
        self._rng_to_restore = checkpoint.get('rng_state')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        state, self._rng_to_restore = self._rng_to_restore, None
        if state is None:
            return
        # Resume loads the checkpoint onto the run's device; the states must be on the CPU.
        torch.set_rng_state(state['torch'].cpu())
        if state['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])

    def after_train(self, runner):
        if is_main_process():
            for _, path in resume_points(runner.work_dir, runner.max_iters):
                os.remove(path)
