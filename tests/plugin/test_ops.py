"""Every implementation of the fused NGL (torch, compile, Triton) against the float64 formula."""
import math
import os
import re
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from helpers import REPO
from impls import FUSED_IMPLS, TRITON_INTERPRET
from reference import ALPHA, ref_loss

from ngl_mmseg.ops import IMPLS, backends, ngl_pixel_loss, resolve_impl
from ngl_mmseg.ops.poly import ngl_coefficients


@pytest.mark.parametrize('alpha', [ALPHA, 0.5, 4.0])
def test_polynomials_match_the_functions_on_0_1(alpha):
    f, df = ngl_coefficients(alpha)
    p = np.linspace(0, 1, 100001)
    h = np.cos(np.cos(np.sin(p)))
    dh = np.sin(np.cos(np.sin(p))) * np.sin(np.sin(p)) * np.cos(p)
    assert np.abs(np.polyval(f, p) - (np.exp(alpha - p) - h)).max() < 1e-8 * np.exp(alpha)
    assert np.abs(np.polyval(df, p) - (-np.exp(alpha - p) - dh)).max() < 1e-7 * np.exp(alpha)


def per_pixel_case(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    label = torch.randint(0, shape[1], (shape[0], ) + tuple(shape[2:]), generator=g)
    label.view(-1)[::7] = 255
    up = torch.rand(label.shape, generator=g, dtype=torch.float64)
    return x, label, up


def check_impl(impl, shape, scaling, alpha=ALPHA, dtype=torch.float32, grad_rtol=1e-5):
    x, label, up = per_pixel_case(shape)
    xa = x.to(dtype).requires_grad_()
    loss = ngl_pixel_loss(xa, label, alpha=alpha, scaling=scaling, impl=impl)
    (loss.double() * up).sum().backward()
    xr = xa.detach().double().requires_grad_()
    ref = ref_loss(xr, label, reduction='none', alpha=alpha, scaling=scaling)
    (ref * up).sum().backward()
    assert loss.shape == label.shape
    assert (loss.double() - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert (xa.grad.double() - xr.grad).abs().max() <= grad_rtol * xr.grad.abs().max()


CASES = [((2, 5, 6, 7), False), ((2, 21, 9, 11), False), ((2, 4, 5, 3), True),
         ((2, 21, 6, 6), True), ((37, 6), False), ((37, 6), True), ((3, 7, 40), True),
         ((1, 171, 4, 5), False)]


@pytest.mark.parametrize('impl', FUSED_IMPLS)
@pytest.mark.parametrize('shape,scaling', CASES)
def test_fused_paths(impl, shape, scaling):
    check_impl(impl, shape, scaling)


@pytest.mark.parametrize('impl', FUSED_IMPLS)
def test_fused_paths_scaling_171_classes(impl):
    """With scaling, the 171 per-class gradients nearly cancel in the softmax
    Jacobian: fp32 is good to ~1.4e-5 here, the literal formula through fp32
    autograd included (measured), so the bound is 3e-5."""
    check_impl(impl, (1, 171, 4, 5), True, grad_rtol=3e-5)


@pytest.mark.parametrize('impl', FUSED_IMPLS + ['literal'])
@pytest.mark.parametrize('shape', [(0, 5, 4, 4), (0, 5), (2, 5, 0, 3)])
def test_empty_batch_gives_empty_loss_and_zero_gradient(impl, shape):
    x = torch.randn(shape, requires_grad=True)
    label = torch.zeros((shape[0], ) + shape[2:], dtype=torch.long)
    loss = ngl_pixel_loss(x, label, impl=impl)
    assert loss.shape == label.shape
    loss.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize('impl', FUSED_IMPLS + ['literal'])
@pytest.mark.parametrize('scaling', [False, True])
def test_nan_logits_in_ignored_pixels_change_nothing(impl, scaling):
    x, label, up = per_pixel_case((2, 5, 4, 4))
    label[0, 1, 2] = 255
    x_nan = x.clone()
    x_nan[0, :, 1, 2] = float('nan')
    x_nan[0, 3, 1, 2] = float('inf')
    outs = []
    for logits in (x, x_nan):
        logits = logits.clone().requires_grad_()
        loss = ngl_pixel_loss(logits, label, scaling=scaling, impl=impl)
        (loss.double() * up).sum().backward()
        outs.append((loss.detach(), logits.grad))
    assert torch.isfinite(outs[1][0]).all() and torch.isfinite(outs[1][1]).all()
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.allclose(outs[0][1], outs[1][1], rtol=0, atol=0)


@pytest.mark.parametrize('impl', FUSED_IMPLS)
def test_fused_paths_other_alpha(impl):
    check_impl(impl, (2, 5, 6, 7), False, alpha=1.5)
    check_impl(impl, (2, 5, 6, 7), True, alpha=3.0)


@pytest.mark.parametrize('impl', FUSED_IMPLS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('scaling', [False, True])
def test_fused_paths_half_inputs_compute_in_float32(impl, dtype, scaling):
    x, label, up = per_pixel_case((2, 6, 5, 5))
    x = x.to(dtype).requires_grad_()
    loss = ngl_pixel_loss(x, label, scaling=scaling, impl=impl)
    (loss.double() * up).sum().backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == dtype
    xr = x.detach().double().requires_grad_()
    ref = ref_loss(xr, label, reduction='none', scaling=scaling)
    (ref * up).sum().backward()
    assert (loss.double() - ref).abs().max() <= 1e-5 * ref.abs().max()
    # the gradient comes back in the half dtype: its rounding, no more
    eps = torch.finfo(dtype).eps
    assert (x.grad.double() - xr.grad).abs().max() <= 2 * eps * xr.grad.abs().max()


def test_triton_refuses_float64_and_cpu_tensors_without_the_interpreter(monkeypatch):
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    label = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="impl='triton' computes in float32.*float64"):
        ngl_pixel_loss(x, label, impl='triton')
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(ValueError, match="impl='triton' needs CUDA tensors.*TRITON_INTERPRET"):
        ngl_pixel_loss(x.float(), label, impl='triton')


def test_auto_picks_compile_for_large_cpu_tensors_and_torch_for_small():
    assert resolve_impl('auto', torch.empty(2, 21, 8, 8)).name == 'torch'
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256)).name == 'compile'
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256, dtype=torch.float64)).name == 'torch'
    assert resolve_impl('torch', torch.empty(2, 21, 256, 256)).name == 'torch'
    with pytest.raises(ValueError, match='impl must be one of') as info:
        resolve_impl('fast', torch.empty(2, 3))
    for record in backends.IMPLEMENTATIONS.values():  # each path is described in the error
        assert record.description in str(info.value)


def test_env_var_overrides_auto(monkeypatch):
    monkeypatch.setenv('NGL_MMSEG_IMPL', 'literal')
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256)).name == 'literal'
    monkeypatch.setenv('NGL_MMSEG_IMPL', 'reference')  # 'literal' by another name, until 0.6.0
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256)).name == 'literal'
    monkeypatch.setenv('NGL_MMSEG_IMPL', 'bogus')
    with pytest.raises(ValueError, match='NGL_MMSEG_IMPL'):
        resolve_impl('auto', torch.empty(2, 3))


def test_every_implementation_is_one_record_with_the_documented_contract():
    assert IMPLS == ('auto', 'triton', 'compile', 'torch', 'literal', 'reference')
    assert backends.ALIASES == {'reference': 'literal'}
    for name, impl in backends.IMPLEMENTATIONS.items():
        assert impl.name == name and impl.description
        assert impl.fused == (name != 'literal')
        assert callable(impl.unusable)


class FakeCudaLogits:
    """What resolve_impl reads of CUDA logits, on a machine without CUDA."""
    is_cuda = True
    dtype = torch.float32

    def __init__(self, *shape):
        self.shape = shape

    def numel(self):
        return math.prod(self.shape)


def test_auto_takes_triton_on_cuda_only_from_the_minimum_version_on(monkeypatch):
    """Below MIN_TRITON 'auto' falls back to the compiled path with one warning
    (the installed version is faked; the kernels are not run here)."""
    monkeypatch.setattr(backends, '_triton_module', lambda: types.SimpleNamespace(MAX_CLASSES=1024))
    monkeypatch.setattr(backends, 'triton_self_check',  # the kernels' own check: test_gpu_path
                        lambda logits, scaling=False: backends.selfcheck.Result(None, 0.0))
    backends._warn_old_triton.cache_clear()
    logits = FakeCudaLogits(2, 21, 512, 512)
    monkeypatch.setattr(backends, 'triton_version', lambda: backends.MIN_TRITON)
    assert resolve_impl('auto', logits).name == 'triton'
    monkeypatch.setattr(backends, 'triton_version', lambda: (3, 9))
    assert resolve_impl('auto', logits).name == 'triton'
    assert resolve_impl('auto', FakeCudaLogits(2, 2000, 64, 64)).name == 'compile'  # > MAX_CLASSES
    monkeypatch.setattr(backends, 'triton_version', lambda: (2, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert resolve_impl('auto', logits).name == 'compile'
        assert resolve_impl('auto', logits).name == 'compile'
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert 'Triton 2.1 is older than 3.6' in messages[0] and 'torch.compile' in messages[0]


def test_triton_version_reads_the_installed_distribution():
    pytest.importorskip('triton', reason='Triton is not installed')
    import triton
    assert backends.triton_version() == tuple(int(v) for v in triton.__version__.split('.')[:2])


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(*args):
        raise RuntimeError('no C++ compiler')
    monkeypatch.setattr(backends.COMPILED, '_forward', broken, raising=False)
    monkeypatch.setattr(backends.COMPILED, '_backward', broken, raising=False)
    monkeypatch.setattr(backends.COMPILED, 'failed', False)
    with pytest.warns(UserWarning, match='falling back to the eager implementation'):
        check_impl('compile', (2, 5, 6, 7), True)
    assert backends.COMPILED.failed
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256)).name == 'torch'


def test_fused_paths_save_no_logits_sized_tensor_but_the_input():
    """Only the logits and labels are kept for backward."""
    x = torch.randn(2, 5, 8, 8, requires_grad=True)
    label = torch.randint(0, 5, (2, 8, 8))
    loss = ngl_pixel_loss(x, label, impl='torch')
    saved = loss.grad_fn.saved_tensors
    assert len(saved) == 2 and saved[0] is x and saved[1] is label


@pytest.mark.slow
@pytest.mark.skipif(TRITON_INTERPRET, reason='already in interpreter mode')
def test_triton_kernels_in_interpreter_mode():
    """The Triton kernels on CPU tensors through TRITON_INTERPRET=1, in a
    subprocess: every test case parametrized with impl='triton' (here and in
    test_ngl_loss.py, all NGLLoss options) runs there."""
    pytest.importorskip('triton', reason='Triton is not installed')
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         '-k', 'triton and not interpreter_mode',
         'tests/plugin/test_ops.py', 'tests/plugin/test_ngl_loss.py'],
        env=env, capture_output=True, text=True, timeout=1200, cwd=REPO)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    # Every triton-parametrized case ran there: none skipped, none deselected by accident.
    passed = re.search(r'(\d+) passed', proc.stdout)
    assert passed and 'skipped' not in proc.stdout.splitlines()[-1], tail
    here = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '--collect-only', '-p', 'no:cacheprovider',
         '-k', 'triton and not interpreter_mode', 'tests/plugin/test_ops.py',
         'tests/plugin/test_ngl_loss.py'],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    collected = [line for line in here.stdout.splitlines() if '::' in line]
    assert collected and int(passed.group(1)) == len(collected), tail
