"""The NGL formula written literally, as the authors' reference computes it.

Autograd through softmax, a one-hot target and exp/sin/cos: slow and memory
hungry, kept as the baseline for the benchmark and as a readable definition.
"""
import torch
import torch.nn.functional as F

ALPHA = 2.4092


def ngl_literal(logits, label, alpha=ALPHA, use_sigmoid=False, ignore_index=255):
    """Per-pixel NGL (mean over classes) for logits (N, C, ...) and labels (N, ...).

    Ignored pixels get loss 0. Computed in the dtype of ``logits``.
    """
    num_classes = logits.shape[1]
    valid = label != ignore_index
    safe = torch.where(valid, label, 0)
    p = torch.sigmoid(logits) if use_sigmoid else torch.softmax(logits, dim=1)
    if num_classes == 1:
        y = (safe == 1).unsqueeze(1).to(p.dtype)
    else:
        y = F.one_hot(safe, num_classes).movedim(-1, 1).to(p.dtype)
    per_class = torch.exp(alpha - p * (1 + y)) - torch.cos(torch.cos(torch.sin(p)))
    return per_class.mean(dim=1) * valid
