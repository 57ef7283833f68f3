"""Dataset checks for training runs (the synthetic datasets are experiment
machinery: ``ngl_lab.synthetic``)."""
from .checks import CheckSegLabels, check_dataset_paths, check_label_files

__all__ = ['CheckSegLabels', 'check_dataset_paths', 'check_label_files']
