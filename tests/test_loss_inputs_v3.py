"""Issue 22 (items 11, 12) and issue 24 in the loss's files: the bias warm-up in float32,
arguments refused with the reason, one warm-up function, class-weight loading in its own
module, type hints on the public API, and docs that say what the code does."""
import importlib
import inspect
import math
import os
import warnings

import pytest
import torch
from helpers import REPO
from reference import ref_loss

import ngl_mmseg
from ngl_mmseg import NGLLoss, ngl_loss, ngl_pixel_loss
from ngl_mmseg.hooks import NGLMonitorHook
from ngl_mmseg.losses import recipe
from ngl_mmseg.ops import poly, resolve_impl


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


# --- issue 22, item 11: the bias warm-up runs in float32 -------------------------------

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


# --- issue 22, item 12: arguments refused with the reason -------------------------------

def test_target_bias_without_its_warmup_is_refused():
    with pytest.raises(ValueError, match=r'target_bias=2.0 .*\(target_bias_warmup=0\)'):
        NGLLoss(target_bias=2.0)
    NGLLoss(target_bias=2.0, target_bias_warmup=0.1)  # with its warm-up: fine


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


@pytest.mark.parametrize('min_progress', [-1, -0.01, 1, 1.0, 5])
def test_monitor_refuses_a_min_progress_outside_0_1(min_progress):
    with pytest.raises(ValueError, match=r'min_progress=.* outside \[0, 1\)'):
        NGLMonitorHook(min_progress=min_progress)


def test_monitor_takes_a_min_progress_in_0_1():
    for value in (0, 0.05, 0.5, 0.99):
        assert NGLMonitorHook(min_progress=value).min_progress == value


# --- issue 24: one warm-up function, class weights in their module, type hints ---------

def test_one_warmup_share_function():
    assert not hasattr(NGLLoss, 'warmup_share')
    assert recipe.warmup_share(50, 1000, 0.1) == 0.5
    module = importlib.import_module('ngl_mmseg.losses.ngl_loss')  # not the function
    assert module.warmup_share is recipe.warmup_share


def test_class_weight_loading_lives_in_its_own_module():
    from ngl_mmseg.losses import class_weight, utils
    assert utils.load_class_weight is class_weight.load_class_weight  # earlier imports work
    assert not hasattr(utils, '_ArrayUnpickler') and hasattr(class_weight, '_ArrayUnpickler')
    assert class_weight.load_class_weight([1, 2.5]) == [1.0, 2.5]


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


# --- issue 24: the docs say what the code computes --------------------------------------

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
