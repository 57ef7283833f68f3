"""End to end, as users run it: the plugin's tools on synthetic data in the real layouts (CPU).

Each test runs ngl-mmseg's tools in a subprocess from a scratch folder holding
``data/synthetic/{voc,coco-stuff}`` (the ``workspace`` fixture), where the quickstart configs
look. The lab's tools end to end: ``tests/lab/test_lab_e2e.py``.
"""
import glob
import json
import os.path as osp
import shutil
import sys

import pytest
from helpers import COCO_CFG, TOOLS, VOC_CFG, free_port, last_launch_scalars, run, train

pytestmark = pytest.mark.slow  # minutes: training runs
MIOU_BAR = 50.0


def dumped_metrics(work_dir):
    """The metrics tools/test.py dumped (mmengine writes <timestamp>/<timestamp>.json)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    assert paths, f'no metrics json in {work_dir}'
    with open(paths[-1]) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def voc_run(workspace):
    work_dir = workspace / 'work_dirs' / 'voc'
    train(VOC_CFG, work_dir, workspace)
    return work_dir


def test_voc_quickstart_trains_past_the_miou_bar(voc_run):
    _, val = last_launch_scalars(voc_run)
    assert len(val) == 4 and val[-1]['step'] == 1000
    assert val[-1]['mIoU'] >= MIOU_BAR, val
    assert osp.isfile(voc_run / 'iter_1000.pth')


def test_test_tool_reproduces_the_validation_miou(voc_run, workspace):
    out = workspace / 'work_dirs' / 'voc_test'
    run([sys.executable, osp.join(TOOLS, 'test.py'), VOC_CFG, voc_run / 'iter_1000.pth',
         '--work-dir', out], workspace)
    _, val = last_launch_scalars(voc_run)
    assert dumped_metrics(str(out))['mIoU'] == pytest.approx(val[-1]['mIoU'], abs=0.01)


def test_resume_continues_from_the_saved_iteration(voc_run, workspace):
    work_dir = workspace / 'work_dirs' / 'voc_resume'
    shutil.copytree(voc_run, work_dir)
    proc = train(VOC_CFG, work_dir, workspace, 'train_cfg.max_iters=1020',
                 'default_hooks.logger.interval=10', 'default_hooks.checkpoint.interval=20',
                 extra=['--resume'])
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 1000' in log
    assert osp.isfile(work_dir / 'iter_1020.pth')
    new_steps = [r['step'] for r in last_launch_scalars(work_dir)[0]]
    assert new_steps == [1010, 1020]


def test_load_from_a_checkpoint(voc_run, workspace):
    work_dir = workspace / 'work_dirs' / 'voc_load_from'
    proc = train(VOC_CFG, work_dir, workspace, f'load_from={voc_run / "iter_1000.pth"}',
                 'train_cfg.max_iters=10', 'train_cfg.val_interval=10',
                 'default_hooks.checkpoint.interval=10')
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
    _, val = last_launch_scalars(work_dir)
    assert val[-1]['mIoU'] >= MIOU_BAR  # starts from the trained weights


def test_coco_stuff_quickstart_trains_past_the_miou_bar(workspace):
    work_dir = workspace / 'work_dirs' / 'coco'
    train(COCO_CFG, work_dir, workspace)
    _, val = last_launch_scalars(work_dir)
    assert val[-1]['step'] == 500 and val[-1]['mIoU'] >= MIOU_BAR, val


def test_dist_train_two_cpu_processes_and_its_checkpoint_loads(workspace):
    work_dir = workspace / 'work_dirs' / 'voc_dist'
    options = ['--cfg-options', 'train_cfg.max_iters=20', 'train_cfg.val_interval=20',
               'default_hooks.checkpoint.interval=20', 'default_hooks.logger.interval=10']
    proc = run(['bash', osp.join(TOOLS, 'dist_train.sh'), VOC_CFG, 2, '--work-dir', work_dir,
                *options], workspace, env=dict(PORT=str(free_port())))
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and "backend='gloo'" in log
    assert osp.isfile(work_dir / 'iter_20.pth')
    out = workspace / 'work_dirs' / 'voc_dist_test'
    run([sys.executable, osp.join(TOOLS, 'test.py'), VOC_CFG, work_dir / 'iter_20.pth',
         '--work-dir', out], workspace)
    single = dumped_metrics(str(out))['mIoU']
    out2 = workspace / 'work_dirs' / 'voc_dist_test2'
    run(['bash', osp.join(TOOLS, 'dist_test.sh'), VOC_CFG, work_dir / 'iter_20.pth', 2,
         '--work-dir', out2], workspace, env=dict(PORT=str(free_port())))
    assert dumped_metrics(str(out2))['mIoU'] == pytest.approx(single, abs=0.01)


def test_train_tool_names_a_missing_data_root(tmp_path):
    proc = run([sys.executable, osp.join(TOOLS, 'train.py'), VOC_CFG, '--work-dir',
                tmp_path / 'wd'], tmp_path, expect_ok=False)
    assert proc.returncode != 0
    assert 'data_root does not exist: ' + str(tmp_path / 'data/synthetic/voc/VOCdevkit/VOC2012') \
        in proc.stderr


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(voc_run, workspace):
    work_dir = workspace / 'work_dirs' / 'voc_resume_broken'
    shutil.copytree(voc_run, work_dir)
    data = (work_dir / 'iter_1000.pth').read_bytes()
    (work_dir / 'iter_1000.pth').write_bytes(data[:len(data) // 3])  # a crash while saving
    # mmengine records the absolute path; the copy's record must name the copy's file.
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_1000.pth'))
    proc = train(VOC_CFG, work_dir, workspace, 'train_cfg.max_iters=510',
                 'default_hooks.logger.interval=10', 'default_hooks.checkpoint.interval=10',
                 extra=['--resume'])
    log = proc.stdout + proc.stderr
    assert 'the last checkpoint does not load' in log and 'iter_1000.pth' in log
    assert 'resumed epoch: 0, iter: 500' in log
    assert osp.isfile(work_dir / 'iter_510.pth')


@pytest.fixture
def checkpoint_missing_a_weight(voc_run, tmp_path):
    import torch

    from ngl_mmseg.compat import allow_checkpoint_globals
    allow_checkpoint_globals()  # as the tools do: else it loads only once another test did
    ckpt = torch.load(voc_run / 'iter_1000.pth', map_location='cpu', weights_only=True)
    del ckpt['state_dict']['decode_head.conv_seg.weight']
    broken = tmp_path / 'missing.pth'
    torch.save(ckpt, broken)
    return broken


def test_test_tool_refuses_a_checkpoint_with_missing_weights(checkpoint_missing_a_weight,
                                                             workspace, tmp_path):
    broken = checkpoint_missing_a_weight
    cmd = [sys.executable, osp.join(TOOLS, 'test.py'), VOC_CFG, broken, '--work-dir',
           tmp_path / 'out']
    proc = run(cmd, workspace, expect_ok=False)
    assert proc.returncode != 0
    assert 'decode_head.conv_seg.weight' in proc.stderr and '--non-strict' in proc.stderr
    run(cmd + ['--non-strict'], workspace)  # asked for: scored anyway


@pytest.mark.parametrize('variant,warns', [('plain', True), ('recipe', False)])
def test_guardrail_warns_on_plain_ngl_under_sgd_and_not_on_the_recipe(workspace, variant,
                                                                       warns):
    """171 classes, mmseg's SGD (lr 0.01): the paper's NGL does not move in 50
    iterations and the log says so; the recipe moves and the log stays quiet."""
    recipe = variant == 'recipe'
    loss = f"dict(_delete_=True, type='NGLLoss', auto_weight={recipe}, ce_warmup={0.1 * recipe})"
    config = workspace / f'guard_{variant}.py'
    config.write_text(
        f"_base_ = [{COCO_CFG!r}]\n"
        "optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9,"
        " weight_decay=0.0005))\n"
        f"model = dict(decode_head=dict(loss_decode={loss}),\n"
        f"             auxiliary_head=dict(loss_decode=dict({loss[5:-1]}, loss_weight=0.4)))\n")
    work_dir = workspace / 'work_dirs' / f'guard_{variant}'
    proc = train(config, work_dir, workspace, 'train_cfg.max_iters=60',
                 'train_cfg.val_interval=60', 'default_hooks.checkpoint.interval=60',
                 'default_hooks.logger.interval=10')
    log = proc.stdout + proc.stderr
    assert 'decode.ngl_progress' in log
    assert ('NGL is not learning' in log) == warns, log[-3000:]
