# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""How the value NGLMonitorHook watches travels from the loss to the hook.

``NGLLoss`` keeps nothing between calls. In training mode each call posts here
what the monitor reads: NGL's mean over the pixels the call summed, at the
model's own logits, the summed pixel weight (0: no pixel was summed) and the
number of classes, the first two as 0-d tensors: nothing is read on the host in
the loss. ``NGLMonitorHook`` takes the post after the training step, where
mmengine's ``RuntimeInfoHook`` already waits for the device to log the losses,
and logs ``decode.ngl_progress`` from it.

A plain dict rather than mmengine's MessageHub: the loss posts from inside a
``torch.compile`` graph when the Runner compiles ``train_step``, and dynamo
traces a dict store but not the MessageHub's lock. Posts are keyed by the
loss module's ``monitor_key``, a number given when it is built.
"""
import itertools
from typing import Optional

import torch

Post = tuple[torch.Tensor, torch.Tensor, int]  # (mean, summed weight, classes)
_POSTS: dict[int, Post] = {}
_KEYS = itertools.count()


def new_key() -> int:
    """A key for a new loss module's posts."""
    return next(_KEYS)


def post(key: int, mean: torch.Tensor, total: torch.Tensor, num_classes: int) -> None:
    """Record a training call's monitored value (replacing the previous one)."""
    _POSTS[key] = (mean, total, num_classes)


def peek(key: int) -> Optional[Post]:
    """The last post under ``key``, left in place; None if there is none."""
    return _POSTS.get(key)


def take(key: int) -> Optional[Post]:
    """The last post under ``key``, removed (so an iteration without a call to
    that loss reads nothing); None if there is none."""
    return _POSTS.pop(key, None)
