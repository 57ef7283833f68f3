"""Every implementation of the fused NGL (torch, compile, Triton) against the float64 formula."""
import os
import subprocess
import sys
import re

import numpy as np
import pytest
import torch

from ngl_mmseg.ops import ngl_pixel_loss, resolve_impl
from ngl_mmseg.ops.poly import ngl_coefficients
from impls import FUSED_IMPLS, TRITON_INTERPRET
from reference import ALPHA, ref_loss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('alpha', [ALPHA, 0.5, 4.0])
def test_polynomials_match_the_functions_on_0_1(alpha):
    f, df = ngl_coefficients(alpha)
    p = np.linspace(0, 1, 100001)
    h = np.cos(np.cos(np.sin(p)))
    dh = np.sin(np.cos(np.sin(p))) * np.sin(np.sin(p)) * np.cos(p)
    assert np.abs(np.polyval(f, p) - (np.exp(alpha - p) - h)).max() < 1e-8 * np.exp(alpha)
    assert np.abs(np.polyval(df, p) - (-np.exp(alpha - p) - dh)).max() < 1e-7 * np.exp(alpha)


def per_pixel_case(shape, use_sigmoid, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    num_label = 2 if shape[1] == 1 else shape[1]
    label = torch.randint(0, num_label, (shape[0], ) + tuple(shape[2:]), generator=g)
    label.view(-1)[::7] = 255
    up = torch.rand(label.shape, generator=g, dtype=torch.float64)
    return x, label, up


def check_impl(impl, shape, use_sigmoid, alpha=ALPHA, dtype=torch.float32):
    x, label, up = per_pixel_case(shape, use_sigmoid)
    xa = x.to(dtype).requires_grad_()
    loss = ngl_pixel_loss(xa, label, alpha=alpha, use_sigmoid=use_sigmoid, impl=impl)
    (loss.double() * up).sum().backward()
    xr = xa.detach().double().requires_grad_()
    ref = ref_loss(xr, label, reduction='none', alpha=alpha, use_sigmoid=use_sigmoid)
    (ref * up).sum().backward()
    assert loss.shape == label.shape
    assert (loss.double() - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert (xa.grad.double() - xr.grad).abs().max() <= 1e-5 * xr.grad.abs().max()


CASES = [((2, 5, 6, 7), False), ((2, 21, 9, 11), False), ((2, 4, 5, 3), True),
         ((2, 1, 6, 6), True), ((37, 6), False), ((3, 7, 40), True)]


@pytest.mark.parametrize('impl', FUSED_IMPLS)
@pytest.mark.parametrize('shape,use_sigmoid', CASES)
def test_fused_paths(impl, shape, use_sigmoid):
    check_impl(impl, shape, use_sigmoid)


@pytest.mark.parametrize('impl', FUSED_IMPLS)
def test_fused_paths_other_alpha(impl):
    check_impl(impl, (2, 5, 6, 7), False, alpha=1.5)


@pytest.mark.parametrize('impl', FUSED_IMPLS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_fused_paths_half_inputs_compute_in_float32(impl, dtype):
    x, label, _ = per_pixel_case((2, 6, 5, 5), False)
    x = x.to(dtype).requires_grad_()
    loss = ngl_pixel_loss(x, label, impl=impl)
    loss.sum().backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == dtype
    ref = ref_loss(x.detach(), label, reduction='none')
    assert (loss.double() - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_auto_picks_compile_for_large_cpu_tensors_and_torch_for_small():
    assert resolve_impl('auto', torch.empty(2, 21, 8, 8)) == 'torch'
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256)) == 'compile'
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256, dtype=torch.float64)) == 'torch'
    assert resolve_impl('torch', torch.empty(2, 21, 256, 256)) == 'torch'
    with pytest.raises(ValueError, match='impl must be one of'):
        resolve_impl('fast', torch.empty(2, 3))


def test_env_var_overrides_auto(monkeypatch):
    monkeypatch.setenv('NGL_MMSEG_IMPL', 'reference')
    assert resolve_impl('auto', torch.empty(2, 21, 256, 256)) == 'reference'
    monkeypatch.setenv('NGL_MMSEG_IMPL', 'bogus')
    with pytest.raises(ValueError, match='NGL_MMSEG_IMPL'):
        resolve_impl('auto', torch.empty(2, 3))


def test_compile_failure_falls_back_to_eager(monkeypatch):
    import ngl_mmseg.ops as ops

    def broken():
        raise RuntimeError('no C++ compiler')
    monkeypatch.setattr(ops, '_compiled_fns', broken)
    monkeypatch.setattr(ops, '_compile_failed', False)
    with pytest.warns(UserWarning, match='falling back to the eager implementation'):
        check_impl('compile', (2, 5, 6, 7), False)
    assert ops._compile_failed


def test_fused_paths_save_no_logits_sized_tensor_but_the_input():
    """Only the logits and labels are kept for backward."""
    x = torch.randn(2, 5, 8, 8, requires_grad=True)
    label = torch.randint(0, 5, (2, 8, 8))
    loss = ngl_pixel_loss(x, label, impl='torch')
    saved = loss.grad_fn.saved_tensors
    assert len(saved) == 2 and saved[0] is x and saved[1] is label


@pytest.mark.skipif(TRITON_INTERPRET, reason='already in interpreter mode')
def test_triton_kernels_in_interpreter_mode():
    """The Triton kernels on CPU tensors through TRITON_INTERPRET=1, in a
    subprocess: every test case parametrized with impl='triton' (here and in
    test_ngl_loss.py, all NGLLoss options) runs there."""
    pytest.importorskip('triton', reason='Triton is not installed')
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-k', 'triton',
         'tests/test_ops.py', 'tests/test_ngl_loss.py'],
        env=env, capture_output=True, text=True, timeout=1200, cwd=REPO)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    passed = re.search(r'(\d+) passed', proc.stdout)
    assert passed and int(passed.group(1)) >= 60, tail
