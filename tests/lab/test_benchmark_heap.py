"""The loss benchmark's CPU measurements against glibc's heap: timed calls find the memory
the previous call freed, as the study's training processes do; memory passes count every
byte anew."""
import ctypes

import pytest
import torch

from ngl_lab import benchmark, cpu_heap

# 8 x 171 x 32 x 32 floats: 5.3 MiB a tensor, under glibc's 32 MiB mmap threshold, so it
# lives in the heap, whose free pages glibc may hand back to the kernel between calls
SHAPE = (8, 171, 32, 32)


@pytest.fixture
def ce_inputs():
    if not cpu_heap.keep_freed_memory():
        pytest.skip('not glibc: no mallopt')
    torch.manual_seed(0)
    logits, label = benchmark.make_inputs(SHAPE, 'cpu')
    return benchmark._ce_loss()[0], logits.clone().requires_grad_(), label


def test_timed_calls_find_the_memory_the_last_call_freed():
    """With freed memory kept (the study runs' and the timed passes' setting), a freed
    block under 32 MiB stays in the process for the next call: the resident memory does
    not fall when it is freed. With the mmap threshold set alone (the timed passes'
    setting before), glibc kept its 128 KiB trim threshold and handed such a block back
    at once (this test fails then), and the next call faulted its pages in."""
    if not cpu_heap.keep_freed_memory():
        pytest.skip('not glibc: no mallopt')
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    libc.malloc.argtypes = [ctypes.c_size_t]
    nbytes = 5 << 20
    handed_back = []
    for _ in range(3):
        block = libc.malloc(nbytes)
        ctypes.memset(block, 1, nbytes)  # resident
        before = cpu_heap.rss_kb('VmRSS')
        libc.free(block)
        handed_back.append(before - cpu_heap.rss_kb('VmRSS'))
    assert max(handed_back) < nbytes // 1024 // 4, handed_back  # kB; 5120 when handed back


def test_the_memory_pass_counts_memory_the_heap_kept(ce_inputs):
    """After timed calls leave their freed memory in the heap, a memory pass still counts
    CE's log-probabilities and gradient (two tensors of the logits' size at least): reused
    heap pages would otherwise not raise the high-water mark (without ``malloc_trim``
    first this test fails; the benchmark before read 0 for CE,
    docs/profile/loss-budget-shapes-before-heap.json)."""
    ce, x, label = ce_inputs
    for _ in range(3):
        benchmark._timed_call(ce, x, label, 'cpu')
    x.grad = None
    with cpu_heap.PeakMemory('cpu') as mem:
        ce(x, label).backward()
    assert mem.peak >= 2 * x.numel() * x.element_size()


def test_the_benchmark_page_rerun_figures_are_the_json():
    """docs/benchmark.md's rerun after the heap setting, and before it on the same machine:
    every ratio as docs/benchmark_cpu.json's ``rerun_heap_settings`` holds it."""
    import json
    import os.path as osp

    from helpers import REPO
    page = ' '.join(open(osp.join(REPO, 'docs', 'benchmark.md')).read().split())
    rerun = json.load(open(osp.join(REPO, 'docs', 'benchmark_cpu.json')))['rerun_heap_settings']

    def ratios(run, variant, key='time_ratio'):
        by = {(r['shape_name'], r['variant']): r[key] for r in rerun[run]['rows']}
        return f"{by['voc', variant]:.2f}x / {by['coco-stuff', variant]:.2f}x"

    assert (rerun['after']['repeats'], rerun['before']['repeats']) == (9, 9)
    assert f"the compiled path {ratios('after', 'ngl-compile')} CE after, " \
        f"{ratios('before', 'ngl-compile')} before; the eager path " \
        f"{ratios('after', 'ngl-torch')} after, {ratios('before', 'ngl-torch')} before" in page
    assert f"{ratios('after', 'ngl-compile')} on the twenty-fifth session's machine" in page
    memory = sorted(r['mem_ratio'] for r in rerun['after']['rows']
                    if r['variant'] in ('ngl-torch', 'ngl-compile'))
    assert f'{memory[0]:.2f}-{memory[-1]:.2f}x in the twenty-fifth' in page
