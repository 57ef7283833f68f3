from .checks import CheckSegLabels, check_dataset_paths
from .synthetic import make_coco_stuff, make_voc

__all__ = ['CheckSegLabels', 'check_dataset_paths', 'make_coco_stuff', 'make_voc']
