"""The lab's tools end to end, as a maintainer runs them: the comparison (one and two
processes), the study and the benchmark, on synthetic data in the real layouts (CPU)."""
import json
import os
import os.path as osp
import sys

import pytest
from helpers import COCO_CFG, TOOLS, VOC_CFG, make_dataset, run, train

pytestmark = pytest.mark.slow  # minutes: training runs


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
    from ngl_lab.presets import LOSS_PRESETS
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
    from ngl_lab.compare import training_panel
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
    from ngl_lab.compare import evaluate_checkpoint, last_checkpoint
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


@pytest.fixture(scope='module')
def checkpoint_missing_a_weight(workspace, tmp_path_factory):
    import torch

    import ngl_mmseg  # noqa: F401  (allow-lists the globals of mmengine's checkpoints)
    work_dir = workspace / 'work_dirs' / 'lab_short'
    train(VOC_CFG, work_dir, workspace, 'train_cfg.max_iters=10', 'train_cfg.val_interval=10',
          'default_hooks.checkpoint.interval=10')
    ckpt = torch.load(work_dir / 'iter_10.pth', map_location='cpu', weights_only=True)
    del ckpt['state_dict']['decode_head.conv_seg.weight']
    broken = tmp_path_factory.mktemp('broken') / 'missing.pth'
    torch.save(ckpt, broken)
    return broken


def test_comparison_evaluation_refuses_a_checkpoint_with_missing_weights(
        checkpoint_missing_a_weight, workspace, tmp_path, monkeypatch):
    """compare's evaluation loads as strictly as tools/test.py: no score for a
    half-initialised model."""
    from ngl_lab.compare import evaluate_checkpoint
    monkeypatch.chdir(workspace)  # the config's data_root is relative
    with pytest.raises(RuntimeError, match='decode_head.conv_seg.weight'):
        evaluate_checkpoint(VOC_CFG, str(checkpoint_missing_a_weight), str(tmp_path))
    assert not (tmp_path / 'eval_metrics.json').exists()


def test_study_tool_tiny_grid_with_a_pretrained_backbone(workspace):
    """tools/study_ngl.py end to end: CE pretraining on other scenes, then two
    variants from that backbone; the table, the curves and the JSON."""
    other = workspace / 'data' / 'synthetic' / 'coco-other'
    make_dataset('coco-stuff', other, '--num-train', 8, '--num-val', 4, '--seed', 7)
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
    """tools/benchmark_loss.py (python -m ngl_lab.benchmark) on one
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
