"""What several test modules share: the repository's paths, a batch for a decode head, and a
stand-in for the Runner that NGLMonitorHook reads. Fixtures are in ``conftest.py``; test
modules import from here (or from ``reference`` and ``impls``), never from each other."""
import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
VOC_CFG = osp.join(REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py')
COCO_CFG = osp.join(
    REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-500iter_coco-stuff164k-synthetic-64x64.py')


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
