"""NGLLoss against the plain float64 formula, for every option and every bad input."""
import itertools

import numpy as np
import pytest
import torch

import ngl_mmseg
from ngl_mmseg import NGLLoss, ngl_loss
from mmseg.registry import MODELS
from impls import ALL_IMPLS as IMPLS
from reference import ALPHA, literal_classification_mean, ref_loss


def make_inputs(shape=(2, 5, 6, 7), ignore_frac=0.2, seed=0, binary=False,
                dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    num_label = 2 if binary else shape[1]
    label_shape = (shape[0], ) + tuple(shape[2:])
    label = torch.randint(0, num_label, label_shape, generator=g)
    label[torch.rand(label_shape, generator=g) < ignore_frac] = 255
    weight = torch.rand(label_shape, generator=g, dtype=torch.float64)
    return logits, label, weight


def check_close(logits, label, cfg, fwd_kwargs=None, ref_kwargs=None, rtol=1e-5):
    """Value and gradient of MODELS.build(cfg) vs ref_loss, both backpropagated
    through the same random upstream gradient."""
    fwd_kwargs = fwd_kwargs or {}
    loss_mod = MODELS.build(cfg)
    x = logits.clone().requires_grad_()
    out = loss_mod(x, label, **fwd_kwargs)
    x_ref = logits.double().clone().requires_grad_()
    ref_args = {k: v for k, v in cfg.items() if k not in ('type', 'impl', 'loss_name')}
    ref_args.pop('avg_non_ignore', None)
    ref = ref_loss(x_ref, label, avg_non_ignore=cfg.get('avg_non_ignore', True),
                   **ref_args, **(ref_kwargs or {}))
    assert out.dtype == logits.dtype
    assert out.shape == ref.shape
    scale = ref.detach().abs().max().clamp_min(1e-12)
    assert torch.allclose(out.double(), ref.detach(), rtol=rtol, atol=rtol * scale), \
        (out, ref)
    up = torch.rand(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out.double() * up).sum().backward()
    (ref * up).sum().backward()
    gscale = x_ref.grad.abs().max().clamp_min(1e-12)
    err = (x.grad.double() - x_ref.grad).abs().max() / gscale
    assert err < rtol, f'gradient relative error {err}'
    return out


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize(
    'reduction,use_class_weight,use_weight,avg_non_ignore,use_sigmoid',
    list(itertools.product(['mean', 'sum', 'none'], [False, True], [False, True],
                           [True, False], [False, True])))
def test_all_options_match_float64_formula(impl, reduction, use_class_weight, use_weight,
                                           avg_non_ignore, use_sigmoid):
    logits, label, weight = make_inputs()
    cfg = dict(type='NGLLoss', reduction=reduction, avg_non_ignore=avg_non_ignore,
               use_sigmoid=use_sigmoid, impl=impl, loss_weight=0.7)
    if use_class_weight:
        cfg['class_weight'] = [0.5, 1.0, 2.0, 0.0, 1.5]
    kwargs = dict(weight=weight.float()) if use_weight else {}
    ref_kwargs = dict(weight=weight) if use_weight else {}
    check_close(logits, label, cfg, kwargs, ref_kwargs)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('alpha', [ALPHA, 1.0, 3.5])
def test_alpha(impl, alpha):
    logits, label, _ = make_inputs(shape=(2, 7, 5, 5))
    check_close(logits, label, dict(type='NGLLoss', alpha=alpha, impl=impl))


@pytest.mark.parametrize('impl', IMPLS)
def test_classification_equals_authors_mean_over_all_elements(impl):
    logits, label, _ = make_inputs(shape=(64, 10), ignore_frac=0.0)
    out = NGLLoss(impl=impl)(logits, label)
    expected = literal_classification_mean(logits, label)
    assert torch.allclose(out.double(), expected, rtol=1e-6), (out, expected)
    check_close(logits, label, dict(type='NGLLoss', impl=impl))


@pytest.mark.parametrize('impl', IMPLS)
def test_binary_single_channel_sigmoid(impl):
    logits, label, _ = make_inputs(shape=(2, 1, 8, 8), binary=True)
    check_close(logits, label, dict(type='NGLLoss', use_sigmoid=True, impl=impl))
    check_close(logits, label, dict(type='NGLLoss', use_sigmoid=True, impl=impl,
                                    class_weight=[1.0, 3.0]))


@pytest.mark.parametrize('shape', [(1, 3, 1, 1), (2, 4, 33, 17), (1, 21, 3, 5, 2), (3, 6, 40)])
def test_any_spatial_size(shape):
    logits, label, _ = make_inputs(shape=shape)
    check_close(logits, label, dict(type='NGLLoss', impl='torch'))


def test_chunked_path_matches(monkeypatch):
    """Tensors larger than one chunk go through the chunk loop."""
    from ngl_mmseg.ops import ngl_torch
    monkeypatch.setattr(ngl_torch, 'CHUNK_ELEMENTS', 1000)
    logits, label, weight = make_inputs(shape=(2, 5, 31, 29))
    check_close(logits, label, dict(type='NGLLoss', impl='torch', class_weight=[1, 2, 3, 4, 5]),
                dict(weight=weight.float()), dict(weight=weight))
    logits, label, _ = make_inputs(shape=(500, 7), ignore_frac=0.1)
    check_close(logits, label, dict(type='NGLLoss', impl='torch', use_sigmoid=True))


def test_explicit_avg_factor():
    logits, label, _ = make_inputs()
    check_close(logits, label, dict(type='NGLLoss', impl='torch'), dict(avg_factor=17.0),
                dict(avg_factor=17.0))


def test_reduction_override_and_loss_name():
    logits, label, _ = make_inputs()
    loss = NGLLoss(loss_name='loss_mine')
    assert loss.loss_name == 'loss_mine'
    assert NGLLoss().loss_name == 'loss_ngl'
    out = loss(logits, label, reduction_override='none')
    assert out.shape == label.shape
    expected = ref_loss(logits, label, reduction='none')
    assert torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_ignore_index_argument():
    logits, label, _ = make_inputs()
    label[label == 255] = 7  # 7 is outside the 5 classes: it must be ignored
    label_ref = label.clone()
    check_close(logits, label, dict(type='NGLLoss', impl='torch'), dict(ignore_index=7),
                dict(ignore_index=7))
    assert torch.equal(label, label_ref)


def test_class_weight_from_file(tmp_path):
    path = tmp_path / 'weights.npy'
    np.save(path, np.array([0.5, 1.0, 2.0, 0.0, 1.5]))
    logits, label, _ = make_inputs()
    out = NGLLoss(class_weight=str(path))(logits, label)
    expected = ref_loss(logits, label, class_weight=[0.5, 1.0, 2.0, 0.0, 1.5])
    assert torch.allclose(out.double(), expected, rtol=1e-5)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('avg_non_ignore', [True, False])
@pytest.mark.parametrize('class_weight', [None, [1.0, 2.0, 3.0, 4.0, 5.0]])
def test_all_ignored_gives_zero_loss_and_gradient(impl, avg_non_ignore, class_weight):
    logits, label, _ = make_inputs()
    label[:] = 255
    x = logits.clone().requires_grad_()
    out = NGLLoss(impl=impl, avg_non_ignore=avg_non_ignore, class_weight=class_weight)(x, label)
    out.backward()
    assert out.item() == 0.0
    assert torch.count_nonzero(x.grad) == 0


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('impl', IMPLS)
def test_half_precision_inputs(dtype, impl):
    logits, label, _ = make_inputs(dtype=dtype)
    logits = logits.clamp(-60000, 60000)
    x = logits.clone().requires_grad_()
    out = NGLLoss(impl=impl)(x, label)
    out.backward()
    assert out.dtype == dtype and x.grad.dtype == dtype
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    # The math runs in float32 on the rounded inputs: only the output rounding differs.
    expected = ref_loss(logits.double(), label)
    assert torch.allclose(out.double(), expected, rtol=1e-2)
    x_ref = logits.double().requires_grad_()
    ref_loss(x_ref, label).backward()
    assert torch.allclose(x.grad.double(), x_ref.grad, rtol=2e-2, atol=2e-2 * x_ref.grad.abs().max())


def test_extreme_logits_stay_finite():
    logits, label, _ = make_inputs()
    logits = logits * 1e4
    x = logits.clone().requires_grad_()
    out = NGLLoss()(x, label)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    # Saturated softmax: the true gradient is ~1e-14, so compare absolutely.
    x_ref = logits.double().requires_grad_()
    expected = ref_loss(x_ref, label)
    expected.backward()
    assert torch.allclose(out.double(), expected, rtol=1e-5)
    assert (x.grad.double() - x_ref.grad).abs().max() < 1e-7


def test_gradcheck_float64():
    logits, label, weight = make_inputs(shape=(2, 4, 3, 3), dtype=torch.float64)
    for kwargs in (dict(), dict(use_sigmoid=True), dict(class_weight=[1.0, 0.5, 2.0, 1.0])):
        loss = NGLLoss(impl='torch', **kwargs)
        x = logits.clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda t: loss(t, label, weight=weight), (x, ),
                                        eps=1e-6, atol=1e-6)


def test_functional_form_matches_module():
    logits, label, _ = make_inputs()
    a = ngl_loss(logits, label, class_weight=torch.tensor([1., 2., 3., 4., 5.]))
    b = NGLLoss(class_weight=[1., 2., 3., 4., 5.])(logits, label)
    assert torch.equal(a, b)
    assert ngl_mmseg.ngl_loss is ngl_loss


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize('mutate,message', [
    (lambda x, y: (x, torch.where(y == 255, 255, 5)), r'values \[5\] outside \[0, 5\)'),
    (lambda x, y: (x, torch.where(y == 255, 255, -1)), r'values \[-1\] outside'),
    (lambda x, y: (x, y[:, :-1]), 'label shape .* does not match'),
    (lambda x, y: (x, y.float()), 'floating-point'),
    (lambda x, y: (x, y.bool()), 'bool'),
    (lambda x, y: (x.long(), y), 'cls_score must be a floating-point'),
    (lambda x, y: (x[:, 0], y), 'label shape'),
    (lambda x, y: (x[:, :1], y), 'use_sigmoid=True'),
])
def test_bad_inputs_raise_value_error(mutate, message):
    logits, label, _ = make_inputs()
    logits, label = mutate(logits, label)
    with pytest.raises(ValueError, match=message):
        NGLLoss()(logits, label)


def test_bad_weight_and_class_weight_and_reduction():
    logits, label, weight = make_inputs()
    with pytest.raises(ValueError, match='class_weight has 3 entries but there are 5 classes'):
        NGLLoss(class_weight=[1.0, 2.0, 3.0])(logits, label)
    with pytest.raises(ValueError, match='class_weight must be finite and >= 0'):
        NGLLoss(class_weight=[1.0, -2.0, 3.0, 1.0, 1.0])(logits, label)
    with pytest.raises(ValueError, match='class_weight must be finite'):
        NGLLoss(class_weight=[1.0, float('nan'), 3.0, 1.0, 1.0])(logits, label)
    with pytest.raises(ValueError, match='weight shape'):
        NGLLoss()(logits, label, weight=weight[:, :2])
    with pytest.raises(ValueError, match='reduction must be one of'):
        NGLLoss(reduction='avg')
    with pytest.raises(ValueError, match='reduction must be one of'):
        NGLLoss()(logits, label, reduction_override='avg')
    with pytest.raises(ValueError, match='impl must be one of'):
        NGLLoss(impl='cuda-magic')
    with pytest.raises(TypeError, match='unexpected keyword'):
        MODELS.build(dict(type='NGLLoss', use_sigmod=True))


def test_binary_label_out_of_range():
    logits, label, _ = make_inputs(shape=(2, 1, 4, 4), binary=True)
    label[0, 0, 0] = 2
    with pytest.raises(ValueError, match=r'values \[2\] outside \[0, 2\)'):
        NGLLoss(use_sigmoid=True)(logits, label)
