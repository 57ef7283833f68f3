# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""NGLMonitorHook: NGL's progress in the log, and a warning when a run will not learn.

NGL's value moves very little in absolute terms: per pixel it lies between its
value at chance (a uniform softmax, what a fresh head predicts) and its
minimum, and that range is ~0.07 at 21 classes and ~0.01 at 171. The hook
logs ``decode.ngl_progress`` = (at_chance - loss) / (at_chance - minimum):
0 at chance, 1 at NGL's optimum, readable at any class count.

If after ``check_iter`` iterations the progress is still below
``min_progress``, the run is on NGL's plateau (its gradient is tiny at the
start and proportional to the target's probability, see docs/training.md):
the hook logs one warning that names the cause and the recipe, instead of
letting a day of GPUs produce a model that predicts at chance.

The loss keeps nothing between calls: each training call posts its value
(``losses/monitor.py``) as tensors, and the hook reads the post after the
iteration, where mmengine's RuntimeInfoHook has already waited for the device
to log the losses.
"""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .losses import monitor
from .losses.ngl_loss import NGLLoss
from .losses.recipe import ce_matched_weight, ngl_progress


def find_ngl_losses(model: torch.nn.Module) -> list:
    """The NGLLoss modules of the decode head (else of the whole model)."""
    model = getattr(model, 'module', model)  # DDP / other wrappers
    head = getattr(model, 'decode_head', None)
    found = [m for m in (head or model).modules() if isinstance(m, NGLLoss)]
    return found or [m for m in model.modules() if isinstance(m, NGLLoss)]


@HOOKS.register_module()
class NGLMonitorHook(Hook):
    """Log NGL's progress from chance to its minimum; warn early on a plateau.

    Args:
        check_iter (int, optional): Iteration of the check. Default: None
            (5% of ``max_iters``, at least 50 and at most 2000).
        min_progress (float): Progress below which the run is called stuck,
            averaged over the ``window`` iterations before ``check_iter``; in
            [0, 1) (0: chance, 1: NGL's minimum). Default: 0.05.
        window (int): Iterations averaged. Default: 20.
    """

    priority = 'LOW'

    def __init__(self,
                 check_iter: Optional[int] = None,
                 min_progress: float = 0.05,
                 window: int = 20) -> None:
        if check_iter is not None and (isinstance(check_iter, bool) or
                                       not isinstance(check_iter, int) or check_iter < 1):
            raise ValueError('NGLMonitorHook: check_iter must be a positive integer (the '
                             f'iteration of the check) or None, got {check_iter!r}')
        if isinstance(min_progress, bool) or not isinstance(min_progress, (int, float)) or \
                not math.isfinite(min_progress):
            raise ValueError('NGLMonitorHook: min_progress must be a number (a fraction of '
                             f'the way from chance to NGL\'s minimum), got {min_progress!r}')
        if not 0 <= min_progress < 1:
            raise ValueError(f'NGLMonitorHook: min_progress={min_progress!r} is outside [0, 1): '
                             'it is a fraction of the way from chance (0) to NGL\'s minimum '
                             '(1); below 0 the check never fires and at 1 or above it always '
                             'does. The default is 0.05')
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError('NGLMonitorHook: window must be a positive integer (iterations '
                             f'averaged), got {window!r}')
        self.check_iter = check_iter
        self.min_progress = float(min_progress)
        self.window = window
        self._recent = []
        self._losses = None  # the model's NGLLoss modules, found once
        self.warned = False

    def _losses_of(self, runner):
        if self._losses is None:
            self._losses = find_ngl_losses(runner.model)
        return self._losses

    def _check_at(self, runner):
        if self.check_iter is not None:
            return self.check_iter
        return int(min(2000, max(50, 0.05 * runner.max_iters)))

    def before_train(self, runner):
        if not self._losses_of(runner):
            runner.logger.warning('NGLMonitorHook: the model has no NGLLoss; nothing to monitor')
        elif self._check_at(runner) > runner.max_iters:
            runner.logger.warning(f'NGLMonitorHook: check_iter={self._check_at(runner)} is '
                                  f'after the last iteration ({runner.max_iters}); the '
                                  'plateau check will not run')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        for loss in self._losses_of(runner):  # a post from before this iteration is stale
            monitor.take(loss.monitor_key)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        posts = [(m, monitor.peek(m.monitor_key)) for m in self._losses_of(runner)]
        posts = [(m, p) for m, p in posts if p is not None]
        if not posts:
            return
        loss, (mean, total, num_classes) = posts[0]
        value, summed = torch.stack([mean.float(), total.float()]).tolist()  # one read
        if summed <= 0:  # no pixel summed in this iteration: nothing to read
            return
        progress = ngl_progress(value, num_classes, loss.alpha, loss.scaling)
        runner.message_hub.update_scalar('train/decode.ngl_progress', progress)
        self._recent = (self._recent + [progress])[-self.window:]
        if self.warned or runner.iter + 1 != self._check_at(runner):
            return
        mean = sum(self._recent) / len(self._recent)
        if math.isfinite(mean) and mean >= self.min_progress:
            return
        self.warned = True
        runner.logger.warning(self.stuck_message(runner, loss, mean, outputs, num_classes))

    @staticmethod
    def stuck_message(runner,
                      loss: NGLLoss,
                      progress: float,
                      outputs: Optional[dict] = None,
                      num_classes: Optional[int] = None) -> str:
        """The warning for a run whose progress is ``progress`` at the check."""
        if num_classes is None:  # the last post's, else what a caller set on the loss
            posted = monitor.peek(loss.monitor_key)
            num_classes = posted[2] if posted else getattr(loss, 'last_num_classes', None)
        optimizer = type(runner.optim_wrapper.optimizer).__name__
        if not math.isfinite(progress):
            return (f'NGL is not learning: after {runner.iter + 1} iterations its loss is '
                    f'{progress} (NaN or inf), not a number: the model or its inputs hold NaN/inf '
                    '(check the learning rate, the data and, with mixed precision, overflow). '
                    'This is not the plateau of NGL\'s small gradient.')
        fp16 = _uses_fp16(runner)
        acc = (outputs or {}).get('decode.acc_seg')
        acc = f', decode.acc_seg {float(acc):.1f}%' if acc is not None else ''
        factor = ce_matched_weight(num_classes, loss.alpha, loss.scaling)
        lines = [
            f'NGL is not learning: after {runner.iter + 1} iterations its loss has covered '
            f'{100 * progress:.1f}% of the way from chance to its minimum{acc} '
            f'({num_classes} classes, {optimizer}, loss_weight {loss.loss_weight}, '
            f'auto_weight={loss.auto_weight}).',
            f'Cause: at the start NGL\'s gradient is ~{factor:.0f}x smaller than cross '
            f'entropy\'s (C^2/|g_t - g_c|, about C^2/e^alpha for many classes) and '
            'proportional to the target\'s probability, so pixels whose class is still '
            'unlikely hardly learn.',
        ]
        if not loss.auto_weight:
            lines.append('Recipe: NGLLoss(auto_weight=True) gives NGL cross entropy\'s '
                         'gradient at the start; the configs in configs/ngl/ use it.')
        else:
            lines.append('The CE-matched weight is on: raise the learning rate or train '
                         'longer; see docs/training.md.')
        if fp16:
            lines.append('This run uses float16: NGL\'s gradient is so small that, at loss '
                         'scales such as 65536, much of it flushes to zero in float16; use '
                         'bfloat16 or auto_weight=True (see docs/training.md, mixed precision).')
        return ' '.join(lines)


def _uses_fp16(runner) -> bool:
    """Whether the run trains under float16 autocast (AmpOptimWrapper's default)."""
    wrapper = runner.optim_wrapper
    dtype = getattr(wrapper, 'cast_dtype', None)
    return type(wrapper).__name__ == 'AmpOptimWrapper' and dtype in (None, torch.float16)
