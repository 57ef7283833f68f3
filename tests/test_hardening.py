"""Adversarial input to the experiment tools, the monitor, the warm-ups and the loss
(issue 17): each case failed, or gave a silently wrong number, before it was fixed."""
import json
import math
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from impls import ALL_IMPLS
from mmengine.logging import MessageHub
from mmseg.models.decode_heads import FCNHead
from reference import ref_loss
from test_decode_head import batch

import ngl_mmseg  # noqa: F401
from ngl_mmseg import NGLLoss, ngl_loss, ngl_pixel_loss
from ngl_mmseg.experiments import compare, study
from ngl_mmseg.experiments.presets import parse_loss_spec, parse_loss_specs
from ngl_mmseg.experiments.runs import check_fresh_run_dir, read_scalars
from ngl_mmseg.hooks import NGLMonitorHook
from ngl_mmseg.losses.recipe import default_target_bias, ngl_progress

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VOC_CFG = osp.join(REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py')
INJECTION = ("a'+str(__import__('os').system('touch PWNED'))+'={'type': 'NGLLoss', "
             "'loss_name': 'loss_{{ fileDirname }}'}")


# --- 1. a variant's name runs no code and stays inside the work dir ------------------------

@pytest.mark.parametrize('spec, message', [
    (INJECTION, 'variant name'),
    ("../../x={'type': 'NGLLoss'}", 'variant name'),
    ("/tmp/x={'type': 'NGLLoss'}", 'variant name'),
    ("..={'type': 'NGLLoss'}", 'variant name'),
    ("ok={'type': 'NGLLoss', 'loss_name': 'loss_{{ fileDirname }}'}", 'template marker'),
    ("ok={'type': 'NGLLoss', '{{x}}': 1}", 'template marker'),
])
def test_variant_names_and_dicts_are_refused_when_unsafe(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)


@pytest.mark.parametrize('tool', ['compare', 'study'])
def test_tools_refuse_an_injected_variant_before_writing_anything(tmp_path, tool):
    flag = '--losses' if tool == 'compare' else '--variants'
    cmd = [sys.executable, '-m', f'ngl_mmseg.experiments.{tool}', VOC_CFG, flag, 'ce',
           INJECTION, '--work-dir', str(tmp_path / 'work')]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and 'variant name' in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / 'PWNED').exists() and not (tmp_path / 'work').exists()


# --- 2. a results table comes from exactly the runs it names -------------------------------

def test_repeated_variants_seeds_and_optimizers_are_refused():
    with pytest.raises(ValueError, match="variant 'ce' is named more than once"):
        parse_loss_specs(['ce', 'ce'])
    with pytest.raises(ValueError, match="variant 'x' is named more than once"):
        parse_loss_specs(["x={'type': 'NGLLoss'}", "x={'type': 'NGLLoss', 'alpha': 2.0}"])
    with pytest.raises(ValueError, match='seed 0 is given more than once'):
        study.check_study_args(['ce'], ['sgd'], [0, 0])
    with pytest.raises(ValueError, match="optimizer 'sgd' is given more than once"):
        study.check_study_args(['ce'], ['sgd', 'sgd'], [0])


def fake_run(run_dir, stamp='20260101_000000', rows=({'step': 4, 'mIoU': 50.0}, )):
    vis = osp.join(run_dir, stamp, 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in rows))


def test_a_folder_holding_a_run_is_refused_and_read_as_one_run(tmp_path):
    check_fresh_run_dir(str(tmp_path / 'new'))  # nothing there: fine
    fake_run(str(tmp_path / 'ce_sgd_seed0'))
    with pytest.raises(FileExistsError, match='already holds a run'):
        check_fresh_run_dir(str(tmp_path / 'ce_sgd_seed0'))
    with pytest.raises(FileExistsError, match='already holds a run'):
        study.study(VOC_CFG, ['ce'], seeds=[0], work_dir=str(tmp_path), iters=4)

def test_scalars_of_a_resumed_run_continue_and_a_restarted_one_replaces(tmp_path):
    run_dir = str(tmp_path / 'run')
    fake_run(run_dir, rows=[{'step': s, 'loss': 1.0} for s in (1, 2, 3, 4)] +
             [{'step': 4, 'mIoU': 40.0}])
    fake_run(run_dir, stamp='20260102_000000', rows=[{'step': 5, 'loss': 0.5},
                                                     {'step': 6, 'mIoU': 60.0}])
    train, val = read_scalars(run_dir)  # --resume from iteration 4
    assert [r['step'] for r in train] == [1, 2, 3, 4, 5] and [r['step'] for r in val] == [4, 6]
    fake_run(run_dir, stamp='20260103_000000', rows=[{'step': 1, 'loss': 2.0},
                                                     {'step': 2, 'mIoU': 10.0}])
    train, val = read_scalars(run_dir)  # started again from the beginning: only that run
    assert train == [{'step': 1, 'loss': 2.0}] and val == [{'step': 2, 'mIoU': 10.0}]


def test_compare_refuses_a_variant_folder_that_holds_a_run(tmp_path):
    fake_run(str(tmp_path / 'ce'))
    with pytest.raises(FileExistsError, match='already holds a run'):
        compare.compare(VOC_CFG, ['ngl', 'ce'], work_dir=str(tmp_path))
    assert not (tmp_path / 'ngl').exists()  # refused before the first variant trained


def write_study(path, runs):
    os.makedirs(path, exist_ok=True)
    with open(osp.join(path, 'study.json'), 'w') as f:
        json.dump(dict(config='c.py', title='', rows=[], runs=runs), f)


def test_merge_counts_every_run_once(tmp_path):
    run = dict(variant='ce', optimizer='sgd', seed=0, curve=[[4, 50.0]], seconds=1.0)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_study(a, [run])
    write_study(b, [dict(run, seed=1)])
    with pytest.raises(ValueError, match='named twice'):
        study.merge(str(tmp_path / 'm'), [a, a])
    with pytest.raises(ValueError, match='is one of the merged studies'):
        study.merge(a, [a, b])
    write_study(str(tmp_path / 'c'), [run])
    with pytest.raises(ValueError, match='appears in more than one merged study'):
        study.merge(str(tmp_path / 'm'), [a, str(tmp_path / 'c')])
    rows = study.merge(str(tmp_path / 'm'), [a, b])
    assert len(rows) == 1 and rows[0]['final_miou'] == [50.0, 50.0]
    with open(osp.join(a, 'study.json')) as f:
        assert len(json.load(f)['runs']) == 1  # the source is untouched


def test_merged_regimes_are_rows_of_their_own(tmp_path):
    run = dict(variant='ce', optimizer='adamw', seed=0, curve=[[4, 50.0]], seconds=1.0)
    write_study(str(tmp_path / 'clean'), [dict(run, regime='clean')])
    write_study(str(tmp_path / 'noisy'), [dict(run, regime='uniform-40', curve=[[4, 30.0]])])
    rows = study.merge(str(tmp_path / 'm'), [str(tmp_path / 'clean'), str(tmp_path / 'noisy')])
    assert [(r['regime'], r['mean']) for r in rows] == [('clean', 50.0), ('uniform-40', 30.0)]
    table = open(tmp_path / 'm' / 'study.md').read()
    assert '| regime |' in table and '| uniform-40 | ce | adamw | 30.00' in table
    assert '| clean | adamw | 50.0 ± 0.0 |' in table  # the by-regime table


# --- 3. the monitor reads the mean over the pixels actually summed --------------------------

@pytest.mark.parametrize('setting', ['ohem', 'avg_non_ignore=False'])
def test_monitor_progress_is_zero_at_chance_with_ohem_or_all_pixel_averaging(setting):
    feats, samples = batch(size=(32, 32))
    for s in samples:  # a quarter of the pixels ignored
        s.gt_sem_seg.data[:, :8] = 255
    loss_cfg = dict(type='NGLLoss', avg_non_ignore=setting != 'avg_non_ignore=False')
    sampler = dict(type='OHEMPixelSampler', min_kept=200) if setting == 'ohem' else None
    torch.manual_seed(0)
    head = FCNHead(in_channels=8, channels=8, num_convs=1, num_classes=6,
                   loss_decode=loss_cfg, sampler=sampler, norm_cfg=None)
    torch.nn.init.zeros_(head.conv_seg.weight)  # logits 0: every pixel at chance
    torch.nn.init.zeros_(head.conv_seg.bias)
    head.train()
    head.loss_by_feat(head.forward(feats), samples)
    loss = head.loss_decode
    assert abs(ngl_progress(float(loss.last_value), 6)) < 1e-4


# --- 4. ignored pixels contribute nothing on every path, warm-ups included ------------------

@pytest.mark.parametrize('warmup', [dict(ce_warmup=0.1), dict(target_bias_warmup=0.1),
                                    dict(ce_warmup=0.1, target_bias_warmup=0.1)])
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_warmups_keep_nan_logits_of_ignored_pixels_out_of_the_gradient(warmup, bad):
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 100)
    hub.update_info('iter', 0)
    try:
        label = torch.randint(0, 7, (2, 8, 12))
        label[:, :3] = 255
        logits = torch.randn(2, 7, 8, 12)
        logits[:, :, :3] = bad
        logits.requires_grad_(True)
        loss = NGLLoss(impl='torch', auto_weight=True, **warmup)
        loss.train()
        value = loss(logits, label)
        value.backward()
        assert math.isfinite(value.item())
        assert torch.isfinite(logits.grad).all()
        assert (logits.grad[:, :, :3] == 0).all()
    finally:
        hub.update_info('iter', None)


def test_target_bias_warmup_is_ngl_at_shifted_logits_and_ends_with_the_warmup():
    logits = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    label = torch.randint(0, 5, (2, 4, 4))
    label[0, 0, 0] = 255
    hub = MessageHub.get_instance('test_bias_warmup')
    hub.update_info('max_iters', 1000)
    loss = NGLLoss(impl='torch', target_bias_warmup=0.1)
    start = default_target_bias(5)  # where NGL's gradient is steepest
    for it, share in ((0, 1.0), (50, 0.5), (100, 0.0)):
        hub.update_info('iter', it)
        shifted = logits.clone()
        for n, y, x in zip(*torch.nonzero(label != 255, as_tuple=True)):
            shifted[n, label[n, y, x], y, x] += share * start
        assert loss(logits, label).item() == pytest.approx(ref_loss(shifted, label).item(),
                                                           rel=1e-9), it
        # what the monitor reads: NGL at the model's own logits
        assert float(loss.last_value) == pytest.approx(ref_loss(logits, label).item(), rel=1e-9)


# --- 5. the monitor's arguments ------------------------------------------------------------

@pytest.mark.parametrize('kwargs, message', [
    (dict(window=-5), 'window must be a positive integer'),
    (dict(window='20'), 'window must be a positive integer'),
    (dict(min_progress='0.05'), 'min_progress must be a number'),
    (dict(min_progress=float('nan')), 'min_progress must be a number'),
    (dict(check_iter=0), 'check_iter must be a positive integer'),
    (dict(check_iter=-3), 'check_iter must be a positive integer'),
    (dict(check_iter='100'), 'check_iter must be a positive integer'),
])
def test_monitor_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NGLMonitorHook(**kwargs)


def test_monitor_names_a_nan_loss_as_nan():
    from test_training_recipe import _FakeRunner, _head_with_loss
    loss = NGLLoss(impl='torch')
    loss.last_num_classes = 21
    message = NGLMonitorHook.stuck_message(_FakeRunner(_head_with_loss(loss)), loss,
                                           float('nan'))
    assert 'NaN or inf' in message and 'smaller than cross entropy' not in message


def test_monitor_warning_names_float16_when_the_run_uses_it():
    from test_training_recipe import _FakeRunner, _head_with_loss
    loss = NGLLoss(impl='torch')
    loss.last_num_classes = 171
    runner = _FakeRunner(_head_with_loss(loss))
    assert 'float16' not in NGLMonitorHook.stuck_message(runner, loss, 0.0)
    amp = type('AmpOptimWrapper', (), {'optimizer': runner.optim_wrapper.optimizer,
                                       'cast_dtype': None})
    runner.optim_wrapper = amp()
    message = NGLMonitorHook.stuck_message(runner, loss, 0.0)
    assert 'float16' in message and 'bfloat16' in message
    runner.optim_wrapper.cast_dtype = torch.bfloat16
    assert 'flushes to zero' not in NGLMonitorHook.stuck_message(runner, loss, 0.0)


# --- 6. the tools check every argument before the first run --------------------------------

def assert_refused_before_writing(tmp_path, tool, args, message):
    """``python -m ngl_mmseg.experiments.<tool> CONFIG ARGS`` exits with a usage error
    naming ``message`` and writes nothing."""
    cmd = [sys.executable, '-m', f'ngl_mmseg.experiments.{tool}', VOC_CFG, *args,
           '--work-dir', str(tmp_path / 'w')]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('args, message', [
    (['--losses', 'ce', 'bogus'], "unknown loss preset 'bogus'"),
    (['--losses', 'ce', 'ce'], 'named more than once'),
    (['--gpus', '0'], 'gpus must be an integer >= 1'),
    (['--num-samples', '-1'], 'num_samples must be an integer >= 0'),
])
def test_compare_refuses_bad_arguments_before_training(tmp_path, args, message):
    assert_refused_before_writing(tmp_path, 'compare', args, message)


@pytest.mark.parametrize('args, message', [
    (['--iters', '0'], 'iters must be an integer >= 1'),
    (['--iters', '-4'], 'iters must be an integer >= 1'),
    (['--seeds', '0', '0'], 'seed 0 is given more than once'),
    (['--seeds', '-1'], 'seed must be an integer >= 0'),
    (['--variants', 'ce', 'bogus'], "unknown loss preset 'bogus'"),
    (['--optimizers', 'sgd', 'lion'], "unknown optimizer 'lion'"),
])
def test_study_refuses_bad_arguments_before_training(tmp_path, args, message):
    assert_refused_before_writing(tmp_path, 'study', args, message)


# --- 7. ignore_index: integers in int32's range only, on every path -------------------------

@pytest.mark.parametrize('impl', ALL_IMPLS)
@pytest.mark.parametrize('ignore_index, message', [
    (2**40, 'outside the int32 range'), (-2**31 - 1, 'outside the int32 range'),
    (3.5, 'must be an integer'), ('255', 'must be an integer'), (True, 'must be an integer'),
])
def test_ignore_index_must_be_an_int32_integer(impl, ignore_index, message):
    logits = torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 4, (2, 3, 3))
    with pytest.raises(ValueError, match=message):
        ngl_loss(logits, label, ignore_index=ignore_index, impl=impl)
    with pytest.raises(ValueError, match='ignore_index must be an integer'):
        ngl_pixel_loss(logits, label, ignore_index=ignore_index, impl=impl)


@pytest.mark.parametrize('impl', ALL_IMPLS)
def test_labels_beyond_int32_are_refused_not_wrapped(impl):
    logits = torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 4, (2, 3, 3))
    label[0, 0, 0] = 2**32 + 1  # int32 would wrap it into class 1
    with pytest.raises(ValueError, match=r'label holds values \[4294967297\]'):
        ngl_loss(logits, label, impl=impl)
    label[0, 0, 0] = 2**40
    with pytest.raises(ValueError, match='outside'):
        ngl_loss(logits, label, ignore_index=255, impl=impl)


# --- 8. class weights: 1-D finite real numbers >= 0, bounded, the file named ----------------

def pkl(tmp_path, obj=None, raw=None):
    path = str(tmp_path / 'w.pkl')
    with open(path, 'wb') as f:
        f.write(raw if raw is not None else pickle.dumps(obj))
    return path


def npy(tmp_path, array):
    path = str(tmp_path / 'w.npy')
    np.save(path, array)
    return path


RECONSTRUCT = (b'cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I%d\ntS"b"\ntR.')


@pytest.mark.parametrize('make, message', [
    (lambda t: pkl(t, np.array(['1', 'nan', '1e400'], dtype=object)), 'not real numbers'),
    (lambda t: pkl(t, ['1', '2']), "'1' \\(str\\), not a real number"),
    (lambda t: pkl(t, [True, False]), 'not a real number'),
    (lambda t: pkl(t, [10**400, 1]), 'too large for a float'),
    (lambda t: pkl(t, [1.0, float('nan')]), 'finite and >= 0'),
    (lambda t: pkl(t, [1.0, -2.0]), 'finite and >= 0'),
    (lambda t: pkl(t, np.zeros((3, 7))), 'not a 1-D list'),
    (lambda t: pkl(t, np.array([1 + 2j, 3])), 'not (a plain )?real'),
    (lambda t: pkl(t, {'a': 1}), 'dict, not a list'),
    (lambda t: pkl(t, raw=RECONSTRUCT % 10_000_000), 'at most 65536 entries'),
    (lambda t: pkl(t, raw=RECONSTRUCT % 10**12), 'at most 65536 entries'),
    (lambda t: pkl(t, raw=b'\x80\x04K'), 'cannot load'),
    (lambda t: npy(t, np.array(['2026-01-01'], dtype='datetime64[D]')), 'not real numbers'),
    (lambda t: npy(t, np.array([1 + 2j])), 'not real numbers'),
    (lambda t: npy(t, np.array([True, False])), 'not real numbers'),
    (lambda t: npy(t, np.zeros((3, 7))), 'not a 1-D list'),
])
def test_class_weight_files_that_are_not_real_weights_are_refused_naming_the_file(
        tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        NGLLoss(class_weight=path)
    assert repr(path) in str(info.value)


def test_a_npy_header_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    path = str(tmp_path / 'huge.npy')
    with open(path, 'wb') as f:
        np.lib.format.write_array_header_1_0(
            f, dict(descr='<f8', fortran_order=False, shape=(125_000_000_000, )))
    with pytest.raises(ValueError, match='at most 65536 class weights') as info:
        NGLLoss(class_weight=path)
    assert repr(path) in str(info.value)


def test_class_weight_lists_are_checked_when_the_loss_is_built():
    with pytest.raises(ValueError, match='class_weight must be a 1-D list'):
        NGLLoss(class_weight=[1.0, 'x'])
    with pytest.raises(ValueError, match='class_weight must be a 1-D list'):
        NGLLoss(class_weight=[[1.0, 2.0]])
    loss = NGLLoss(class_weight=np.array([1, 2, 3], dtype=np.int64))
    assert loss.class_weight == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match='3 class weights but the head predicts 4'):
        loss(torch.randn(2, 4, 3, 3), torch.randint(0, 4, (2, 3, 3)))


# --- 9. messages that say what to do ---------------------------------------------------------

@pytest.mark.parametrize('kwargs, message', [
    (dict(alpha=100.0), r'alpha must be a number in \[-20.0, 20.0\]'),
    (dict(alpha=float('nan')), 'alpha must be a number'),
    (dict(scaling='False'), 'scaling must be True or False'),
    (dict(avg_non_ignore='no'), 'avg_non_ignore must be True or False'),
    (dict(auto_weight=1), 'auto_weight must be True or False'),
    (dict(use_sigmoid='False'), 'use_sigmoid must be True or False'),
    (dict(target_bias_warmup=0.5), r'target_bias_warmup .* \[0, 0.1\]'),
])
def test_loss_arguments_are_checked_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NGLLoss(**kwargs)


@pytest.mark.parametrize('gpus', ['', '0', 'two', '-1'])
def test_dist_scripts_say_what_gpus_must_be(gpus):
    for script, args in (('dist_train.sh', [VOC_CFG, gpus]),
                         ('dist_test.sh', [VOC_CFG, 'ckpt.pth', gpus])):
        out = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert 'GPUS must be a positive integer' in out.stderr and 'usage:' in out.stderr


def test_train_tool_says_a_folder_is_not_a_config(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'ngl_mmseg.cli.train', str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and 'is a directory; name a config file' in out.stderr


def test_setup_script_outside_a_checkout_says_so(tmp_path):
    os.makedirs(tmp_path / 'tools')
    script = tmp_path / 'tools' / 'setup_env.sh'
    script.write_text(open(osp.join(REPO, 'tools', 'setup_env.sh')).read())
    out = subprocess.run(['bash', str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and 'sets up a checkout of the ngl-mmseg repository' in out.stderr
    assert not (tmp_path / '.venv').exists()


def test_the_ngl_mmseg_scope_does_not_claim_it_is_not_installed():
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    from ngl_mmseg.registry import HOOKS
    logged = []
    logger = MMLogger.get_current_instance()
    handler = type('H', (__import__('logging').Handler, ), {
        'emit': lambda self, record: logged.append(record.getMessage())})()
    logger.addHandler(handler)
    try:
        with DefaultScope.overwrite_default_scope('ngl_mmseg'):
            HOOKS._imported = False
            assert HOOKS.get('NGLMonitorHook') is NGLMonitorHook
    finally:
        logger.removeHandler(handler)
    assert not [m for m in logged if 'is not installed' in m]
