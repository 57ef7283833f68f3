"""What NGLLoss accepts: its arguments (checked when it is built, with a message saying what to
pass), ``ignore_index`` and labels within int32's range on every implementation, class-weight
files and lists that are 1-D finite real weights (bounded while loading, the file named, loaded
in their own module), and NaN or inf logits of ignored pixels through both warm-ups; the
target-bias warm-up's value (in float32, and at few classes); the monitor's ``min_progress``;
one warm-up function and type hints on the public API; the docs that state what the code
computes."""
import importlib
import inspect
import math
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from helpers import REPO
from impls import ALL_IMPLS
from reference import ref_loss

import ngl_mmseg
from ngl_mmseg import NGLLoss, ngl_loss, ngl_pixel_loss
from ngl_mmseg.hooks import NGLMonitorHook
from ngl_mmseg.losses import recipe
from ngl_mmseg.losses.recipe import default_target_bias
from ngl_mmseg.ops import poly, resolve_impl

# --- the arguments ----------------------------------------------------------------------------


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


def test_target_bias_without_its_warmup_is_refused():
    with pytest.raises(ValueError, match=r'target_bias=2.0 .*\(target_bias_warmup=0\)'):
        NGLLoss(target_bias=2.0)
    NGLLoss(target_bias=2.0, target_bias_warmup=0.1)  # with its warm-up: fine


@pytest.mark.parametrize('min_progress', [-1, -0.01, 1, 1.0, 5])
def test_monitor_refuses_a_min_progress_outside_0_1(min_progress):
    with pytest.raises(ValueError, match=r'min_progress=.* outside \[0, 1\)'):
        NGLMonitorHook(min_progress=min_progress)


def test_monitor_takes_a_min_progress_in_0_1():
    for value in (0, 0.05, 0.5, 0.99):
        assert NGLMonitorHook(min_progress=value).min_progress == value


# --- ignore_index: integers in int32's range only, on every path -----------------------------

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


# --- class weights: 1-D finite real numbers >= 0, bounded, the file named ---------------------

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


def test_class_weight_loading_lives_in_its_own_module():
    from ngl_mmseg.losses import class_weight, utils
    assert utils.load_class_weight is class_weight.load_class_weight  # re-exported until 0.6.0
    assert not hasattr(utils, '_ArrayUnpickler') and hasattr(class_weight, '_ArrayUnpickler')
    assert class_weight.load_class_weight([1, 2.5]) == [1.0, 2.5]


# --- the warm-ups: ignored pixels contribute nothing; the bias warm-up's value ----------------

@pytest.mark.parametrize('warmup', [dict(ce_warmup=0.1), dict(target_bias_warmup=0.1),
                                    dict(ce_warmup=0.1, target_bias_warmup=0.1)])
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_warmups_keep_nan_logits_of_ignored_pixels_out_of_the_gradient(warmup, bad,
                                                                       message_hub):
    message_hub.update_info('max_iters', 100)
    message_hub.update_info('iter', 0)
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


def test_target_bias_warmup_is_ngl_at_shifted_logits_and_ends_with_the_warmup(message_hub):
    logits = torch.randn(2, 8, 4, 4, dtype=torch.float64)  # (at 6 classes or fewer the
    label = torch.randint(0, 8, (2, 4, 4))                  # default bias is 0: refused)
    label[0, 0, 0] = 255
    message_hub.update_info('max_iters', 1000)
    loss = NGLLoss(impl='torch', target_bias_warmup=0.1)
    start = default_target_bias(8)  # where NGL's gradient is steepest
    assert start > 0
    for it, share in ((0, 1.0), (50, 0.5), (100, 0.0)):
        message_hub.update_info('iter', it)
        shifted = logits.clone()
        for n, y, x in zip(*torch.nonzero(label != 255, as_tuple=True)):
            shifted[n, label[n, y, x], y, x] += share * start
        assert loss(logits, label).item() == pytest.approx(ref_loss(shifted, label).item(),
                                                           rel=1e-9), it
        # what the monitor reads: NGL at the model's own logits
        assert float(loss.last_value) == pytest.approx(ref_loss(logits, label).item(), rel=1e-9)


@pytest.mark.parametrize('impl', ['torch', 'literal'])
def test_bias_warmup_on_float16_logits_near_their_largest_value_stays_finite(impl,
                                                                             message_hub):
    message_hub.update_info('max_iters', 100)
    message_hub.update_info('iter', 0)
    label = torch.randint(0, 21, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    logits = torch.zeros(2, 21, 4, 4, dtype=torch.float16)
    logits.scatter_(1, label.unsqueeze(1), 65504.0)  # float16's largest value, on the target
    x = logits.clone().requires_grad_()
    value = NGLLoss(impl=impl, target_bias_warmup=0.1, target_bias=20.0)(x, label)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    shifted = logits.double().scatter_add(1, label.unsqueeze(1),
                                          torch.full((2, 1, 4, 4), 20.0, dtype=torch.float64))
    assert value.item() == pytest.approx(ref_loss(shifted, label).item(), rel=1e-5)


@pytest.mark.parametrize('num_classes', [2, 3, 6])
def test_bias_warmup_at_few_classes_says_it_does_nothing(num_classes, message_hub):
    """At C <= 6 chance is already past NGL's steepest point: the default bias is 0 (not a
    rounding residue), the loss is plain NGL, and one warning says so."""
    assert recipe.default_target_bias(num_classes) == 0.0
    message_hub.update_info('max_iters', 100)
    message_hub.update_info('iter', 0)
    logits = torch.randn(2, num_classes, 3, 3)
    label = torch.randint(0, num_classes, (2, 3, 3))
    loss = NGLLoss(impl='torch', target_bias_warmup=0.1 - 0.01 * num_classes)
    with pytest.warns(UserWarning, match=f'does nothing at {num_classes} classes.*target_bias'):
        value = loss(logits, label)
    assert value.item() == pytest.approx(ref_loss(logits, label).item(), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss(logits, label)  # once
    # an explicit bias is used as given
    value = NGLLoss(impl='torch', target_bias_warmup=0.1, target_bias=1.0)(logits, label)
    shifted = logits.double().scatter_add(1, label.unsqueeze(1),
                                          torch.ones(2, 1, 3, 3, dtype=torch.float64))
    assert value.item() == pytest.approx(ref_loss(shifted, label).item(), rel=1e-6)


def test_bias_warmup_from_seven_classes_on_has_a_positive_default():
    assert recipe.default_target_bias(7) > 0.1
    assert recipe.default_target_bias(21) == pytest.approx(1.26, abs=0.01)
    assert recipe.default_target_bias(171) == pytest.approx(3.36, abs=0.01)


# --- one warm-up function; type hints on the public API ---------------------------------------

def test_one_warmup_share_function():
    assert not hasattr(NGLLoss, 'warmup_share')
    assert recipe.warmup_share(50, 1000, 0.1) == 0.5
    module = importlib.import_module('ngl_mmseg.losses.ngl_loss')  # not the function
    assert module.warmup_share is recipe.warmup_share
    # the one schedule, and names that say what else is what: no near-copies of its name
    near = [name for owner in (module, NGLLoss) for name in vars(owner)
            if 'warmup_share' in name]
    assert near == ['warmup_share'], near


PUBLIC = [ngl_loss, NGLLoss.__init__, NGLLoss.forward, ngl_pixel_loss, resolve_impl,
          recipe.ce_matched_weight, NGLMonitorHook.__init__]


@pytest.mark.parametrize('fn', PUBLIC, ids=lambda fn: fn.__qualname__)
def test_the_public_api_has_type_hints(fn):
    signature = inspect.signature(fn)
    missing = [name for name, p in signature.parameters.items()
               if name != 'self' and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
               and p.annotation is inspect.Parameter.empty]
    assert not missing, missing
    assert signature.return_annotation is not inspect.Signature.empty


# --- the docs say what the code computes ------------------------------------------------------

def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


CE_MATCHED_TEXTS = ['ngl_mmseg/losses/recipe.py', 'ngl_mmseg/losses/ngl_loss.py',
                    'docs/usage.md', 'docs/training.md']


def test_the_ce_matched_weight_at_21_classes_is_stated_as_computed():
    assert f'{recipe.ce_matched_weight(21):.1f}' == '45.8'
    for path in CE_MATCHED_TEXTS:
        text = read(path)
        assert '46.2' not in text, path
        assert '45.8' in text, path


def test_usage_states_the_default_target_bias_the_code_uses():
    row = next(line for line in read('docs/usage.md').splitlines()
               if line.startswith('| `target_bias` |'))
    assert 'default_target_bias' in row and '0.15' in row
    assert 'None: `ln(C - 1)`' not in row
    # what the row says the default is
    p = recipe.steepest_target_probability(21)
    assert f'{p:.2f}' in row
    assert math.log(p / (1 - p) * 20) == pytest.approx(recipe.default_target_bias(21))


def test_usage_does_not_claim_the_current_kernels_ran_on_a_gpu():
    usage = read('docs/usage.md')
    assert 'on CPU and on an H200' not in usage
    assert 'have not run on a GPU since 0.1.0' in usage


def test_polynomial_error_is_measured_and_stated_alike():
    error_f, error_df = poly.fit_errors()
    # the stated bounds hold, and are not loose by more than 2x
    assert error_f <= poly.MAX_ERROR_F <= 2 * error_f
    assert error_df <= poly.MAX_ERROR_DF <= 2 * error_df
    for alpha in (-8.0, 0.5, 8.0):
        assert max(a / b for a, b in zip(poly.fit_errors(alpha, 100001),
                                         (poly.MAX_ERROR_F, poly.MAX_ERROR_DF))) <= 1
    assert (poly.MAX_ERROR_F, poly.MAX_ERROR_DF) == (2e-10, 5e-9)  # as the docs write them
    bench = read('docs/benchmark.md')
    assert "< 2e-10 for f and < 5e-9 for f'" in bench
    assert '< 1e-8' not in bench
    source = read('ngl_mmseg/ops/poly.py')
    assert '~1e-7' not in source


def test_the_package_docstring_and_architecture_name_every_patch():
    doc = ngl_mmseg.__doc__
    arch = read('docs/architecture.md')
    for name in ('LoadAnnotations', 'after_test_epoch', 'get_installed_path', 'weights-only'):
        assert name in doc, name
        assert name in arch, name


# --- the value: class weights and auto_weight against the float64 formula ---------------------

def test_ngl_loss_still_matches_the_float64_formula_after_the_changes():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 9, 5, 4, generator=g)
    label = torch.randint(0, 9, (2, 5, 4), generator=g)
    label[0, 0] = 255
    cw = [float(i + 1) for i in range(9)]
    got = NGLLoss(impl='torch', class_weight=cw, auto_weight=True)(logits, label)
    want = ref_loss(logits, label, class_weight=cw,
                    loss_weight=recipe.ce_matched_weight(9))
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
