"""Checks that turn broken dataset setups into errors that name the path.

Without them a missing ``data_root`` or split file surfaces deep inside
mmengine, and a label PNG holding e.g. 21 in a 21-class VOC setup only shows
up as a CUDA assert or a wrong loss.
"""
import os.path as osp

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image


def _join(root, path):
    return path if not root or osp.isabs(path) else osp.join(root, path)


def check_dataset_paths(dataset_cfg):
    """Raise for a missing data_root, split file or data folder of a dataset config.

    Wrappers (``ConcatDataset``'s ``datasets``, ``RepeatDataset``'s
    ``dataset``) are checked recursively.

    Raises:
        FileNotFoundError: A path the dataset needs does not exist.
        ValueError: The split file lists no sample.
    """
    if dataset_cfg is None:
        return
    for child in dataset_cfg.get('datasets', []) or []:
        check_dataset_paths(child)
    if dataset_cfg.get('dataset') is not None:
        check_dataset_paths(dataset_cfg['dataset'])
    if 'data_root' not in dataset_cfg and 'data_prefix' not in dataset_cfg:
        return
    kind = dataset_cfg.get('type', 'dataset')
    root = dataset_cfg.get('data_root') or ''
    if root and not osp.isdir(root):
        raise FileNotFoundError(
            f'{kind}: data_root does not exist: {osp.abspath(root)} (prepare the dataset '
            'as in mmseg\'s docs/en/user_guides/2_dataset_prepare.md, or make a synthetic '
            'one with tools/make_synthetic_dataset.py)')
    ann_file = dataset_cfg.get('ann_file') or ''
    if ann_file:
        path = _join(root, ann_file)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{kind}: split file does not exist: {osp.abspath(path)}')
        with open(path) as f:
            if not any(line.strip() for line in f):
                raise ValueError(f'{kind}: split file is empty: {osp.abspath(path)}')
    for key, folder in (dataset_cfg.get('data_prefix') or {}).items():
        path = _join(root, folder)
        if folder and not osp.isdir(path):
            raise FileNotFoundError(f'{kind}: {key} folder does not exist: {osp.abspath(path)}')


def check_label_values(seg, path, num_classes, ignore_index=255):
    """Raise ValueError naming ``path`` if label map ``seg`` holds values
    outside ``[0, num_classes)`` other than ``ignore_index``."""
    values = np.unique(seg)
    bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
    if bad.size:
        raise ValueError(f'label map {path} holds values {bad.tolist()[:10]} outside '
                         f'[0, {num_classes}) that are not ignore_index={ignore_index}')


def read_label_map(path):
    """A label PNG as an array; an unreadable or truncated file raises
    ValueError naming its path (PIL's own errors do not)."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f'label map {path} cannot be read ({type(exc).__name__}: {exc}); '
                         're-create or remove it') from None


def check_label_files(dataset, num_classes, ignore_index=255, max_files=500):
    """Read up to ``max_files`` label maps of a built dataset (evenly spaced;
    all of a small one) before training; raise ValueError naming the first
    unreadable file or one with values outside the classes.

    Returns:
        tuple[int, int]: (label maps checked, label maps in the dataset).
    """
    paths = [dataset.get_data_info(i).get('seg_map_path') for i in range(len(dataset))]
    paths = [p for p in paths if p]
    if not paths:
        return 0, 0
    step = max(1, len(paths) // max_files)
    sample = paths[::step][:max_files]
    for path in sample:
        check_label_values(read_label_map(path), path, num_classes, ignore_index)
    return len(sample), len(paths)


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Raise if a loaded segmentation map holds values outside the classes.

    Goes right after ``LoadAnnotations``. Valid values are ``[0,
    num_classes)`` and ``ignore_index``.

    Args:
        num_classes (int): Number of classes of the dataset.
        ignore_index (int): The ignored label value. Default: 255.
    """

    def __init__(self, num_classes, ignore_index=255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results):
        check_label_values(results['gt_seg_map'], results.get('seg_map_path'),
                           self.num_classes, self.ignore_index)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
