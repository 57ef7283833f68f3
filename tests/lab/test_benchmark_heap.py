"""The loss benchmark's CPU measurements against glibc's heap: timed calls find the memory
the previous call freed, as the study's training processes do; memory passes count every
byte anew."""
import ctypes

import pytest
import torch

from ngl_lab import benchmark

# 8 x 171 x 32 x 32 floats: 5.3 MiB a tensor, under glibc's 32 MiB mmap threshold, so it
# lives in the heap, whose free pages glibc may hand back to the kernel between calls
SHAPE = (8, 171, 32, 32)


@pytest.fixture
def ce_inputs():
    if benchmark._libc_function('mallopt') is None:
        pytest.skip('not glibc: no mallopt')
    torch.manual_seed(0)
    logits, label = benchmark.make_inputs(SHAPE, 'cpu')
    return benchmark._ce_loss()[0], logits.clone().requires_grad_(), label


def test_timed_calls_find_the_memory_the_last_call_freed():
    """Under the timed passes' settings a freed block under 32 MiB stays in the process
    for the next call: the resident memory does not fall when it is freed. With the mmap
    threshold set alone (the settings before), glibc kept its 128 KiB trim threshold and
    handed such a block back at once, and the next call faulted its pages in again (CE's
    timed calls at 8x171x64x64: up to 16384 page faults, 28 against 40 to 47 ms)."""
    libc = ctypes.CDLL(None)
    if not hasattr(libc, 'mallopt'):
        pytest.skip('not glibc: no mallopt')
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    benchmark.steady_heap()
    nbytes = 5 << 20
    handed_back = []
    for _ in range(3):
        block = libc.malloc(nbytes)
        ctypes.memset(block, 1, nbytes)  # resident
        before = benchmark._rss_kb('VmRSS')
        libc.free(block)
        handed_back.append(before - benchmark._rss_kb('VmRSS'))
    assert max(handed_back) < nbytes // 1024 // 4, handed_back  # kB; 5120 when handed back


def test_the_memory_pass_counts_memory_the_heap_kept(ce_inputs):
    """After timed calls leave their freed memory in the heap, a memory pass still counts
    CE's log-probabilities and gradient (two tensors of the logits' size at least): reused
    heap pages would otherwise not raise the high-water mark and the peak read 0."""
    ce, x, label = ce_inputs
    benchmark.steady_heap()
    for _ in range(3):
        benchmark._timed_call(ce, x, label, 'cpu')
    x.grad = None
    with benchmark.PeakMemory('cpu') as mem:
        ce(x, label).backward()
    assert mem.peak >= 2 * x.numel() * x.element_size()
