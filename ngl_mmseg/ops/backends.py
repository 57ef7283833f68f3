"""The implementations of the NGL per-pixel loss, one record each, and the choice among them.

The contract every fused implementation keeps (see ``Implementation``):

- ``forward(z, label, alpha, scaling, ignore_index) -> loss``: logits ``z``
  viewed as (B, C, S) (any strides), int64 labels (B, S); returns the per-pixel
  loss (B, S) in ``compute_dtype(z.dtype)``, 0 at ignored pixels.
- ``backward(z, label, grad_out, alpha, scaling, ignore_index) -> grad``: the
  same inputs plus the upstream gradient (B, S); returns dL/dz (B, C, S) in
  ``z``'s dtype, 0 at ignored pixels whatever their logits hold.

Neither keeps anything logits-sized between the passes: the autograd Function
(``function.py``) saves only the logits and labels and calls ``backward``.
``literal`` has no such pair: it is the literal formula through autograd.

A new implementation is one more record in ``IMPLEMENTATIONS`` (and, if
``'auto'`` should pick it, a line in ``resolve_impl``).

The Triton kernels check themselves: the first time ``resolve_impl`` would take
them for a device, dtype and kernel variant (classes, ``scaling``), they run on
a small probe against the eager math (``selfcheck.py``). With ``'auto'`` a
kernel that fails to compile, to launch, or to agree gives one warning and the
compiled path for the rest of the run; a named ``impl='triton'`` raises.
"""
import dataclasses
import functools
import os
import warnings
from typing import Callable, Optional

import torch

from . import ngl_torch, selfcheck
from .compiling import is_compiling, outside_graph

# The Triton releases the kernels were run on: 3.6 on an H200, 3.9 in the
# interpreter. Below MIN_TRITON, impl='auto' takes the compiled path instead.
MIN_TRITON = (3, 6)
# Below this many logits elements the eager path wins over a compiled kernel
# (launch overhead), and compiling would only cost start-up time.
COMPILE_MIN_ELEMENTS = 1 << 20
FLOAT_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One way to compute the loss.

    Attributes:
        name: the ``impl`` value that selects it.
        description: one line for docs and errors.
        forward, backward: the pair described in the module docstring; None
            for ``literal``, which runs through autograd.
        unusable: ``unusable(logits)`` is None where it can run on these
            logits, else the reason, written as an error message.
    """
    name: str
    description: str
    forward: Optional[Callable]
    backward: Optional[Callable]
    unusable: Callable[[torch.Tensor], Optional[str]]

    @property
    def fused(self) -> bool:
        return self.forward is not None


# --- Triton: imported here and nowhere else -----------------------------------------------

@functools.cache
def triton_version() -> Optional[tuple[int, ...]]:
    """Triton's version as a tuple of ints, or None when it is not installed.

    Read once per process (``importlib.metadata`` costs 0.3-0.4 ms a call, and
    ``impl='auto'`` asks on every CUDA call); ``triton_version.cache_clear()``
    reads it again."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        text = version('triton')
    except (ImportError, PackageNotFoundError):
        return None
    return tuple(int(part) for part in text.split('+')[0].split('.')[:2] if part.isdigit())


@functools.cache
def _triton_module():
    """``ngl_triton`` (the kernels), or None when Triton cannot be imported."""
    try:
        from . import ngl_triton
    except Exception:  # ImportError, or a Triton without a usable backend
        return None
    return ngl_triton


def triton_available(device_type: str = 'cuda') -> bool:
    """Whether the Triton kernels can run on tensors of ``device_type``."""
    if device_type != 'cuda' and os.environ.get('TRITON_INTERPRET') != '1':
        return False
    return _triton_module() is not None


def _triton_unusable(logits):
    if logits.dtype not in FLOAT_KERNEL_DTYPES:
        return (f"impl='triton' computes in float32 and takes float32, float16 or bfloat16 "
                f"logits, got {logits.dtype}; use impl='torch' for float64")
    if not logits.is_cuda and os.environ.get('TRITON_INTERPRET') != '1':
        return (f"impl='triton' needs CUDA tensors, got logits on {logits.device} (on CPU, "
                "Triton kernels run only in its interpreter, TRITON_INTERPRET=1); use "
                "impl='auto' to pick a CPU path")
    kernels = _triton_module()
    if kernels is None:
        return ("impl='triton' needs Triton, which cannot be imported here; install it "
                "(pip install triton) or use impl='compile'")
    if logits.shape[1] > kernels.MAX_CLASSES:
        return (f'the Triton NGL kernel supports up to {kernels.MAX_CLASSES} classes, got '
                f"{logits.shape[1]}; use impl='compile'")
    return None


# Inside a torch.compile graph the kernels run outside it (a graph break): dynamo
# does not trace their launch.
@outside_graph
def _triton_forward(*args):
    return _triton_module().forward(*args)


@outside_graph
def _triton_backward(*args):
    return _triton_module().backward(*args)


def _on_triton_device(logits):
    """Where ``'auto'`` considers the kernels: CUDA tensors (tests stand in other ones)."""
    return logits.is_cuda


# (device, dtype, classes, scaling) -> the self-check's result; and the keys warned about.
_TRITON_CHECKS: dict[tuple, selfcheck.Result] = {}
_TRITON_WARNED = set()


def triton_self_check(logits: torch.Tensor, scaling: bool = False) -> selfcheck.Result:
    """The kernels against the eager math on a probe, once per device, dtype and
    kernel variant (the classes of ``logits``, ``scaling``); cached for the run."""
    key = (str(logits.device), logits.dtype, int(logits.shape[1]), bool(scaling))
    found = _TRITON_CHECKS.get(key)
    if found is None:
        found = _TRITON_CHECKS[key] = _run_self_check(logits.device, logits.dtype,
                                                      int(logits.shape[1]), bool(scaling))
    return found


@outside_graph
def _run_self_check(device, dtype, num_classes, scaling):
    return selfcheck.check_kernels(_triton_forward, _triton_backward, device, dtype, num_classes,
                                   scaling)


def _triton_checks_out(logits, scaling, named):
    result = triton_self_check(logits, scaling)
    if result.failure is None:
        return True
    where = f'{logits.device} {logits.dtype}, {logits.shape[1]} classes, scaling={scaling}'
    if named:
        raise RuntimeError(f"impl='triton': the Triton kernels failed their self-check on "
                           f"{where}: {result.failure}; use impl='compile' (or impl='auto', "
                           'which falls back to it)')
    key = (str(logits.device), logits.dtype, int(logits.shape[1]), bool(scaling))
    if key not in _TRITON_WARNED:
        _TRITON_WARNED.add(key)
        warnings.warn(f'NGL: the Triton kernels failed their self-check on {where}: '
                      f"{result.failure}; impl='auto' uses the torch.compile path instead for "
                      'the rest of the run (impl=\'triton\' would raise)', stacklevel=2)
    return False


@functools.cache
def _warn_old_triton(found):
    warnings.warn(f"NGL: Triton {'.'.join(map(str, found))} is older than "
                  f"{'.'.join(map(str, MIN_TRITON))}, the oldest release the NGL kernels were "
                  "run on; impl='auto' uses the torch.compile path instead (pass "
                  "impl='triton' to use the kernels anyway)", stacklevel=2)


def _triton_recent_enough():
    found = triton_version()
    if found is not None and found < MIN_TRITON:
        _warn_old_triton(found)
        return False
    return True


# --- torch.compile, with a fallback to the eager math ----------------------------------

class _CompiledMath:
    """The torch math fused by ``torch.compile`` over the whole tensor.

    Compiling is lazy (first call). If it fails (no C++ compiler, unsupported
    platform, ...) one warning says so and every later call runs the eager
    math, which gives the same numbers.
    """

    def __init__(self):
        self.failed = False

    @functools.cached_property
    def _forward(self):
        return functools.partial(ngl_torch.forward_chunked, chunk=None,
                                 math=torch.compile(ngl_torch.forward_math, dynamic=False))

    @functools.cached_property
    def _backward(self):
        return functools.partial(ngl_torch.backward_chunked, chunk=None,
                                 math=torch.compile(ngl_torch.backward_math, dynamic=False))

    def _call(self, compiled, eager, args):
        if not self.failed:
            try:
                return compiled()(*args)
            except Exception as exc:
                self.failed = True
                warnings.warn(f'NGL: the torch.compile path failed ({type(exc).__name__}: '
                              f'{exc}); falling back to the eager implementation', stacklevel=2)
        return eager(*args)

    def forward(self, *args):
        if is_compiling():  # already inside a graph: the math is traced into it
            return ngl_torch.forward_chunked(*args)
        return self._call(lambda: self._forward, ngl_torch.forward_chunked, args)

    def backward(self, *args):
        if is_compiling():
            return ngl_torch.backward_chunked(*args)
        return self._call(lambda: self._backward, ngl_torch.backward_chunked, args)


COMPILED = _CompiledMath()


def _always_usable(logits):
    return None


IMPLEMENTATIONS = {
    impl.name: impl for impl in (
        Implementation('triton', 'Triton kernels (CUDA; CPU under TRITON_INTERPRET=1), '
                       'float32 math', _triton_forward, _triton_backward, _triton_unusable),
        Implementation('compile', 'the torch math fused by torch.compile (CPU or CUDA)',
                       COMPILED.forward, COMPILED.backward, _always_usable),
        Implementation('torch', 'the same math in eager PyTorch, chunked over pixels',
                       ngl_torch.forward_chunked, ngl_torch.backward_chunked, _always_usable),
        Implementation('literal', 'the literal formula through autograd (slow; for checks)',
                       None, None, _always_usable),
    )
}
# 'reference': another name of 'literal', kept for configs and NGL_MMSEG_IMPL values that
# use it; it goes in 0.6.0.
ALIASES = {'reference': 'literal'}
IMPLS = ('auto',) + tuple(IMPLEMENTATIONS) + tuple(ALIASES)


def _unknown_impl(what, impl):
    described = '; '.join(f"'{name}': {record.description}"
                          for name, record in IMPLEMENTATIONS.items())
    return ValueError(f"{what} must be one of {IMPLS}, got {impl!r} ('auto': the fastest that "
                      f"can run; {described}; 'reference': the earlier name of 'literal')")


def resolve_impl(impl: str, logits: torch.Tensor, scaling: bool = False) -> Implementation:
    """The ``Implementation`` that ``impl`` means for ``logits``.

    ``'auto'`` (or the environment variable ``NGL_MMSEG_IMPL``) takes Triton for
    CUDA float tensors when a recent enough Triton is installed and the kernels
    pass their self-check for this device, dtype, class count and ``scaling``
    (run once, see ``triton_self_check``), the compiled path for large
    tensors, else the eager one; float64 always runs eagerly (the kernels
    compute in float32). A named implementation that cannot run on these
    logits raises ``ValueError`` with the reason; a named ``'triton'`` whose
    self-check fails raises ``RuntimeError``.

    Inside a ``torch.compile`` graph, ``'auto'``, ``'compile'`` and ``'torch'``
    all mean the torch math traced into the graph (inductor fuses it); the
    environment variable is not read there.
    """
    if impl not in IMPLS:
        raise _unknown_impl('impl', impl)
    if is_compiling():
        name = ALIASES.get(impl, impl)
        return IMPLEMENTATIONS['torch' if name in ('auto', 'compile') else name]
    if impl == 'auto':
        impl = os.environ.get('NGL_MMSEG_IMPL', 'auto')
        if impl not in IMPLS:
            raise _unknown_impl('NGL_MMSEG_IMPL', impl)
    if impl != 'auto':
        chosen = IMPLEMENTATIONS[ALIASES.get(impl, impl)]
        reason = chosen.unusable(logits)
        if reason:
            raise ValueError(reason)
        if chosen.name == 'triton':
            _triton_checks_out(logits, scaling, named=True)
        return chosen
    if logits.dtype == torch.float64:
        return IMPLEMENTATIONS['torch']
    if (_on_triton_device(logits) and _triton_unusable(logits) is None
            and _triton_recent_enough() and _triton_checks_out(logits, scaling, named=False)):
        return IMPLEMENTATIONS['triton']
    if logits.numel() >= COMPILE_MIN_ELEMENTS and not COMPILED.failed:
        return IMPLEMENTATIONS['compile']
    return IMPLEMENTATIONS['torch']
