"""The NGL formula written literally, as the authors' reference computes it.

Autograd through softmax, a one-hot target and exp/sin/cos: slow and memory
hungry: ``impl='literal'``, the benchmark's baseline and a readable definition.
"""
import torch
import torch.nn.functional as F

from .formula import ALPHA


def ngl_literal(logits, label, alpha=ALPHA, scaling=False, ignore_index=255):
    """Per-pixel NGL (mean over classes) for logits (N, C, ...) and labels (N, ...).

    ``scaling``: the formula on ``sigmoid(softmax(logits))``, as the authors'
    TensorFlow ``NGL(scaling=True)`` on a softmax output layer. Ignored pixels
    get loss 0 and no gradient, whatever their logits hold. Computed in the
    dtype of ``logits``.
    """
    num_classes = logits.shape[1]
    valid = label != ignore_index
    safe = torch.where(valid, label, 0)
    # Ignored pixels' logits are replaced before use: a NaN there must not leak
    # into the loss or (through 0 * NaN) into the gradient.
    mask = valid.unsqueeze(1).expand_as(logits)
    logits = torch.where(mask, logits, torch.zeros((), dtype=logits.dtype))
    p = torch.softmax(logits, dim=1)
    if scaling:
        p = torch.sigmoid(p)
    y = F.one_hot(safe, num_classes).movedim(-1, 1).to(p.dtype)
    per_class = torch.exp(alpha - p * (1 + y)) - torch.cos(torch.cos(torch.sin(p)))
    return per_class.mean(dim=1) * valid
