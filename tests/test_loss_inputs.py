"""What NGLLoss accepts: its arguments (checked when it is built, with a message saying what to
pass), ``ignore_index`` and labels within int32's range on every implementation, class-weight
files and lists that are 1-D finite real weights (bounded while loading, the file named), and
NaN or inf logits of ignored pixels through both warm-ups; the target-bias warm-up's value."""
import math
import pickle

import numpy as np
import pytest
import torch
from impls import ALL_IMPLS
from reference import ref_loss

from ngl_mmseg import NGLLoss, ngl_loss, ngl_pixel_loss
from ngl_mmseg.losses.recipe import default_target_bias

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
