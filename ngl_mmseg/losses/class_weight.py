# Copyright (c) ngl-mmseg contributors. Licensed under the Apache License 2.0.
"""Class weights for NGLLoss from a list or a file, loaded without running code from it.

mmseg's ``get_class_weight`` unpickles any ``.pkl`` (and so runs its code) and
reads any ``.npy``; here a ``.npy`` is read without pickles after its header is
checked, and a ``.pkl`` through an unpickler that rebuilds only plain lists of
numbers and numpy arrays, through bounded versions of numpy's constructors.
"""
import io
import math
import numbers
import os
import pickle
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

# A class_weight file holds one number a class: far fewer than this. The bound
# keeps a small crafted file from allocating gigabytes while it loads.
MAX_CLASS_WEIGHTS = 1 << 16
MAX_CLASS_WEIGHT_FILE_BYTES = 1 << 20
REAL_KINDS = 'iuf'  # numpy dtype kinds of real numbers (not bool, complex, dates, ...)


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


def load_class_weight(
        class_weight: Optional[Union[Sequence[float], np.ndarray, str]]) -> Optional[list[float]]:
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
