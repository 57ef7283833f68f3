"""End to end, as users run it: the tools on synthetic data in the real layouts (CPU).

Each test runs ngl-mmseg's tools in a subprocess from a scratch folder holding
``data/synthetic/{voc,coco-stuff}``, where the quickstart configs look.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from helpers import COCO_CFG, REPO, TOOLS, VOC_CFG

from ngl_mmseg.experiments.compare import read_scalars
from ngl_mmseg.experiments.runs import free_port
from ngl_mmseg.experiments.synthetic import make_coco_stuff, make_voc

pytestmark = pytest.mark.slow  # minutes: training runs
MIOU_BAR = 50.0


@pytest.fixture(scope='session')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('workspace')
    make_voc(str(root / 'data' / 'synthetic' / 'voc'))
    make_coco_stuff(str(root / 'data' / 'synthetic' / 'coco-stuff'))
    return root


def run(cmd, cwd, env=None, timeout=900, expect_ok=True):
    env = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if expect_ok:
        assert proc.returncode == 0, (proc.stdout[-4000:] + '\n' + proc.stderr[-4000:])
    return proc


def train(cfg, work_dir, cwd, *options, extra=()):
    cmd = [sys.executable, osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, *extra]
    if options:
        cmd += ['--cfg-options', *options]
    return run(cmd, cwd)


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
    _, val = read_scalars(str(voc_run))
    assert len(val) == 4 and val[-1]['step'] == 1000
    assert val[-1]['mIoU'] >= MIOU_BAR, val
    assert osp.isfile(voc_run / 'iter_1000.pth')


def test_test_tool_reproduces_the_validation_miou(voc_run, workspace):
    out = workspace / 'work_dirs' / 'voc_test'
    run([sys.executable, osp.join(TOOLS, 'test.py'), VOC_CFG, voc_run / 'iter_1000.pth',
         '--work-dir', out], workspace)
    _, val = read_scalars(str(voc_run))
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
    new_steps = [r['step'] for r in read_scalars(str(work_dir))[0] if r['step'] > 1000]
    assert new_steps == [1010, 1020]


def test_load_from_a_checkpoint(voc_run, workspace):
    work_dir = workspace / 'work_dirs' / 'voc_load_from'
    proc = train(VOC_CFG, work_dir, workspace, f'load_from={voc_run / "iter_1000.pth"}',
                 'train_cfg.max_iters=10', 'train_cfg.val_interval=10',
                 'default_hooks.checkpoint.interval=10')
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
    _, val = read_scalars(str(work_dir))
    assert val[-1]['mIoU'] >= MIOU_BAR  # starts from the trained weights


def test_coco_stuff_quickstart_trains_past_the_miou_bar(workspace):
    work_dir = workspace / 'work_dirs' / 'coco'
    train(COCO_CFG, work_dir, workspace)
    _, val = read_scalars(str(work_dir))
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


def test_compare_losses_tiny_run(workspace):
    work_dir = workspace / 'work_dirs' / 'compare'
    proc = run([sys.executable, osp.join(TOOLS, 'compare_losses.py'), COCO_CFG, '--losses',
                'ce', 'ngl', "ngl_a2={'type': 'NGLLoss', 'alpha': 2.0}", '--work-dir', work_dir,
                '--num-samples', '2', '--cfg-options', 'train_cfg.max_iters=20',
                'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=20',
                'default_hooks.logger.interval=10'], workspace)
    with open(work_dir / 'report.json') as f:
        report = json.load(f)
    assert [r['name'] for r in report] == ['ce', 'ngl', 'ngl_a2']
    assert [r['losses'][0]['type'] for r in report] == ['CrossEntropyLoss', 'NGLLoss', 'NGLLoss']
    assert report[2]['losses'][0]['alpha'] == 2.0
    for r in report:
        assert 0 <= r['mIoU'] <= 100 and r['train_seconds'] > 0
        assert [row['step'] for row in r['val']] == [10, 20]
        assert any(v is not None for v in r['per_class_iou'].values())
    # The variants' configs differ only in the losses; each head keeps its weight.
    from mmengine.config import Config
    ce_cfg, ngl_cfg = (Config.fromfile(r['config']) for r in report[:2])
    from ngl_mmseg.experiments.presets import LOSS_PRESETS
    recipe = LOSS_PRESETS['ngl'][0]
    assert recipe['type'] == 'NGLLoss' and recipe['auto_weight']
    assert ngl_cfg.model.decode_head.loss_decode == dict(recipe, loss_weight=1.0)
    assert ngl_cfg.model.auxiliary_head.loss_decode == dict(recipe, loss_weight=0.4)
    assert ngl_cfg.custom_hooks == [dict(type='NGLMonitorHook')]
    assert ce_cfg.model.auxiliary_head.loss_decode.loss_weight == 0.4
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'randomness'):
        assert ce_cfg[key] == ngl_cfg[key], key
    for name in ('curves.png', 'predictions.png', 'report.md'):
        assert os.path.getsize(work_dir / name) > 1000
    md = open(work_dir / 'report.md').read()
    assert '| ce | CrossEntropyLoss(1) |' in md and '| ngl | NGLLoss(1) |' in md
    # The NGL variant's panel is its progress (and the CE share), not the weighted loss.
    from ngl_mmseg.experiments.compare import training_panel
    panel = training_panel(report[1]['train'], report[1]['losses'])
    assert panel['title'].startswith('NGL progress')
    assert [label for label, _, _ in panel['series']] == ['NGL progress', 'CE share of the loss']
    assert training_panel(report[0]['train'], report[0]['losses'])['title'] == 'training loss'
    assert '- ngl: NGL recipe: auto_weight (the CE-matched weight), ce_warmup=0.1' in md
    assert '| variant | losses | mIoU | mAcc | aAcc | train time |' in proc.stdout
    # A person sees progress and the table, not mmengine's logs (those go to files).
    assert len(proc.stdout.splitlines()) <= 60, proc.stdout
    assert 'Iter(train)' not in proc.stdout
    assert 'Iter(train)' in open(work_dir / 'ngl' / 'train.log').read()


def test_compare_with_two_processes_trains_and_evaluates_in_both(workspace):
    """--gpus 2: training and evaluation both run under torchrun (here 2 CPU
    processes, gloo); the distributed evaluation scores every validation image
    once, so it equals a one-process evaluation of the same checkpoint."""
    work_dir = workspace / 'work_dirs' / 'compare-2proc'
    run([sys.executable, osp.join(TOOLS, 'compare_losses.py'), VOC_CFG, '--losses', 'ngl',
         '--gpus', '2', '--work-dir', work_dir, '--num-samples', '1', '--cfg-options',
         'train_cfg.max_iters=10', 'train_cfg.val_interval=10',
         'default_hooks.checkpoint.interval=10'], workspace)
    with open(work_dir / 'ngl' / 'eval_metrics.json') as f:
        two = json.load(f)
    assert two['world_size'] == 2
    from ngl_mmseg.experiments.compare import evaluate_checkpoint, last_checkpoint
    one_dir = workspace / 'work_dirs' / 'compare-1proc'
    one_dir.mkdir()
    cwd = os.getcwd()
    os.chdir(workspace)  # the config's data_root is relative
    try:
        one = evaluate_checkpoint(str(work_dir / 'ngl' / 'ngl_config.py'),
                       last_checkpoint(str(work_dir / 'ngl')), str(one_dir))
    finally:
        os.chdir(cwd)
    assert one['world_size'] == 1
    for key in ('mIoU', 'mAcc', 'aAcc'):
        assert abs(one[key] - two[key]) < 1e-6, (key, one[key], two[key])
    assert one['per_class_iou'] == two['per_class_iou']
    with open(work_dir / 'report.json') as f:
        assert json.load(f)[0]['mIoU'] == two['mIoU']


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


def test_comparison_evaluation_refuses_a_checkpoint_with_missing_weights(
        checkpoint_missing_a_weight, workspace, tmp_path, monkeypatch):
    """compare's evaluation loads as strictly as tools/test.py: no score for a
    half-initialised model."""
    from ngl_mmseg.experiments.compare import evaluate_checkpoint
    monkeypatch.chdir(workspace)  # the config's data_root is relative
    with pytest.raises(RuntimeError, match='decode_head.conv_seg.weight'):
        evaluate_checkpoint(VOC_CFG, str(checkpoint_missing_a_weight), str(tmp_path))
    assert not (tmp_path / 'eval_metrics.json').exists()


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


def test_study_tool_tiny_grid_with_a_pretrained_backbone(workspace):
    """tools/study_ngl.py end to end: CE pretraining on other scenes, then two
    variants from that backbone; the table, the curves and the JSON."""
    other = workspace / 'data' / 'synthetic' / 'coco-other'
    make_coco_stuff(str(other), num_train=8, num_val=4, seed=7)
    work_dir = workspace / 'work_dirs' / 'study'
    proc = run([sys.executable, osp.join(TOOLS, 'study_ngl.py'), COCO_CFG, '--variants', 'ce',
                'ngl', '--optimizers', 'sgd', '--seeds', '0', '--iters', '8',
                '--pretrain-iters', '4', '--pretrain-data-root', other / 'coco_stuff164k',
                '--work-dir', work_dir, '--title', 'tiny', '--regime', 'pretrained',
                '--train-miou'], workspace)
    with open(work_dir / 'study.json') as f:
        study = json.load(f)
    assert [(r['variant'], r['optimizer']) for r in study['rows']] == [('ce', 'sgd'),
                                                                        ('ngl', 'sgd')]
    for run_ in study['runs']:
        assert [step for step, _ in run_['curve']] == [2, 4, 6, 8]
        # scored on the training labels at every validation too
        assert [step for step, _ in run_['train_curve']] == [2, 4, 6, 8]
        assert all(0 <= v <= 100 for _, v in run_['train_curve'])
        assert run_['regime'] == 'pretrained'
        assert 'Pretrained' in open(osp.join(run_['work_dir'], 'config.py')).read()
        assert 'backbone.' in open(osp.join(run_['work_dir'], 'train.log')).read()
    assert os.path.getsize(work_dir / 'study.png') > 1000
    assert '| pretrained | ngl | sgd |' in open(work_dir / 'study.md').read()
    # run again into the same folder: refused, nothing mixed into the results
    again = run([sys.executable, osp.join(TOOLS, 'study_ngl.py'), COCO_CFG, '--variants', 'ce',
                 '--optimizers', 'sgd', '--iters', '8', '--work-dir', work_dir], workspace,
                expect_ok=False)
    assert again.returncode == 2 and 'already holds a run' in again.stderr
    assert len(proc.stdout.splitlines()) <= 20, proc.stdout


def test_benchmark_tool_writes_table_json_and_plot(tmp_path):
    """tools/benchmark_loss.py (python -m ngl_mmseg.experiments.benchmark) on one
    shape, one NGL path: CE is the baseline of the ratios, the files are written."""
    proc = run([sys.executable, osp.join(TOOLS, 'benchmark_loss.py'), '--shapes', 'voc',
                '--only', 'ngl-torch', '--repeats', '1', '--warmup', '0', '--out-dir',
                tmp_path / 'bench'], tmp_path)
    assert '| voc 2x21x512x512 | ce |' in proc.stdout
    assert '| voc 2x21x512x512 | ngl-torch |' in proc.stdout
    assert sorted(os.listdir(tmp_path / 'bench')) == ['benchmark.json', 'benchmark.md',
                                                      'benchmark.png']
    with open(tmp_path / 'bench' / 'benchmark.json') as f:
        rows = json.load(f)
    text = json.dumps(rows)
    assert 'ngl-torch' in text and 'ngl-literal' not in text
