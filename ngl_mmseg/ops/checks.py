"""The input checks of the ops, which the loss layer reuses: ``ignore_index`` and the labels.

Neither makes the host wait for the device in a steady-state training iteration:

- ``check_ignore_index`` checks a Python value on the host.
- ``check_labels`` finds labels outside ``[0, C)`` that are not ``ignore_index``:

  ====================================  =========================================================
  where                                 how
  ====================================  =========================================================
  CPU tensors, eager                    exact: ``ValueError`` naming the bad values (reading the
                                        answer costs nothing on CPU)
  GPU tensors, the first                exact, as on CPU: the host waits for the device on these
  ``EXACT_DEVICE_CHECKS`` calls of a    calls only
  process
  GPU tensors after that; any tensor    ``torch._assert_async``: a device-side assert, no wait; on
  inside a ``torch.compile`` graph      a GPU a bad label stops the run at the next sync with
                                        ``RuntimeError: CUDA error: device-side assert triggered``
                                        (the kernel's own line reads ``_assert_async_cuda_kernel
                                        ... Assertion `input[0] != 0` failed``); on CPU it raises
                                        ``RuntimeError(LABEL_ASSERT_MESSAGE)``
  ====================================  =========================================================

ngl-mmseg's train tool also checks every label map as it is loaded (``CheckSegLabels``,
naming the file), on the data workers' CPUs, so with it a bad label is named before
it reaches the loss whatever the device.
"""
import collections
import numbers

import torch

from .compiling import is_compiling

INT32 = (-2**31, 2**31 - 1)
# Calls per process (per device type) on a GPU whose labels are checked exactly,
# with the bad values named, before the checks become device-side asserts.
EXACT_DEVICE_CHECKS = 20
LABEL_ASSERT_MESSAGE = (
    'NGL: a label is outside [0, num_classes) and is not ignore_index (found by a '
    'device-side check, which cannot say which value; run the batch on CPU, or train with '
    "ngl-mmseg's train tool, whose CheckSegLabels names the label file)")
_exact_device_checks = collections.Counter()


def check_ignore_index(ignore_index: int) -> int:
    """``ignore_index`` as an int; a ValueError unless it is an integer in int32's range
    (the Triton kernels compare labels as int32). The one check of it: the loss layer
    calls this too."""
    integer = isinstance(ignore_index, numbers.Integral) and not isinstance(ignore_index, bool)
    if integer and INT32[0] <= int(ignore_index) <= INT32[1]:
        return int(ignore_index)
    why = ('outside the int32 range' if integer else
           f'a {type(ignore_index).__name__}, not an integer')
    raise ValueError(f'ignore_index must be an integer in the int32 range [{INT32[0]}, '
                     f'{INT32[1]}] (the Triton kernels compare labels as int32), got '
                     f'{ignore_index!r}: {why}; use a value such as 255')


def checks_exactly(tensor: torch.Tensor) -> bool:
    """Whether a value check on ``tensor`` may read its answer on the host now
    (the module docstring's table); counts the GPU calls that do."""
    if is_compiling():
        return False
    if tensor.device.type == 'cpu':
        return True
    if _exact_device_checks[tensor.device.type] < EXACT_DEVICE_CHECKS:
        _exact_device_checks[tensor.device.type] += 1
        return True
    return False


def require(ok: torch.Tensor, message: str, exact=None) -> None:
    """Raise ``ValueError(message)`` if the one-element bool tensor ``ok`` is False,
    reading it on the host where ``checks_exactly``; else assert on the device
    (``torch._assert_async``), which never waits. ``exact`` overrides the choice."""
    if checks_exactly(ok) if exact is None else exact:
        if not bool(ok):
            raise ValueError(message)
        return
    _assert_async(ok, message)


def _assert_async(ok, message):
    try:
        torch._assert_async(ok, message)
    except TypeError:  # torch < 2.1: no message argument
        torch._assert_async(ok)


def check_labels(label: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Labels must lie in ``[0, num_classes)`` or equal ``ignore_index``.

    Compared as int64, so a narrow dtype cannot wrap 255 into a class (int8: -1)
    and a label beyond int32 cannot wrap into a class of the Triton kernels.
    Exact with the values named, or a device-side assert: see the module docstring.
    """
    label = label.long()
    bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
    if checks_exactly(label):
        if bool(bad.any()):
            values = torch.unique(label[bad]).tolist()
            shown = values[:10] + (['...'] if len(values) > 10 else [])
            raise ValueError(f'label holds values {shown} outside [0, {num_classes}) that '
                             f'are not ignore_index={ignore_index}')
        return
    _assert_async(~bad.any(), LABEL_ASSERT_MESSAGE)
