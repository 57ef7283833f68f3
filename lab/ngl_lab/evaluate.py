"""Evaluate a checkpoint on a config's validation set with mmengine's test loop.

    python -m ngl_lab.evaluate CONFIG CHECKPOINT --out metrics.json
    python -m torch.distributed.run --nproc_per_node N -m ngl_lab.evaluate \
        CONFIG CHECKPOINT --out metrics.json --launcher pytorch

Every process scores its share of the images (mmengine's sampler and result
collection), so ``--gpus N`` in the comparison evaluates on N GPUs like
``tools/dist_test.sh``. Rank 0 writes mIoU, mAcc, aAcc and the per-class IoU
(in percent, None for classes absent from both prediction and ground truth)
to ``--out`` as JSON, and with ``--num-samples K`` the first K validation
images' ground truth and prediction (for the comparison's figure) beside it.
"""
import argparse
import json
import math
import os
import os.path as osp


def _register_per_class_metric():
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import METRICS

    if 'PerClassIoUMetric' in METRICS.module_dict:
        return

    @METRICS.register_module()
    class PerClassIoUMetric(IoUMetric):
        """mmseg's IoUMetric, whose results also hold each class's IoU (%)."""

        def compute_metrics(self, results):
            metrics = super().compute_metrics(results)  # also logs mmseg's per-class table
            totals = [sum(r[i] for r in results) for i in range(4)]
            per_class = IoUMetric.total_area_to_metrics(*totals, ['mIoU'])['IoU']
            for name, value in zip(self.dataset_meta['classes'], per_class.tolist()):
                metrics[f'IoU.{name}'] = value * 100
            return metrics


def evaluation_config(config_path, work_dir, launcher='none'):
    """The config's validation split as the test split, scored per class."""
    from ngl_mmseg.launch import load_config, prepare_config

    cfg = load_config(config_path, launcher, work_dir=work_dir)
    cfg.load_from = None  # loaded strictly by score_checkpoint(), as tools/test.py does
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
    cfg.test_cfg = dict(type='TestLoop')
    prepare_config(cfg, splits=('test',))
    return cfg


def _predict_samples(runner, num_samples):
    """Ground truth and prediction of the first ``num_samples`` val images."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    dataset = runner.test_dataloader.dataset
    samples = []
    with torch.no_grad():
        for index in range(min(num_samples, len(dataset))):
            out = model.test_step(pseudo_collate([dataset[index]]))[0]
            samples.append(dict(img_path=out.img_path,
                                gt=out.gt_sem_seg.data.squeeze(0).cpu().numpy(),
                                pred=out.pred_sem_seg.data.squeeze(0).cpu().numpy()))
    return samples, [list(map(int, c)) for c in dataset.metainfo['palette']]


def samples_path(out):
    return osp.splitext(out)[0] + '_samples.npz'


def load_samples(out):
    """The samples and palette ``score_checkpoint`` saved beside ``out``."""
    import numpy as np
    with np.load(samples_path(out)) as data:
        paths = [str(p) for p in data['img_paths']]
        samples = [dict(img_path=p, gt=data[f'gt_{i}'], pred=data[f'pred_{i}'])
                   for i, p in enumerate(paths)]
        return samples, data['palette'].tolist()


def score_checkpoint(config_path, checkpoint, out, launcher='none', work_dir=None, num_samples=0):
    """Evaluate; rank 0 writes the metrics to ``out`` (and ``num_samples``
    predictions beside it, see ``load_samples``). Returns the metrics."""
    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    import ngl_mmseg  # noqa: F401  registers NGLLoss, checkpoint globals
    from ngl_mmseg.launch import load_checkpoint_strictly
    _register_per_class_metric()
    work_dir = work_dir or osp.join(osp.dirname(osp.abspath(out)), 'eval')
    cfg = evaluation_config(config_path, work_dir, launcher)
    runner = Runner.from_cfg(cfg)
    load_checkpoint_strictly(runner, checkpoint, config_path, 'evaluate')
    metrics = runner.test()
    result = dict(
        mIoU=float(metrics['mIoU']), mAcc=float(metrics['mAcc']), aAcc=float(metrics['aAcc']),
        per_class_iou={key[len('IoU.'):]: (None if math.isnan(v) else round(float(v), 2))
                       for key, v in metrics.items() if key.startswith('IoU.')},
        world_size=int(os.environ.get('WORLD_SIZE', 1)))
    if get_rank() == 0:
        with open(out, 'w') as f:
            json.dump(result, f, indent=2)
        if num_samples:
            import numpy as np
            samples, palette = _predict_samples(runner, num_samples)
            arrays = {f'{kind}_{i}': s[kind] for i, s in enumerate(samples)
                      for kind in ('gt', 'pred')}
            np.savez_compressed(samples_path(out), palette=np.array(palette),
                                img_paths=np.array([s['img_path'] for s in samples]), **arrays)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='JSON file for the metrics (rank 0)')
    parser.add_argument('--work-dir', help="mmengine's logs; default: beside --out")
    parser.add_argument('--num-samples', type=int, default=0,
                        help='also save the first N predictions (rank 0)')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    score_checkpoint(args.config, args.checkpoint, args.out, args.launcher, args.work_dir,
                     args.num_samples)


if __name__ == '__main__':
    main()
