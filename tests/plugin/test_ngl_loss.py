"""NGLLoss against the plain float64 formula, for every option and every bad input."""
import itertools

import numpy as np
import pytest
import torch
from impls import ALL_IMPLS as IMPLS
from mmseg.registry import MODELS
from reference import ALPHA, literal_classification_mean, ref_loss

import ngl_mmseg
from ngl_mmseg import NGLLoss, ngl_loss


def make_inputs(shape=(2, 5, 6, 7), ignore_frac=0.2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    num_label = shape[1]
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
    assert out.dtype == (torch.float64 if logits.dtype == torch.float64 else torch.float32)
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
    'reduction,use_class_weight,use_weight,avg_non_ignore,scaling',
    list(itertools.product(['mean', 'sum', 'none'], [False, True], [False, True],
                           [True, False], [False, True])))
def test_all_options_match_float64_formula(impl, reduction, use_class_weight, use_weight,
                                           avg_non_ignore, scaling):
    logits, label, weight = make_inputs()
    cfg = dict(type='NGLLoss', reduction=reduction, avg_non_ignore=avg_non_ignore,
               scaling=scaling, impl=impl, loss_weight=0.7)
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
@pytest.mark.parametrize('scaling', [False, True])
def test_binary_segmentation_with_two_softmax_channels(impl, scaling):
    logits, label, _ = make_inputs(shape=(2, 2, 8, 8))
    check_close(logits, label, dict(type='NGLLoss', scaling=scaling, impl=impl))
    check_close(logits, label, dict(type='NGLLoss', scaling=scaling, impl=impl,
                                    class_weight=[1.0, 3.0]))


@pytest.mark.parametrize('impl', IMPLS)
def test_scaling_is_the_authors_sigmoid_of_softmax_mean_over_all_elements(impl):
    """The authors' TensorFlow NGL(scaling=True) on a softmax output layer, written
    as their code reads: y_pred = sigmoid(softmax(z)), then the mean over all M*C."""
    logits, label, _ = make_inputs(shape=(64, 10), ignore_frac=0.0)
    out = NGLLoss(impl=impl, scaling=True)(logits, label)
    y_pred = torch.sigmoid(torch.softmax(logits.double(), dim=1))
    y_true = torch.nn.functional.one_hot(label, 10).double()
    expected = torch.mean(torch.exp(ALPHA - y_pred * (1 + y_true))
                          - torch.cos(torch.cos(torch.sin(y_pred))))
    assert torch.allclose(out.double(), expected, rtol=1e-6), (out, expected)


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
    check_close(logits, label, dict(type='NGLLoss', impl='torch', scaling=True))


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
    # The loss comes back in float32 (as mmseg's CE under autocast); the gradient
    # in the input's dtype.
    assert out.dtype == torch.float32 and x.grad.dtype == dtype
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    # The math runs in float32 on the rounded inputs: only the output rounding differs.
    expected = ref_loss(logits.double(), label)
    assert torch.allclose(out.double(), expected, rtol=1e-2)
    x_ref = logits.double().requires_grad_()
    ref_loss(x_ref, label).backward()
    assert torch.allclose(x.grad.double(), x_ref.grad, rtol=2e-2,
                          atol=2e-2 * x_ref.grad.abs().max())


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
    for kwargs in (dict(), dict(scaling=True), dict(class_weight=[1.0, 0.5, 2.0, 1.0]),
                   dict(scaling=True, reduction='none')):
        loss = NGLLoss(impl='torch', **kwargs)
        x = logits.clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda t, loss=loss: loss(t, label, weight=weight).sum(),
                                        (x, ), eps=1e-6, atol=1e-6)


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
    (lambda x, y: (x[:, :1], y), 'single channel.*num_classes=2'),
    # narrow label dtypes: validated as int64, so 255 in int8 (-1) is not ignore_index
    (lambda x, y: (x, torch.where(y == 255, -1, y).to(torch.int8)), r'values \[-1\] outside'),
    (lambda x, y: (x, torch.where(y == 255, 200, y).to(torch.uint8)), r'values \[200\]'),
])
def test_bad_inputs_raise_value_error(mutate, message):
    logits, label, _ = make_inputs()
    logits, label = mutate(logits, label)
    with pytest.raises(ValueError, match=message):
        NGLLoss()(logits, label)


def test_bad_weight_and_class_weight_and_reduction():
    logits, label, weight = make_inputs()
    with pytest.raises(ValueError, match='3 class weights but the head predicts 5 classes'):
        NGLLoss(class_weight=[1.0, 2.0, 3.0])(logits, label)
    # refused when the loss is built, before any forward
    with pytest.raises(ValueError, match='must be finite and >= 0, got -2.0'):
        NGLLoss(class_weight=[1.0, -2.0, 3.0, 1.0, 1.0])
    with pytest.raises(ValueError, match='must be finite and >= 0, got nan'):
        NGLLoss(class_weight=[1.0, float('nan'), 3.0, 1.0, 1.0])
    with pytest.raises(ValueError, match='class_weight must be finite and >= 0'):  # functional
        ngl_loss(logits, label, class_weight=torch.tensor([1.0, -2.0, 3.0, 1.0, 1.0]))
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
    logits, label, _ = make_inputs(shape=(2, 2, 4, 4))
    label[0, 0, 0] = 2
    with pytest.raises(ValueError, match=r'values \[2\] outside \[0, 2\)'):
        NGLLoss()(logits, label)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('dtype', [torch.int8, torch.uint8, torch.int16, torch.int32])
def test_narrow_label_dtypes_give_the_int64_result(impl, dtype):
    logits, label, _ = make_inputs()
    narrow = label.to(dtype) if dtype != torch.int8 else torch.where(label == 255, 100, label)
    ignore = 100 if dtype == torch.int8 else 255
    out = NGLLoss(impl=impl)(logits, narrow.to(dtype), ignore_index=ignore)
    assert torch.allclose(out.double(), ref_loss(logits, label), rtol=1e-5)


# --- use_sigmoid: refused, and why -----------------------------------------------------

def test_use_sigmoid_is_refused_with_the_reason_and_the_alternatives():
    for build in (lambda: NGLLoss(use_sigmoid=True),
                  lambda: MODELS.build(dict(type='NGLLoss', use_sigmoid=True)),
                  lambda: ngl_loss(*make_inputs()[:2], use_sigmoid=True)):
        with pytest.raises(ValueError, match='p = 1 for every class.*num_classes=2.*scaling'):
            build()
    NGLLoss(use_sigmoid=False)  # CE-style configs that spell out the default still build


def test_per_class_sigmoid_ngl_is_degenerate():
    """Why use_sigmoid is refused: with p = sigmoid(z) per class, the NGL term of a
    negative class (y = 0) has a negative derivative in z everywhere, so gradient
    descent pushes every negative logit up; with softmax it pushes it down."""
    z = torch.linspace(-6, 6, 121, dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(z)
    negative_term = torch.exp(ALPHA - p) - torch.cos(torch.cos(torch.sin(p)))
    negative_term.sum().backward()
    assert (z.grad < 0).all()  # descent raises z: the negative class is predicted
    logits = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    NGLLoss(impl='torch')(logits, torch.tensor([0])).backward()
    assert logits.grad[0, 0] < 0 and (logits.grad[0, 1:] > 0).all()  # softmax: down


# --- hardening ---------------------------------------------------------------------------

@pytest.mark.parametrize('impl', IMPLS)
def test_fp16_sum_over_many_pixels_does_not_overflow(impl):
    logits = torch.randn(1, 5, 128, 128).half()  # 16k pixels at ~10 each > fp16's 65504
    label = torch.randint(0, 5, (1, 128, 128))
    out = NGLLoss(impl=impl, reduction='sum')(logits, label)
    expected = ref_loss(logits.double(), label, reduction='sum')
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert torch.allclose(out.double(), expected, rtol=1e-5)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_empty_batch_gives_zero(impl, reduction):
    x = torch.randn(0, 5, 4, 4, requires_grad=True)
    out = NGLLoss(impl=impl, reduction=reduction)(x, torch.zeros(0, 4, 4, dtype=torch.long))
    out.sum().backward()
    assert out.sum().item() == 0.0 and x.grad.shape == x.shape


def test_malicious_pkl_class_weight_runs_no_code(tmp_path):
    import pickle
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), 'w'))
    path = tmp_path / 'weights.pkl'
    path.write_bytes(pickle.dumps([1.0, Evil()]))
    with pytest.raises(ValueError, match='not allowed in a class_weight file'):
        NGLLoss(class_weight=str(path))
    assert not marker.exists()
    # plain lists and numpy arrays still load
    for value in ([0.5, 1.0, 2.0, 0.0, 1.5], np.array([0.5, 1.0, 2.0, 0.0, 1.5])):
        path.write_bytes(pickle.dumps(value))
        assert NGLLoss(class_weight=str(path)).class_weight == [0.5, 1.0, 2.0, 0.0, 1.5]
    evil_npy = tmp_path / 'weights.npy'
    np.save(evil_npy, np.array([1.0, Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match='cannot load class_weight'):
        NGLLoss(class_weight=str(evil_npy))
    assert not marker.exists()


@pytest.mark.slow
def test_separable_binary_task_learns_with_softmax_and_scaling():
    """The sigmoid-variants issue's table at small scale: a 1-D separable binary
    task, a logistic model, Adam. Two softmax channels and the authors' scaling
    learn it; one sigmoid channel is refused (it would predict positive
    everywhere: 0.49 accuracy, 100% positive, measured before the refusal)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 1, generator=g)
    y = (x[:, 0] > 0.3).long()
    for scaling in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 2)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        loss_fn = NGLLoss(impl='torch', scaling=scaling)
        for _ in range(2000):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        pred = model(x).argmax(dim=1)
        accuracy = (pred == y).double().mean().item()
        assert accuracy >= 0.95, (scaling, accuracy)
        assert 0.3 < pred.double().mean().item() < 0.5  # not one class everywhere
    with pytest.raises(ValueError, match='single channel'):
        NGLLoss(impl='torch')(torch.nn.Linear(1, 1)(x), y)
