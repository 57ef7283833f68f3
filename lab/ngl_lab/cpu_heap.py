"""CPU memory for the loss benchmark (``benchmark.py``): glibc's heap settings for
its timed passes and the peak of its memory passes.

Peak extra memory on CPU is the kernel's high-water mark of the process (``VmHWM``,
reset through ``/proc/self/clear_refs``), measured in passes that first hand the
heap's free pages back to the kernel (``malloc_trim``) and set glibc's mmap
threshold low (``mallopt``), so every sizeable allocation is fresh, counted memory
rather than reused heap (reused pages would not raise the mark: the peak could
read 0). Timed passes keep freed memory in the process, as the plateau study's runs
do (``study_run_speedups.keep_freed_memory``: glibc's mmap threshold at its largest,
32 MiB, the trim threshold at 1 GiB): a freed tensor under 32 MiB is there for the
next call, one over it is mapped afresh each call, as in any glibc process. What is
timed is then the loss, not when glibc happens to hand the heap's top back to the
kernel: with the mmap threshold set alone (which turns glibc's dynamic thresholds
off and leaves the trim threshold at 128 KiB), CE's timed calls at 8x171x64x64
faulted in up to 16384 fresh pages each, 28 ms without against 40 to 47 ms with;
with the trim threshold at twice the mmap threshold (glibc's dynamic rule), still on
a third of them, as another loss's freed memory went back between two calls. (A
call still faults in a tensor's pages now and then, as the heap grows; the median
is past them.) Elsewhere than glibc the settings are no-ops.
"""
import ctypes
import ctypes.util

import torch

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_LOW = 64 * 1024
_MMAP_STEADY = 32 * 1024 * 1024
_TRIM_STEADY = 1 << 30


def libc_function(name):
    """A function of the C library, or None where it has none (not glibc)."""
    libc_name = ctypes.util.find_library('c')
    return getattr(ctypes.CDLL(libc_name), name, None) if libc_name else None


def steady_heap():
    """Freed memory kept in the process (the timed passes; the study runs' setting)."""
    mallopt = libc_function('mallopt')
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_STEADY)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_STEADY)


def fresh_heap():
    """Every sizeable allocation from here on is memory the kernel counts anew: the
    heap's free pages handed back, new allocations over 64 KiB mapped (the memory
    passes)."""
    malloc_trim, mallopt = libc_function('malloc_trim'), libc_function('mallopt')
    if malloc_trim is not None:
        malloc_trim(0)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_LOW)


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
            steady_heap()
        return False
