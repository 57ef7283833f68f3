"""What several test modules share: the repository's paths, a batch for a decode head, a
stand-in for the Runner that NGLMonitorHook reads, a snapshot of a folder and the synthetic-data
tool run as a user runs it. Nothing here imports the lab (``ngl_lab``): the plugin's tests use
it. Fixtures are in ``conftest.py``; test modules import from here (or from ``reference`` and
``impls``), never from each other."""
import glob
import hashlib
import json
import os
import os.path as osp
import socket
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


def seg_samples(n, size, num_classes, generator, ignored=0.0):
    """``n`` SegDataSamples of ``size`` whose labels hold classes ``[0, num_classes)`` and
    about a fraction ``ignored`` of ignored pixels (255)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        label = torch.randint(0, num_classes, (1, ) + size, generator=generator)
        if ignored:
            label[torch.rand((1, ) + size, generator=generator) < ignored] = 255
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=size, pad_shape=size, ori_shape=size))
        samples.append(sample)
    return samples


def batch(n=2, size=(16, 16), seed=0, num_classes=6):
    """Features ``[(n, 8, *size)]`` and ``n`` SegDataSamples with about 10% ignored
    pixels: a decode head's input."""
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(n, 8, *size, generator=g)]
    return feats, seg_samples(n, size, num_classes, g, ignored=0.1)


def image_batch(n, size, num_classes, seed=0):
    """Images ``(n, 3, size, size)`` and their SegDataSamples: a segmentor's input."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    return images, seg_samples(n, (size, size), num_classes, g)


def make_dataset(kind, out_dir, *args):
    """A synthetic dataset (``kind``: voc or coco-stuff) written by the lab's tool, run as a
    user runs it (the plugin's tests import nothing of the lab); its root folder."""
    out = run_tool([kind, out_dir, *args])
    assert out.returncode == 0, out.stderr
    sub = 'VOCdevkit/VOC2012' if kind == 'voc' else 'coco_stuff164k'
    return osp.join(str(out_dir), sub)


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


def run(cmd, cwd, env=None, timeout=900, expect_ok=True):
    """``cmd`` in a subprocess from ``cwd``, as a user runs it (the repository importable)."""
    env = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if expect_ok:
        assert proc.returncode == 0, (proc.stdout[-4000:] + '\n' + proc.stderr[-4000:])
    return proc


def train(cfg, work_dir, cwd, *options, extra=()):
    """``tools/train.py CFG --work-dir WORK_DIR [--cfg-options OPTIONS]``."""
    cmd = [sys.executable, osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, *extra]
    if options:
        cmd += ['--cfg-options', *options]
    return run(cmd, cwd)


def last_launch_scalars(work_dir):
    """The training rows and the validation rows (those with an mIoU) that mmengine's
    LocalVisBackend logged in the newest launch of the run in ``work_dir``."""
    paths = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    assert paths, f'no scalars.json under {work_dir}'
    with open(paths[-1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if 'mIoU' not in r], [r for r in rows if 'mIoU' in r]


def free_port():
    """A TCP port free on this machine now (torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
