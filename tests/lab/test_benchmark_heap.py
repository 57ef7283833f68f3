"""The loss benchmark's CPU measurements against glibc's heap: timed calls find the memory
the previous call freed, as a training process does; memory passes count every byte anew."""
import resource

import pytest
import torch

from ngl_lab import benchmark

# 8 x 171 x 32 x 32 floats: 5.3 MiB a tensor, under glibc's 32 MiB mmap threshold, so it
# lives in the heap, whose free pages glibc may hand back to the kernel between calls
SHAPE = (8, 171, 32, 32)


def _minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.fixture
def ce_inputs():
    if benchmark._libc_function('mallopt') is None:
        pytest.skip('not glibc: no mallopt')
    torch.manual_seed(0)
    logits, label = benchmark.make_inputs(SHAPE, 'cpu')
    return benchmark._ce_loss()[0], logits.clone().requires_grad_(), label


def test_timed_calls_reuse_the_memory_the_last_call_freed(ce_inputs):
    """With freed memory kept in the process, CE's calls stop faulting
    pages in once warm: page faults are the kernel handing memory over afresh, which a
    training step at this size does not pay (with the mmap threshold set alone, glibc kept
    its 128 KiB trim threshold and CE faulted in up to a tensor's pages on most calls)."""
    ce, x, label = ce_inputs
    benchmark.steady_heap()
    for _ in range(5):
        benchmark._timed_call(ce, x, label, 'cpu')
    faults = []
    for _ in range(8):
        before = _minor_faults()
        benchmark._timed_call(ce, x, label, 'cpu')
        faults.append(_minor_faults() - before)
    tensor_pages = x.numel() * x.element_size() // resource.getpagesize()
    assert sum(faults) < tensor_pages, faults


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
