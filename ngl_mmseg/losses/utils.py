# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""What NGLLoss shares with mmseg's losses: input and argument checks, class
weights (loaded without running code from a file) and the reduction."""
import io
import math
import numbers
import os
import pickle

import numpy as np
import torch
from mmseg.models.losses.utils import weight_reduce_loss

REDUCTIONS = ('none', 'mean', 'sum')
INT32 = (-2**31, 2**31 - 1)
# A class_weight file holds one number a class: far fewer than this. The bound
# keeps a small crafted file from allocating gigabytes while it loads.
MAX_CLASS_WEIGHTS = 1 << 16
MAX_CLASS_WEIGHT_FILE_BYTES = 1 << 20
REAL_KINDS = 'iuf'  # numpy dtype kinds of real numbers (not bool, complex, dates, ...)


def check_bool(name, value):
    """``value`` if it is a bool (numpy's included), else a ValueError: a string such as
    ``'False'`` would otherwise count as True."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f'{name} must be True or False, got {value!r}')


def check_ignore_index(ignore_index):
    """``ignore_index`` as an int; refused unless it is an integer in int32's range
    (labels are compared as int32 by the Triton kernels)."""
    if isinstance(ignore_index, (bool, np.bool_)) or \
            not isinstance(ignore_index, (numbers.Integral, np.integer)):
        raise ValueError(f'ignore_index must be an integer, got {ignore_index!r} '
                         f'({type(ignore_index).__name__})')
    if not INT32[0] <= int(ignore_index) <= INT32[1]:
        raise ValueError(f'ignore_index={ignore_index} is outside the int32 range '
                         f'[{INT32[0]}, {INT32[1]}]; use a value such as 255')
    return int(ignore_index)


def check_inputs(pred, label, weight, class_weight, reduction, ignore_index):
    """Raise ValueError naming the first problem with the loss inputs."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
    check_ignore_index(ignore_index)
    if not torch.is_tensor(pred) or not pred.is_floating_point():
        raise ValueError('cls_score must be a floating-point tensor, got '
                         f'{getattr(pred, "dtype", type(pred))}')
    if pred.dim() < 2:
        raise ValueError('cls_score must be (N, C, ...) or (N, C), got shape '
                         f'{tuple(pred.shape)}')
    if not torch.is_tensor(label):
        raise ValueError(f'label must be a tensor, got {type(label)}')
    if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
        raise ValueError('label must hold integer class indices, got dtype '
                         f'{label.dtype} (floating-point or bool labels are not accepted)')
    expected = (pred.shape[0], ) + tuple(pred.shape[2:])
    if tuple(label.shape) != expected:
        raise ValueError(f'label shape {tuple(label.shape)} does not match cls_score shape '
                         f'{tuple(pred.shape)}: expected label shape {expected}')
    if label.device != pred.device:
        raise ValueError(f'label is on {label.device} but cls_score is on {pred.device}')
    num_classes = pred.shape[1]
    if num_classes == 1:
        raise ValueError('cls_score has a single channel, and the softmax over one class '
                         'is always 1: for binary segmentation set num_classes=2 '
                         '(out_channels=2) so that NGL sees two softmax channels')
    if weight is not None and tuple(weight.shape) != tuple(label.shape):
        raise ValueError(f'weight shape {tuple(weight.shape)} does not match label shape '
                         f'{tuple(label.shape)}')
    if class_weight is not None:
        if class_weight.dim() != 1 or class_weight.numel() != num_classes:
            raise ValueError(f'class_weight has {class_weight.numel()} entries but there are '
                             f'{num_classes} classes')
        if not bool(torch.isfinite(class_weight).all()) or bool((class_weight < 0).any()):
            raise ValueError(f'class_weight must be finite and >= 0, got '
                             f'{class_weight.tolist()}')
    # Compared as int64: in a narrow dtype 255 would wrap (int8: -1) and slip through.
    label = label.long()
    bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
    if bool(bad.any()):
        values = torch.unique(label[bad]).tolist()
        shown = values[:10] + (['...'] if len(values) > 10 else [])
        raise ValueError(f'label holds values {shown} outside [0, {num_classes}) that are not '
                         f'ignore_index={ignore_index}')


def _plain_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind not in REAL_KINDS or dtype.subdtype is not None or dtype.fields \
            or dtype.itemsize > 8:
        raise pickle.UnpicklingError(f'dtype {dtype} is not a plain real number type')
    return dtype


def _bounded_reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct`` (the first step of unpickling an array), refusing
    a shape or dtype that a class-weight array cannot have before allocating it."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f'{subtype!r} is not a plain numpy array')
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape, )
    if not all(isinstance(n, numbers.Integral) and n >= 0 for n in shape) or \
            math.prod(shape) > MAX_CLASS_WEIGHTS:
        raise pickle.UnpicklingError(f'an array of shape {shape} is not a class_weight array '
                                     f'(at most {MAX_CLASS_WEIGHTS} entries)')
    if isinstance(dtype, bytes):
        dtype = dtype.decode('ascii')
    return np.ndarray(shape, dtype=_plain_dtype(dtype))


def _bounded_scalar(dtype, *data):
    """numpy's ``scalar`` (how a numpy number is pickled), for plain real dtypes only."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar(_plain_dtype(dtype), *data)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain lists/tuples of numbers and numpy arrays, nothing else:
    mmseg's ``get_class_weight`` unpickles any ``.pkl`` and so runs its code.
    Arrays are rebuilt through bounded versions of numpy's constructors."""

    def find_class(self, module, name):
        if module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            if name == '_reconstruct':
                return _bounded_reconstruct
            if name == 'scalar':
                return _bounded_scalar
        if (module, name) in (('numpy', 'ndarray'), ('numpy', 'dtype')):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'{module}.{name} is not allowed in a class_weight file '
                                     '(only lists of numbers and numpy arrays are loaded)')


def _read_npy(path):
    """A .npy file's array, after checking its header (no pickled objects, a
    plain real dtype, a bounded 1-D shape) so that nothing big is allocated."""
    with open(path, 'rb') as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f'.npy format version {version} is not supported')
    if dtype.hasobject or dtype.kind not in REAL_KINDS:
        raise ValueError(f'it holds {dtype} values, not real numbers')
    if len(shape) != 1 or shape[0] > MAX_CLASS_WEIGHTS:
        raise ValueError(f'its array has shape {shape}, not a 1-D list of at most '
                         f'{MAX_CLASS_WEIGHTS} class weights')
    return np.load(path, allow_pickle=False)


def _read_pkl(path):
    size = os.path.getsize(path)
    if size > MAX_CLASS_WEIGHT_FILE_BYTES:
        raise ValueError(f'it is {size} bytes; a class_weight file is at most '
                         f'{MAX_CLASS_WEIGHT_FILE_BYTES}')
    with open(path, 'rb') as f:
        return _ArrayUnpickler(io.BytesIO(f.read())).load()


def _as_weights(value):
    """A list of floats from a 1-D list/tuple/array of finite real numbers >= 0."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in REAL_KINDS:
            raise ValueError(f'it holds {value.dtype} values, not real numbers')
        if value.ndim != 1:
            raise ValueError(f'it has shape {value.shape}, not a 1-D list of weights')
        items = value.tolist()
    elif isinstance(value, (list, tuple)):
        items = list(value)
        for item in items:
            if isinstance(item, (bool, np.bool_)) or not isinstance(
                    item, (numbers.Real, np.integer, np.floating)):
                raise ValueError(f'it holds {item!r} ({type(item).__name__}), not a real '
                                 'number')
    else:
        raise ValueError(f'it is a {type(value).__name__}, not a list of numbers')
    if not items:
        raise ValueError('it is empty')
    if len(items) > MAX_CLASS_WEIGHTS:
        raise ValueError(f'it has {len(items)} entries (at most {MAX_CLASS_WEIGHTS})')
    weights = []
    for item in items:
        try:
            w = float(item)
        except OverflowError:
            raise ValueError(f'{item!r} is too large for a float') from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f'every weight must be finite and >= 0, got {w!r}')
        weights.append(w)
    return weights


def load_class_weight(class_weight):
    """A list of floats from a list, or from a ``.npy``/``.pkl`` file, without
    running code from the file and with a bounded size; None stays None.
    Every error names the file (or the list) and what is wrong with it."""
    if class_weight is None:
        return None
    source = 'class_weight'
    if isinstance(class_weight, str):
        path = class_weight
        source = f'class_weight file {path!r}'
        try:
            if path.endswith('.npy'):
                class_weight = _read_npy(path)
            elif path.endswith('.pkl'):
                class_weight = _read_pkl(path)
            else:
                raise ValueError('it must be a .npy or .pkl file')
        except (OSError, ValueError, TypeError, OverflowError, MemoryError, EOFError,
                pickle.UnpicklingError, AttributeError, IndexError, KeyError) as exc:
            raise ValueError(f'cannot load {source}: {exc}') from None
    try:
        return _as_weights(class_weight)
    except ValueError as exc:
        raise ValueError(f'{source} must be a 1-D list of finite real numbers >= 0 '
                         f'(one a class), a .npy or a .pkl file of them: {exc}') from None


def reduce_pixel_loss(loss, label, weight=None, class_weight=None, reduction='mean',
                      avg_factor=None, ignore_index=255, avg_non_ignore=True):
    """Weight a per-pixel loss by class and pixel weights, then reduce it, as
    mmseg's losses do (``weight_reduce_loss``); ignored pixels weigh 0."""
    valid = label != ignore_index
    if class_weight is not None:
        # A zero weight for ignore_index keeps ignored pixels out of the
        # indexing (mmseg's CrossEntropyLoss crashes on them there).
        padded = torch.cat([class_weight.to(loss), loss.new_zeros(1)])
        pixel_weight = padded[torch.where(valid, label, class_weight.numel())]
        loss = loss * pixel_weight
    if weight is not None:
        weight = weight.to(loss.dtype)
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        avg_factor = pixel_weight.sum() if class_weight is not None else valid.sum()
    return weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)


def mean_over_summed_pixels(loss, label, weight=None, ignore_index=255):
    """The mean per-pixel loss over the pixels a reduction actually sums: not
    ignored, with a nonzero pixel weight (OHEM keeps only hard pixels), each
    counted by its weight; None when no pixel is summed. What the monitor
    compares with NGL's reference values, whatever ``avg_non_ignore`` says."""
    with torch.no_grad():
        w = (label != ignore_index).to(loss.dtype)
        if weight is not None:
            w = w * weight.to(loss.dtype)
        total = w.sum()
        if float(total) <= 0:
            return None
        return (loss * w).sum() / total
