"""Three costs a study run pays on a CPU core for nothing it uses; every study run's
config imports this module (``study_config.write_run_config``), and importing it
removes them. None changes a trained weight: the same seed gives the same
weights, bit for bit, with and without them (tests/lab/test_plateau.py).

1. **The fill of uninitialized memory.** A study asks for mmengine's deterministic
   mode, which calls ``torch.use_deterministic_algorithms(True)``; with it, torch
   by default also fills every tensor it allocates uninitialized (``torch.empty``)
   with NaN, so that code reading memory it never wrote gets the same NaN on every
   run. mmseg and the plugin write every tensor they allocate, so the fill only
   costs time: about a tenth of a budget-model step
   (``torch.utils.deterministic.fill_uninitialized_memory``; the deterministic
   algorithms stay on).
2. **The training accuracy's top-k.** mmseg's decode heads log ``acc_seg`` every
   iteration through ``mmseg.models.losses.accuracy``, which ranks the classes
   of every pixel with ``topk``; on a CPU core that takes 5 ms for a batch of
   8x21x64x64 logits, twice a step with the auxiliary head. A pixel is right at
   top-1 when its label's logit is the largest one, which needs no ranking: the
   largest logit by ``amax`` (a plain reduction) and the label's by ``gather``,
   3 ms for 8x171x64x64 logits on a core, where ``max`` with its indices takes 20
   (the first version of this speedup) and ``topk`` more. The same accuracy but
   at an exact tie for the largest logit (the label counts as right if it is one
   of the tied classes, where ``topk`` names one of them) and at NaN logits
   (never right here; ``topk`` ranks NaN first): the logged number, never the
   training, could differ. Other top-k, a threshold, labels not int64 or
   mismatched shapes go to mmseg's function (and its checks).

3. **Memory handed back to the kernel and asked for again.** glibc's ``malloc``
   serves large blocks with ``mmap`` and shrinks the heap's top when it is freed,
   so every step's large tensors (at 171 classes a head's upsampled logits and
   their gradients: 8x171x64x64 floats, 22 MB each) come back as fresh pages the
   kernel has to zero on first touch: 11 000 to 22 000 minor page faults a step.
   Raising ``M_TRIM_THRESHOLD`` (1 GiB) and ``M_MMAP_THRESHOLD`` (32 MiB, glibc's
   largest) with ``mallopt`` keeps freed memory in the process for the next step
   (``cpu_heap.keep_freed_memory``, which the loss benchmark's timed passes share).
   The allocator only: the same arithmetic on the same values. Elsewhere than glibc
   nothing changes (``MALLOC_TUNED`` says which; an allocator preloaded in glibc's
   place, such as jemalloc, may ignore the settings).

Measured on the budget model as a study run (``tools/profile_run.py --as-study-run``,
two at once on two cores, docs/study-cost.md): the fill and the accuracy by ``max``
took a step of 82.8 ms to 73.0 ms; at 171 classes keeping freed memory took it from
145.6 to 108.0 ms, and then the accuracy by ``amax`` instead of ``max`` from 111.1 to
92.8 ms (two pairs, each measured side by side).
"""
import torch
from mmseg.models.decode_heads import decode_head
from mmseg.models.losses.accuracy import accuracy as mmseg_accuracy

from .cpu_heap import keep_freed_memory

__all__ = ['top1_accuracy', 'keep_freed_memory']


@torch.no_grad()
def top1_accuracy(pred, target, topk=1, thresh=None, ignore_index=None):
    """mmseg's ``accuracy`` (same arguments, same value and shape), top-1 as "the label's
    logit is the largest one"."""
    if topk != 1 or thresh is not None or pred.ndim != target.ndim + 1 or \
            pred.size(0) == 0 or pred.shape[0] != target.shape[0] or \
            pred.shape[2:] != target.shape[1:] or target.dtype != torch.long:
        return mmseg_accuracy(pred, target, topk, thresh, ignore_index)
    # labels outside the classes (255 when no ignore_index is given) are never right
    in_range = (target >= 0) & (target < pred.size(1))
    label_logit = pred.gather(1, torch.where(in_range, target, 0).unsqueeze(1)).squeeze(1)
    correct = in_range & (label_logit >= pred.amax(dim=1))
    total = target.numel()
    if ignore_index is not None:
        kept = target != ignore_index
        correct, total = correct[kept], int(kept.sum())
    eps = torch.finfo(torch.float32).eps  # as mmseg's: no labelled pixel gives 100, not nan
    return (correct.reshape(-1).float().sum(0, keepdim=True) + eps).mul_(100.0 / (total + eps))


try:  # torch >= 2.1; before it, deterministic mode filled nothing
    from torch.utils import deterministic
    deterministic.fill_uninitialized_memory = False
except ImportError:
    pass
decode_head.accuracy = top1_accuracy


MALLOC_TUNED = keep_freed_memory()
