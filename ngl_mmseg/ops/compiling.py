"""What changes inside a ``torch.compile`` graph, in one place.

Dynamo traces the loss into the caller's graph (mmengine's ``compile = True``
compiles ``train_step``). Inside a graph:

- a Python branch on a tensor's value is a graph break, and reading a value
  on the host is a sync there too: the checks use ``torch._assert_async``
  (``checks.py``);
- the fused implementations run their torch math unchunked, traced into the
  caller's graph, which inductor fuses (``impl='compile'`` and ``'torch'``
  alike; ``impl='auto'`` takes that math, not the Triton kernels);
- numbers computed on the host from constants (the CE-matched weight, the
  default target bias) are constants of the graph (``constant_result``);
- a read of the Runner's state (the warm-ups' iteration) happens outside the
  graph (``outside_graph``): one graph break, where a warm-up is configured.

Written against torch 2.1 and later (``requirements/gpu-torch2.1.txt``).
"""
from typing import Callable, TypeVar

import torch

F = TypeVar('F', bound=Callable)


def is_compiling() -> bool:
    """Whether dynamo is tracing the code that calls this."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    return torch._dynamo.is_compiling()  # torch < 2.3


def outside_graph(fn: F) -> F:
    """``fn`` runs in Python even when its caller is compiled (a graph break there)."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'disable'):
        return compiler.disable(fn)
    return torch._dynamo.disable(fn)


def constant_result(fn: F) -> F:
    """``fn`` (a pure function of constant arguments) is evaluated when the graph
    is traced and its result becomes a constant of the graph."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'assume_constant_result'):
        return compiler.assume_constant_result(fn)
    return torch._dynamo.assume_constant_result(fn)
