"""glibc's heap on CPU: freed memory kept in the process (every study run, and the loss
benchmark's timed passes) and every byte counted anew (the benchmark's memory passes).

glibc's ``malloc`` serves blocks over its mmap threshold with ``mmap`` and shrinks the
heap's top past its trim threshold when memory is freed: a process that frees and
allocates the same large tensors every step or call gets fresh pages from the kernel,
zeroed on first touch, each time. Setting the trim threshold (1 GiB) and the mmap
threshold (32 MiB, glibc's largest) keeps freed memory for the next step
(``keep_freed_memory``). Setting the mmap threshold alone is not that: it turns glibc's
dynamic thresholds off and leaves the trim threshold at 128 KiB. The loss benchmark did
so until the twenty-fifth session, and its timed CE calls at 8x171x64x64 read 42.25 ms
where, with freed memory kept, they read 28.60 (the same machine and command,
docs/profile/loss-budget-shapes-before-heap.json and loss-budget-shapes.json).

Peak extra memory on CPU is the kernel's high-water mark of the process (``VmHWM``,
reset through ``/proc/self/clear_refs``). Pages the heap kept and a pass reuses do not
raise it (the same run before read a peak of 0 for CE), so a memory pass first hands
the heap's free pages back (``malloc_trim``) and sets the mmap threshold low
(``fresh_heap``): every sizeable allocation is then memory the kernel counts.
Elsewhere than glibc both are no-ops that return False.
"""
import ctypes
import functools

import torch

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_LOW = 64 * 1024


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc's (mallopt, malloc_trim), typed, or None elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (TypeError: Windows)
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    malloc_trim.argtypes = [ctypes.c_size_t]
    return mallopt, malloc_trim


def keep_freed_memory(trim_threshold=1 << 30, mmap_threshold=1 << 25):
    """Keep freed memory in the process instead of handing it back to the kernel; True
    where glibc took both settings."""
    libc = _glibc()
    return libc is not None and bool(libc[0](_M_TRIM_THRESHOLD, trim_threshold)) and \
        bool(libc[0](_M_MMAP_THRESHOLD, mmap_threshold))


def fresh_heap():
    """Every sizeable allocation from here on is memory the kernel counts anew: the
    heap's free pages handed back, new allocations over 64 KiB mapped; True where glibc
    took it."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt, malloc_trim = libc
    malloc_trim(0)
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_LOW))


def rss_kb(field):
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``), in kB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


class PeakMemory:
    """Peak bytes allocated inside a ``with`` block, beyond what was there before."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak = None

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            fresh_heap()
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset VmHWM to the current RSS
            self.base = rss_kb('VmRSS') * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.peak = rss_kb('VmHWM') * 1024 - self.base
            keep_freed_memory()
        return False
