"""Dataset checks for training runs (the synthetic datasets live in
``ngl_mmseg.datasets.synthetic`` and are imported only by the tools that make them)."""
from .checks import CheckSegLabels, check_dataset_paths, check_label_files

__all__ = ['CheckSegLabels', 'check_dataset_paths', 'check_label_files']
