"""What several test modules share: the repository's paths, a batch for a decode head, a
stand-in for the Runner that NGLMonitorHook reads, a snapshot of a folder and the synthetic-data
tool run as a user runs it. Fixtures are in ``conftest.py``; test modules import from here (or
from ``reference`` and ``impls``), never from each other."""
import hashlib
import os
import os.path as osp
import subprocess
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
VOC_CFG = osp.join(REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py')
COCO_CFG = osp.join(
    REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-500iter_coco-stuff164k-synthetic-64x64.py')
MAKE = [sys.executable, osp.join(TOOLS, 'make_synthetic_dataset.py')]
SMALL = dict(num_train=2, num_val=1, size=(32, 32))  # a synthetic dataset that writes fast


def batch(n=2, size=(16, 16), seed=0, num_classes=6):
    """Features ``[(n, 8, *size)]`` and ``n`` SegDataSamples whose labels hold classes
    ``[0, num_classes)`` and about 10% ignored pixels (255): a decode head's input."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(n, 8, *size, generator=g)]
    samples = []
    for _ in range(n):
        label = torch.randint(0, num_classes, (1, ) + size, generator=g)
        label[torch.rand((1, ) + size, generator=g) < 0.1] = 255
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=size, pad_shape=size))
        samples.append(sample)
    return feats, samples


class FakeRunner:
    """What NGLMonitorHook reads of a Runner; its message hub is the current one (use the
    ``message_hub`` fixture for a fresh one)."""

    def __init__(self, model, max_iters=1000, optimizer=torch.optim.SGD):
        from mmengine.logging import MessageHub, MMLogger
        self.model = model
        self.max_iters = max_iters
        self.iter = 0
        self.message_hub = MessageHub.get_current_instance()
        self.logger = MMLogger.get_instance('test_monitor')
        param = torch.nn.Parameter(torch.zeros(1))
        self.optim_wrapper = type('OW', (), {'optimizer': optimizer([param], lr=0.01)})()


def head_with_loss(loss):
    """A model whose ``decode_head.loss_decode`` is ``loss``, as the monitor finds it."""
    model = torch.nn.Module()
    model.decode_head = torch.nn.Module()
    model.decode_head.loss_decode = loss
    return model


def snapshot(folder):
    """Every file under ``folder``: its path and a hash of its bytes."""
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            with open(osp.join(d, name), 'rb') as f:
                out[osp.relpath(osp.join(d, name), folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def run_tool(args, **kwargs):
    """``tools/make_synthetic_dataset.py ARGS`` in a subprocess, its output captured."""
    return subprocess.run(MAKE + [str(a) for a in args], capture_output=True, text=True,
                          timeout=120, **kwargs)


def no_training(*args, **kwargs):
    """Stands in for ``compare.train_run`` where a test expects a refusal before training."""
    raise AssertionError('a variant trained before the comparison was refused')
