"""The study's noise-robust baselines against their formulas written plainly in float64, and
their weights checked as NGLLoss checks its own."""
import math

import pytest
import torch
from helpers import VOC_CFG
from mmengine.config import Config

from ngl_lab.baseline_losses import GCELoss, LabelSmoothingCELoss, SCELoss
from ngl_lab.presets import LOSS_PRESETS, check_variant_losses, parse_loss_specs
from ngl_mmseg import NGLLoss


def _probs(logits):
    x = logits.double()
    e = torch.exp(x - x.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _per_pixel(logits, label, fn, ignore_index=255):
    """fn(p vector over classes, target) at every non-ignored pixel, in float64;
    the mean over those pixels."""
    p = _probs(logits)
    n, c, h, w = p.shape
    total, count = 0.0, 0
    for b in range(n):
        for i in range(h):
            for j in range(w):
                t = int(label[b, i, j])
                if t == ignore_index:
                    continue
                total += fn([float(p[b, k, i, j]) for k in range(c)], t)
                count += 1
    return total / count


def ref_ls_ce(p, t, eps=0.1):
    c = len(p)
    return -sum(((1 - eps) * (k == t) + eps / c) * math.log(p[k]) for k in range(c))


def ref_gce(p, t, q=0.7):
    return (1 - p[t] ** q) / q


def ref_sce(p, t, a=0.1, b=1.0, log_zero=-4.0):
    ce = -math.log(p[t])
    # RCE = -sum_c p_c log y_c with log 1 = 0 and log 0 = A
    rce = -sum(p[k] * (0.0 if k == t else log_zero) for k in range(len(p)))
    return a * ce + b * rce


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 3, 4, generator=gen) * 3
    label = torch.randint(0, 5, (2, 3, 4), generator=gen)
    label[0, 0, :2] = 255
    label[1, 2, 3] = 255
    return logits, label


@pytest.mark.parametrize('loss, ref', [
    (LabelSmoothingCELoss(), ref_ls_ce),
    (GCELoss(), ref_gce),
    (SCELoss(), ref_sce),
    (GCELoss(q=0.3, loss_weight=2.0), lambda p, t: 2.0 * ref_gce(p, t, q=0.3)),
])
def test_value_matches_float64_formula(batch, loss, ref):
    logits, label = batch
    got = loss(logits, label, ignore_index=255)
    assert got.dtype == torch.float32
    assert abs(float(got) - _per_pixel(logits, label, ref)) < 1e-5


@pytest.mark.parametrize('loss', [LabelSmoothingCELoss(), GCELoss(), SCELoss()])
def test_ignored_pixels_get_no_gradient_and_nan_stays_out(batch, loss):
    logits, label = batch
    logits = logits.clone()
    logits[0, :, 0, 0] = float('nan')  # an ignored pixel
    logits.requires_grad_(True)
    loss(logits, label, ignore_index=255).backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[0, :, 0, :2] == 0).all()


@pytest.mark.parametrize('loss', [GCELoss(), SCELoss()])
def test_bad_labels_named(batch, loss):
    logits, label = batch
    label = label.clone()
    label[1, 0, 0] = 7
    with pytest.raises(ValueError, match=r'labels \[7\] are outside \[0, 5\)'):
        loss(logits, label, ignore_index=255)


def test_bad_arguments_refused():
    with pytest.raises(ValueError, match='q must be in'):
        GCELoss(q=0)
    with pytest.raises(ValueError, match='label_smoothing'):
        LabelSmoothingCELoss(label_smoothing=1.0)
    for log_zero in (4.0, 0.0):
        with pytest.raises(ValueError, match=f'log_zero stands for log 0 and must be negative, '
                                             f'got {log_zero}'):
            SCELoss(log_zero=log_zero)


# --- weights refused as NGLLoss refuses them (issue 31, item 15) -----------------------------

INF, NAN = float('inf'), float('nan')
BAD_WEIGHTS = [(loss, {'loss_weight': value}, 'loss_weight')
               for loss in (GCELoss, SCELoss, LabelSmoothingCELoss)
               for value in (-2, -1e-9, INF, NAN, '1.0', True)]
BAD_SCE = [({'log_zero': -INF}, 'log_zero'), ({'log_zero': NAN}, 'log_zero'),
           ({'log_zero': '-4'}, 'log_zero'), ({'ce_weight': -1}, 'ce_weight'),
           ({'ce_weight': INF}, 'ce_weight'),
           ({'rce_weight': NAN}, 'rce_weight'), ({'rce_weight': -0.5}, 'rce_weight')]
BAD = BAD_WEIGHTS + [(SCELoss, kwargs, argument) for kwargs, argument in BAD_SCE]


@pytest.mark.parametrize('loss, kwargs, argument', BAD, ids=[
    f'{loss.__name__}-{argument}={kwargs[argument]!r}' for loss, kwargs, argument in BAD])
def test_bad_weights_are_refused_at_construction_naming_argument_and_value(loss, kwargs,
                                                                            argument):
    (value, ) = kwargs.values()
    with pytest.raises(ValueError) as refused:
        loss(**kwargs)
    message = str(refused.value)
    assert message.startswith(argument) and message.endswith(f'got {value!r}'), message


def test_baseline_and_ngl_take_the_same_loss_weights():
    """Refused with one message, and 0 (a loss switched off) accepted by both."""
    for value in (-2, INF, NAN):
        with pytest.raises(ValueError) as baseline:
            GCELoss(loss_weight=value)
        with pytest.raises(ValueError) as ngl:
            NGLLoss(loss_weight=value)
        assert str(baseline.value) == str(ngl.value)
    assert GCELoss(loss_weight=0).loss_weight == NGLLoss(loss_weight=0).loss_weight == 0.0


def test_an_inline_variant_with_log_zero_minus_inf_fails_the_pre_run_check():
    """``-1e999`` is parsed as -inf: refused when the variants are built, before any run;
    weights at the edges of their ranges are built."""
    edges = "sce-0={'type': 'SCELoss', 'ce_weight': 0, 'rce_weight': 0.0, 'log_zero': -1e-3}"
    assert check_variant_losses(Config.fromfile(VOC_CFG), parse_loss_specs(['ce', edges]))
    parsed = parse_loss_specs(['ce', "sce-a={'type': 'SCELoss', 'log_zero': -1e999}"])
    assert parsed[1][1][0]['log_zero'] == -INF
    with pytest.raises(ValueError, match=r"variant 'sce-a'.*log_zero must be a finite number.*"
                                         r'got -inf'):
        check_variant_losses(Config.fromfile(VOC_CFG), parsed)


def test_presets_build_through_mmseg_registry():
    from mmseg.registry import MODELS
    for name in ('ce-ls', 'gce', 'sce'):
        (spec, ) = LOSS_PRESETS[name]
        loss = MODELS.build(dict(spec))
        assert loss.loss_name.startswith('loss_')
