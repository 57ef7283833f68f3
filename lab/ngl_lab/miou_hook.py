"""What the study's two extra mIoU hooks share: after each validation, score the
model on another set of images with the validation pipeline and mmseg's IoUMetric,
and log the mIoU as a scalar beside the validation's.

``TrainSetMIoUHook`` (``train_miou.py``) scores the training images with their
labels as written, ``HeldOutMIoUHook`` (``heldout_miou.py``) a held-out report
split. Each is registered by its own module, which a run's config imports
(``custom_imports``); this base is not registered.
"""
import torch
from mmengine.hooks import Hook


class ExtraSplitMIoUHook(Hook):
    """After each validation, the mIoU on the dataset that ``dataset_config`` gives.

    A subclass defines ``dataset_config(runner)`` (the dataset's config, with the
    validation pipeline) and ``log_line(images, miou)`` (the line logged).

    Args:
        key (str): The scalar logged, e.g. 'train_mIoU'.
        max_images (int, optional): Score at most this many images (the first
            ones). Default: None (all).
    """

    priority = 'LOW'

    def __init__(self, key, max_images=None):
        self.key = key
        self.max_images = max_images
        self._loader = None
        self._evaluator = None

    def dataset_config(self, runner):
        raise NotImplementedError

    def log_line(self, images, miou):
        raise NotImplementedError

    def _build(self, runner):
        from mmengine.dataset import DefaultSampler  # noqa: F401  (registered by mmengine)
        loader = dict(batch_size=1, num_workers=0, dataset=self.dataset_config(runner),
                      sampler=dict(type='DefaultSampler', shuffle=False))
        self._loader = runner.build_dataloader(loader, seed=0, diff_rank_seed=False)
        self._evaluator = runner.build_evaluator(dict(type='IoUMetric', iou_metrics=['mIoU']))
        self._evaluator.dataset_meta = self._loader.dataset.metainfo

    def after_val_epoch(self, runner, metrics=None):
        if self._loader is None:
            self._build(runner)
        scored = len(self._loader.dataset)
        if self.max_images is not None:
            scored = min(scored, self.max_images)
        with torch.no_grad():
            for k, data_batch in enumerate(self._loader):
                if k >= scored:  # a ConcatDataset is not cut to max_images when built
                    break
                outputs = runner.model.val_step(data_batch)
                self._evaluator.process(data_samples=outputs, data_batch=data_batch)
        miou = float(self._evaluator.evaluate(scored)['mIoU'])
        runner.visualizer.add_scalars({self.key: miou}, step=runner.iter)
        runner.logger.info(self.log_line(scored, miou))
