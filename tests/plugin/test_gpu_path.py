"""Issue 23: a GPU path that neither stalls nor surprises.

No host read in a steady-state training call, nothing kept on the loss module,
one ignore_index check, compile-clean (fullgraph), 64-bit addresses in the
Triton kernels, and the kernels' self-check with its fallback. What needs a GPU
runs in ``tools/gpu_check.py``; here each property is checked on CPU (the
Triton parts through Triton's interpreter, in a subprocess).
"""
import importlib
import inspect
import math
import os
import re
import subprocess
import sys
import types
import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO
from impls import TRITON_INTERPRET
from reference import ref_loss, ref_pixel_loss
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import ngl_mmseg  # noqa: F401
from ngl_mmseg import NGLLoss, ngl_loss, ngl_pixel_loss
from ngl_mmseg.losses import monitor
from ngl_mmseg.losses import utils as loss_utils
from ngl_mmseg.ops import backends, checks, ngl_torch, resolve_impl, selfcheck

ngl_loss_module = importlib.import_module('ngl_mmseg.losses.ngl_loss')  # not the function

# --- 1. no host read in a steady-state training call -----------------------------------

HOST_READS = ('aten::_local_scalar_dense', 'aten::is_nonzero', 'aten::item', 'aten::nonzero',
              'aten::_unique2', 'aten::unique_dim', 'aten::masked_select')
# Indexing with a boolean (or uint8) mask: the result's size, or the positions written,
# depend on the mask's values, which the host reads (a nonzero inside the op).
MASK_INDEXING = ('aten::index', 'aten::index_put', 'aten::index_put_', 'aten::_index_put_impl_')
# Copies between devices: a copy to the host waits for the device.
COPIES = ('aten::_to_copy', 'aten::copy_')
# Tensor methods that read the values on the host without a visible aten op on CPU
# (tolist and numpy read the CPU memory directly; cpu() is a no-op there, a copy on a GPU).
HOST_METHODS = (torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu)


def _mask_indexed(args):
    return any(isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)
               for index in (args[1] if len(args) > 1 else ()))


def _crosses_devices(name, args, kwargs):
    if name == 'aten::copy_':
        return args[0].device != args[1].device
    target = kwargs.get('device')
    return target is not None and torch.device(target) != args[0].device


class _HostMethods(TorchFunctionMode):
    def __init__(self, reads):
        super().__init__()
        self.reads = reads

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in HOST_METHODS:
            self.reads.append(f'Tensor.{func.__name__}')
        return func(*args, **(kwargs or {}))


class HostReads(TorchDispatchMode):
    """Records every op that reads a tensor's value on the host (on a GPU: a sync): the
    scalar reads (``item()``, ``bool()``, ``float()``), ops whose output size depends on
    values (``nonzero``, ``unique``, ``masked_select``, indexing with a boolean mask, as
    read or as assigned), copies between devices, and ``tolist()``, ``numpy()``,
    ``cpu()``."""

    def __init__(self):
        super().__init__()
        self.reads = []
        self._methods = _HostMethods(self.reads)

    def __enter__(self):
        self._methods.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._methods.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        if (name in HOST_READS or (name in MASK_INDEXING and _mask_indexed(args))
                or (name in COPIES and _crosses_devices(name, args, kwargs))):
            self.reads.append(name)
        return func(*args, **kwargs)


def test_host_reads_flags_each_kind_of_host_read():
    """The detector the no-sync tests rely on sees each way a host read is written
    (``bool(bad.any())`` is how a label check reads its result on the host); the meta
    device stands in for a second device."""
    x = torch.arange(6.0)
    mask = x > 2
    reads = {
        'bool(t.any())': lambda: bool(mask.any()),
        'float(t.sum())': lambda: float(x.sum()),
        't.item()': lambda: x[0].item(),
        't[mask]': lambda: x[mask],
        't[mask] = v': lambda: x.clone().__setitem__(mask, 0.0),
        't.nonzero()': lambda: mask.nonzero(),
        't.tolist()': lambda: x.tolist(),
        't.numpy()': lambda: x.numpy(),
        't.cpu()': lambda: x.cpu(),
        "t.to('meta')": lambda: x.to('meta'),
        'meta.copy_(t)': lambda: torch.empty(6, device='meta').copy_(x),
    }
    for what, read in reads.items():
        with HostReads() as mode:
            read()
        assert mode.reads, what
    fine = {  # queued work only: no read
        'masked_fill': lambda: x.masked_fill(mask, 0.0),
        'where': lambda: torch.where(mask, x, 0.0),
        't[index]': lambda: x[torch.tensor([0, 2])],
        't[index] = v': lambda: x.clone().__setitem__(torch.tensor([0, 2]), 1.0),
        'float32 -> float64': lambda: x.to(torch.float64),
        'copy_ on one device': lambda: torch.empty(6).copy_(x),
        '_assert_async': lambda: torch._assert_async(mask.any()),  # on a GPU: no wait
    }
    for what, queued in fine.items():
        with HostReads() as mode:
            queued()
        assert mode.reads == [], (what, mode.reads)


@pytest.fixture
def as_on_a_gpu(monkeypatch):
    """The checks as they run on a GPU after its first EXACT_DEVICE_CHECKS calls."""
    monkeypatch.setattr(checks, 'checks_exactly', lambda tensor: False)
    monkeypatch.setattr(loss_utils, 'checks_exactly', lambda tensor: False)


def inputs(shape=(2, 7, 6, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * 2
    label = torch.randint(0, shape[1], (shape[0], ) + shape[2:], generator=g)
    label.view(-1)[::5] = 255
    return logits, label


@pytest.mark.parametrize('all_ignored', [False, True])
def test_a_training_call_reads_nothing_on_the_host(as_on_a_gpu, message_hub, all_ignored):
    """Every option at once (CE-matched weight, both warm-ups running, class and pixel
    weights): forward and backward queue work and return. With every pixel ignored the
    loss is 0 and its gradient 0, also without reading the pixel count."""
    message_hub.update_info('max_iters', 100)
    message_hub.update_info('iter', 3)
    logits, label = inputs()
    if all_ignored:
        label[:] = 255
    weight = torch.rand(label.shape, generator=torch.Generator().manual_seed(1))
    loss = NGLLoss(impl='torch', auto_weight=True, ce_warmup=0.1, target_bias_warmup=0.1,
                   class_weight=[1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0])
    x = logits.clone().requires_grad_()
    with HostReads() as mode:
        value = loss(x, label, weight=weight)
        value.backward()
        ngl_loss(x.detach(), label, class_weight=torch.ones(7), weight=weight)
    assert mode.reads == []
    if all_ignored:
        assert value.item() == 0.0 and torch.count_nonzero(x.grad) == 0
        _, total, _ = monitor.peek(loss.monitor_key)
        assert total.item() == 0 and loss.last_value is None
    else:
        assert math.isfinite(value.item()) and torch.isfinite(x.grad).all()


def test_bad_labels_on_a_gpu_stop_the_run_through_a_device_side_assert(as_on_a_gpu):
    """After the first calls a GPU checks labels with torch._assert_async (no wait); on
    CPU that assert raises the documented message."""
    logits, label = inputs()
    label[0, 0, 0] = 7
    with HostReads() as mode, pytest.raises(RuntimeError) as info:
        NGLLoss(impl='torch')(logits, label)
    assert str(info.value) == checks.LABEL_ASSERT_MESSAGE
    assert mode.reads == []


def test_labels_are_checked_exactly_on_cpu_and_on_a_gpus_first_calls(monkeypatch):
    """CPU: always exact, the values named. Any other device: exact on the first
    EXACT_DEVICE_CHECKS calls of the process, then device-side (meta tensors stand in)."""
    logits, label = inputs()
    label[0, 0, 0] = 9
    with pytest.raises(ValueError, match=r'label holds values \[9\] outside \[0, 7\)'):
        NGLLoss(impl='torch')(logits, label)
    monkeypatch.setattr(checks, '_exact_device_checks', checks.collections.Counter())
    meta = torch.empty(3, device='meta')
    answers = [checks.checks_exactly(meta) for _ in range(checks.EXACT_DEVICE_CHECKS + 5)]
    assert answers == [True] * checks.EXACT_DEVICE_CHECKS + [False] * 5
    assert all(checks.checks_exactly(label) for _ in range(30))


# --- 2. a stateless forward -------------------------------------------------------------

def test_the_loss_module_keeps_nothing_and_posts_the_monitor_value(message_hub):
    logits, label = inputs()
    loss = NGLLoss(impl='torch')
    before = dict(vars(loss))
    assert monitor.peek(loss.monitor_key) is None
    loss(logits, label)
    assert vars(loss).keys() == before.keys()
    assert all(vars(loss)[k] is v for k, v in before.items())
    mean, total, num_classes = monitor.peek(loss.monitor_key)
    assert num_classes == 7 and total.item() == (label != 255).sum().item()
    assert mean.item() == pytest.approx(ref_loss(logits, label).item(), rel=1e-6)
    assert loss.last_value.item() == mean.item()
    other = NGLLoss(impl='torch').eval()  # validation posts nothing
    other(logits, label)
    assert monitor.peek(other.monitor_key) is None


def test_the_warmup_shares_are_computed_once_per_iteration(message_hub, monkeypatch):
    """The decode and auxiliary heads' losses of one iteration share one computation."""
    calls = []
    original = ngl_loss_module.warmup_share
    monkeypatch.setattr(ngl_loss_module, 'warmup_share',
                        lambda *args: calls.append(args) or original(*args))
    ngl_loss_module._shares_at_iteration.cache_clear()
    message_hub.update_info('max_iters', 1000)
    logits, label = inputs()
    decode = NGLLoss(impl='torch', ce_warmup=0.1, target_bias_warmup=0.05)
    aux = NGLLoss(impl='torch', ce_warmup=0.1, target_bias_warmup=0.05, loss_weight=0.4)
    for it in (0, 1, 2):
        message_hub.update_info('iter', it)
        decode(logits, label)
        aux(logits, label)
    assert len(calls) == 3 * 2  # per iteration: the CE share and the bias share, once each
    assert decode.ce_and_bias_shares() == (pytest.approx(0.98), pytest.approx(0.96))


def test_one_ignore_index_check_with_one_message():
    from ngl_mmseg.ops import check_ignore_index
    assert loss_utils.check_ignore_index is check_ignore_index
    logits, label = inputs()
    for bad in (2**40, 3.5, '255', True):
        with pytest.raises(ValueError) as from_ops:
            ngl_pixel_loss(logits, label, ignore_index=bad)
        with pytest.raises(ValueError) as from_loss:
            NGLLoss()(logits, label, ignore_index=bad)
        assert str(from_ops.value) == str(from_loss.value)
        assert str(from_ops.value).startswith('ignore_index must be an integer in the int32 range')


# --- 3. compile-clean -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('impl', ['auto', 'compile', 'torch', 'literal'])
def test_fullgraph_compile_of_the_loss_forward_and_backward(impl):
    """torch.compile(NGLLoss(...), fullgraph=True): a graph break would raise. Every
    option that needs no Runner, checked against the float64 formula."""
    torch._dynamo.reset()
    logits, label = inputs()
    weight = torch.rand(label.shape, generator=torch.Generator().manual_seed(1))
    cw = [1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0]
    loss = NGLLoss(impl=impl, auto_weight=True, class_weight=cw, scaling=True)
    compiled = torch.compile(loss, fullgraph=True, backend='inductor' if impl == 'auto'
                             else 'aot_eager')
    x = logits.clone().requires_grad_()
    value = compiled(x, label, weight=weight)
    value.backward()
    xr = logits.double().requires_grad_()
    expected = ref_loss(xr, label, weight=weight, class_weight=cw, scaling=True,
                        loss_weight=loss.effective_weight(7))
    expected.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (x.grad.double() - xr.grad).abs().max() <= 1e-5 * xr.grad.abs().max()
    # checked in the graph: our assert, or inductor's own bounds check when it runs first
    with pytest.raises(RuntimeError, match='NGL: a label is outside|index out of bounds'):
        bad = label.clone()
        bad[0, 0, 0] = 7
        compiled(x, bad, weight=weight)


def test_compiled_warmups_follow_the_iteration_without_recompiling_each_time(message_hub):
    """Under mmengine's compile = True the warm-ups read the iteration outside the graph
    (one graph break): the values follow the schedule and the graphs do not multiply."""
    from torch._dynamo.testing import CompileCounter
    torch._dynamo.reset()
    counter = CompileCounter()
    message_hub.update_info('max_iters', 100)
    logits, label = inputs()
    loss = NGLLoss(impl='torch', ce_warmup=0.1, target_bias_warmup=0.1, auto_weight=True)
    compiled = torch.compile(loss, backend=counter)
    for it in range(0, 14):
        message_hub.update_info('iter', it)
        assert compiled(logits, label).item() == pytest.approx(loss(logits, label).item(),
                                                               rel=1e-6), it
    assert counter.frame_count <= 6, counter.frame_count  # 4 measured; 11 shares were seen


def test_compiled_train_step_config_sets_compile():
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/fcn_r18-d8_ngl_compile_1xb8-1k_voc12aug-synthetic-64x64.py'))
    assert cfg.compile is True
    assert cfg.model.decode_head.loss_decode.type == 'NGLLoss'
    assert cfg.model.decode_head.loss_decode.ce_warmup == 0.1


@pytest.mark.slow
def test_compiled_quickstart_config_trains_through_the_train_tool(tmp_path):
    """mmengine's compile = True with NGLLoss and the recipe, a few iterations through
    ngl-mmseg's train tool (inductor compiles the whole train_step on CPU: minutes)."""
    from helpers import TOOLS, make_dataset
    make_dataset('voc', tmp_path / 'data' / 'synthetic' / 'voc')
    cfg = os.path.join(
        REPO, 'configs/quickstart/fcn_r18-d8_ngl_compile_1xb8-1k_voc12aug-synthetic-64x64.py')
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(
        [sys.executable, os.path.join(TOOLS, 'train.py'), cfg, '--work-dir', str(tmp_path / 'w'),
         '--cfg-options', 'train_cfg.max_iters=6', 'train_cfg.val_interval=1000',
         'default_hooks.logger.interval=2', 'default_hooks.checkpoint.interval=1000',
         'train_dataloader.batch_size=2', 'train_dataloader.num_workers=1'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'compile = True' in out and 'Iter(train) [6/6]' in out, out[-4000:]
    assert 'decode.ngl_progress' in out, out[-4000:]  # the monitor's posts left the graph


# --- 4. 64-bit addresses in the Triton kernels (through Triton's interpreter) ----------

# What the launcher passes (``ngl_triton.forward`` / ``backward`` with the kernels replaced
# by a recorder, on meta tensors: no memory, nothing launched), then the kernels' own
# offset helpers run on it in plain PyTorch.
OFFSET_SITE = re.compile(r'(\w+_ptr) \+ (_tile_offsets|_pixel_offsets)\(([^()]*)\)')
ANY_ADDRESS = re.compile(r'(\w+_ptr) \+ ')
CUDA_GRID_LIMITS = (2**31 - 1, 65535)  # programs on a launch grid's first and second axes


class RecordedLaunch:
    """Stands in for a Triton kernel: ``kernel[grid](*args, **kwargs)`` records them."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        def launch(*args, num_warps=None, **kwargs):  # num_warps: a launch option
            self.grid = grid
            self.args = inspect.signature(self.kernel.fn).bind(*args, **kwargs).arguments
        return launch


def as_kernel_argument(value):
    """An int as Triton passes it to a kernel (int32 when it fits, else int64), as a
    one-element tensor: tensor-tensor arithmetic promotes as Triton's does."""
    return torch.tensor([value], dtype=torch.int32 if -2**31 <= value < 2**31 else torch.int64)


def triton_language_in_torch(program_ids, int64=torch.int64):
    """The parts of ``triton.language`` that ``ngl_triton._tile`` uses, in PyTorch:
    ``program_id`` and ``arange`` are int32 as in Triton. ``int64=torch.int32`` turns the
    kernels' casts to int64 into no-ops: the arithmetic a 32-bit kernel would do."""
    return types.SimpleNamespace(
        program_id=lambda axis: torch.tensor([program_ids[axis]], dtype=torch.int32),
        arange=lambda start, end: torch.arange(start, end, dtype=torch.int32),
        int64=int64, int32=torch.int32)


def offset_sites(ngl_triton):
    """Every ``<name>_ptr + _tile_offsets(...)`` / ``_pixel_offsets(...)`` in the kernels'
    source (their helpers included), as (pointer, helper, argument text); asserts that no
    other address is computed (``_horner``'s few coefficients aside)."""
    sites = []
    for name, jitted in vars(ngl_triton).items():
        if not inspect.isfunction(getattr(jitted, 'fn', None)) or name == '_horner':
            continue  # not a @triton.jit function, or the polynomial's coefficient reads
        source = inspect.getsource(jitted.fn)
        found = OFFSET_SITE.findall(source)
        assert len(found) == len(ANY_ADDRESS.findall(source)), (name, source)
        sites += found
    return sites


def offsets_of_the_last_program(ngl_triton, recorded, sites, int64=torch.int64):
    """{pointer: offsets} of the grid's last program (the largest offsets), computed by
    ``_tile`` and the offset helpers themselves, from the recorded arguments."""
    args = recorded.args
    last = (recorded.grid[0] - 1, recorded.grid[1] - 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ngl_triton, 'tl', triton_language_in_torch(last, int64))
        b, offs_c, offs_s = ngl_triton._tile.fn(args['BLOCK_C'], args['BLOCK_S'])
        scope = {name: as_kernel_argument(value) for name, value in args.items()
                 if isinstance(value, int) and not isinstance(value, bool)}
        scope.update(b=b, offs_c=offs_c, offs_s=offs_s)
        return {pointer: getattr(ngl_triton, helper).fn(*eval(f'({text},)', {}, scope))
                for pointer, helper, text in sites if pointer in args}


def exact_offsets(recorded, sites):
    """The same offsets in Python's ints (no overflow), by the helpers' formulas."""
    args = recorded.args
    b = recorded.grid[1] - 1
    block_s = args['BLOCK_S']
    scope = dict(args, b=b, offs_c=list(range(args['BLOCK_C'])),
                 offs_s=[(recorded.grid[0] - 1) * block_s + j for j in range(block_s)])
    exact = {}
    for pointer, helper, text in sites:
        if pointer not in args:
            continue
        values = eval(f'({text},)', {}, scope)
        if helper == '_tile_offsets':
            b_, offs_c, offs_s, s_b, s_c, s_s = values
            exact[pointer] = [[b_ * s_b + c * s_c + s * s_s for s in offs_s] for c in offs_c]
        else:
            b_, offs_s, s_b, s_s = values
            exact[pointer] = [b_ * s_b + s * s_s for s in offs_s]
    return exact


LAUNCH_CASES = {  # (B, C, S), logits dtype
    # the example: 48 x 171 x 512 x 512 logits, 2.15e9 elements
    'logits past 2^31 elements': ((48, 171, 512 * 512), torch.bfloat16),
    # B * S past 2^31 pixels through the image index: labels, loss and upstream gradient
    'pixels past 2^31 across 9000 images': ((9000, 3, 2**18), torch.float16),
    # ... and in two images: 1.9e7 pixel blocks, more than a grid's second axis holds
    'pixels past 2^31 in 2 images': ((2, 2, 1_200_000_001), torch.float32),
}


def test_launcher_grid_and_every_offset_are_64_bit_past_2_31():
    """Without Triton's interpreter (fast), what the launchers ``ngl_triton.forward`` and
    ``backward`` pass for tensors past 2^31 elements or pixels (meta tensors; the kernels
    replaced by a recorder), then, for the grid's last program, the offsets of every
    pointer of both kernels (logits, labels, loss, upstream gradient, gradient).

    Covered: the grid, (cdiv(S, BLOCK_S), B), within CUDA's limits per axis; the
    arguments, strides included, as the launcher computes them; ``_tile`` and the offset
    helpers ``_tile_offsets`` / ``_pixel_offsets`` themselves (their Python bodies, with
    int32 program ids and aranges and int32 ints where Triton passes int32), with the
    arguments each call site in the kernels' source passes, for every pointer the kernels
    address (the source is checked to address nothing else); compared with Python's ints.
    Not covered here: Triton's own code generation from those expressions (the
    interpreter tests below run it, slow), and promotion rules Triton might not share with
    PyTorch (the same for int32/int64 tensors). The same computation with the int64 casts
    made no-ops gives other offsets for every pointer: a 32-bit kernel fails this test."""
    pytest.importorskip('triton', reason='Triton is not installed')
    from ngl_mmseg.ops import ngl_triton
    sites = offset_sites(ngl_triton)
    wrapped_in_int32 = set()
    for case, ((B, C, S), dtype) in LAUNCH_CASES.items():
        z = torch.empty(B, C, S, dtype=dtype, device='meta')
        label = torch.empty(B, S, dtype=torch.int64, device='meta')
        upstream = torch.empty(B, S, device='meta')
        for name, launcher, tensors in (('_ngl_fwd_kernel', ngl_triton.forward, (z, label)),
                                        ('_ngl_bwd_kernel', ngl_triton.backward,
                                         (z, label, upstream))):
            recorded = RecordedLaunch(getattr(ngl_triton, name))
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(ngl_triton, name, recorded)
                launcher(*tensors, 2.4092, False, 255)
            block_s = recorded.args['BLOCK_S']
            assert recorded.grid == (-(-S // block_s), B), case
            assert all(n <= limit for n, limit in zip(recorded.grid, CUDA_GRID_LIMITS)), case
            pointers = {p for p in recorded.args if p.endswith('_ptr') and p != 'coef_ptr'}
            exact = exact_offsets(recorded, sites)
            assert exact.keys() == pointers, (name, exact.keys())
            got = offsets_of_the_last_program(ngl_triton, recorded, sites)
            narrow = offsets_of_the_last_program(ngl_triton, recorded, sites, int64=torch.int32)
            for pointer in pointers:
                assert got[pointer].dtype == torch.int64, (case, name, pointer)
                assert got[pointer].tolist() == exact[pointer], (case, name, pointer)
                if narrow[pointer].tolist() != exact[pointer]:
                    wrapped_in_int32.add((name, pointer))
            assert max(map(max, exact['z_ptr'])) >= 2**31 or max(exact['lab_ptr']) >= 2**31
    assert wrapped_in_int32 == {('_ngl_fwd_kernel', p) for p in ('z_ptr', 'lab_ptr', 'out_ptr')} | {
        ('_ngl_bwd_kernel', p) for p in ('z_ptr', 'lab_ptr', 'gout_ptr', 'grad_ptr')}


NO_ADDRESS_SPACE = 'cannot reserve the address space for a past-2^31 view here'


def run_in_interpreter(keyword, timeout=900):
    """This file's tests matching ``keyword`` in a subprocess with TRITON_INTERPRET=1.
    Every one must pass; the one skip tolerated is a machine that cannot reserve the
    address space of the past-2^31 test, and it skips this test with that reason (after
    the others passed)."""
    pytest.importorskip('triton', reason='Triton is not installed')
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rs',
                           '-k', keyword, 'tests/plugin/test_gpu_path.py'],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0 and ' passed' in proc.stdout, tail
    summary = proc.stdout.splitlines()[-1]
    if 'skipped' in summary:
        skips = [line for line in proc.stdout.splitlines() if line.startswith('SKIPPED')]
        assert summary.count('skipped') == 1 and re.search(r'\b1 skipped', summary), tail
        assert len(skips) == 1 and NO_ADDRESS_SPACE in skips[0], tail
        pytest.skip(f'the other interpreted tests passed ({summary.strip()}); '
                    f'{skips[0].split(": ", 1)[-1]}')


@pytest.mark.slow
@pytest.mark.skipif(TRITON_INTERPRET, reason='already in interpreter mode')
def test_triton_parts_in_the_interpreter():
    run_in_interpreter('interpreted')


needs_interpreter = pytest.mark.skipif(not TRITON_INTERPRET,
                                       reason='runs in test_triton_parts_in_the_interpreter')

if TRITON_INTERPRET:  # the kernel's globals must be module-level names
    import triton
    import triton.language as tl

    from ngl_mmseg.ops import ngl_triton

    @triton.jit
    def offsets_kernel(out_tile, out_pix, s_b, s_c, s_s, BLOCK_C: tl.constexpr,
                       BLOCK_S: tl.constexpr):
        """The offsets the NGL kernels compute, written out (tile and pixel)."""
        b, offs_c, offs_s = ngl_triton._tile(BLOCK_C, BLOCK_S)
        tile = ngl_triton._tile_offsets(b, offs_c, offs_s, s_b, s_c, s_s)
        pix = ngl_triton._pixel_offsets(b, offs_s, s_b, s_s)
        pid = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
        idx = tl.arange(0, BLOCK_C)[:, None] * BLOCK_S + tl.arange(0, BLOCK_S)[None, :]
        tl.store(out_tile + pid * BLOCK_C * BLOCK_S + idx, tile)
        tl.store(out_pix + pid * BLOCK_S + tl.arange(0, BLOCK_S), pix)


@needs_interpreter
def test_interpreted_index_arithmetic_is_64_bit_past_2_31():
    """The kernels' offsets (``_tile`` -> ``_tile_offsets`` / ``_pixel_offsets``, which
    every pointer of both kernels goes through) for strides whose products pass 2^31:
    int32 arithmetic would wrap them (Triton passes strides below 2^31 as int32)."""
    block_c, block_s, grid = 4, 16, (3, 2)  # 3 pixel blocks, 2 images
    strides = (2**31 - 7, 2**30 + 5, 2**27 + 3)  # each below 2^31: passed as int32
    tile = torch.zeros(grid[0] * grid[1], block_c, block_s, dtype=torch.int64)
    pix = torch.zeros(grid[0] * grid[1], block_s, dtype=torch.int64)
    offsets_kernel[grid](tile, pix, *strides, BLOCK_C=block_c, BLOCK_S=block_s)
    s_b, s_c, s_s = strides
    for image in range(grid[1]):
        for block in range(grid[0]):
            pid = image * grid[0] + block
            for c in range(block_c):
                for j in range(block_s):
                    s = block * block_s + j
                    assert tile[pid, c, j].item() == image * s_b + c * s_c + s * s_s
            assert pix[pid].tolist() == [image * s_b + (block * block_s + j) * s_s
                                         for j in range(block_s)]
    assert tile.max().item() > 2**32  # the check covers offsets past 2^31 (and 2^32)


@needs_interpreter
def test_interpreted_kernels_address_an_image_past_element_2_31():
    """Both kernels on logits, labels and gradient whose third image starts past element
    2^31 of its storage (image stride 2^30 + 64, passed as int32: 2 * stride wraps in
    int32), as strided views into large allocations of which only the pages the kernels
    touch take memory; against the same pixels in small tensors. The labels are uint8
    (the kernels load any integer labels and widen them), so the three reservations
    take 10 GiB of address space (4 + 2 + 4), not 24 with int64 labels."""
    stride = 2**30 + 64
    size = 2 * stride + 4096
    try:
        z_store = torch.empty(size, dtype=torch.float16)
        l_store = torch.empty(size, dtype=torch.uint8)
        g_store = torch.empty(size, dtype=torch.float16)
    except RuntimeError as exc:  # e.g. a strict overcommit policy or a small address limit
        pytest.skip(f'{NO_ADDRESS_SPACE} (10 GiB, untouched): {exc}')
    B, C, S = 3, 5, 40
    small, label = inputs((B, C, S))
    small = small.half()
    z = torch.as_strided(z_store, (B, C, S), (stride, S, 1))
    z.copy_(small)
    lab = torch.as_strided(l_store, (B, S), (stride, 1))
    lab.copy_(label)
    up = torch.rand(B, S)
    grad = torch.as_strided(g_store, (B, C, S), (stride, S, 1))
    got = ngl_triton.forward(z, lab, 2.4092, False, 255)
    ngl_triton._launch(ngl_triton._ngl_bwd_kernel, z, lab, (up, grad), grad.stride(),
                       ngl_triton._coef_tensors(2.4092, z.device)[1], 2.4092, False, 255)
    want = ngl_triton.forward(small, label, 2.4092, False, 255)
    want_grad = ngl_triton.backward(small, label, up, 2.4092, False, 255)
    assert torch.equal(got, want)
    assert torch.equal(grad.clone(), want_grad)
    ref = ref_pixel_loss(small.double(), label)
    assert (got.double() - ref).abs().max() <= 1e-5 * ref.abs().max()


# --- 6. the Triton kernels check themselves ---------------------------------------------

@pytest.fixture
def stand_in_kernels(monkeypatch):
    """Run 'triton' on CPU tensors with stand-in kernels: ``install(forward, backward)``."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')  # CPU tensors count as usable
    monkeypatch.setattr(backends, '_on_triton_device', lambda logits: True)
    monkeypatch.setattr(backends, 'triton_version', lambda: backends.MIN_TRITON)
    monkeypatch.setattr(backends, '_TRITON_CHECKS', {})
    monkeypatch.setattr(backends, '_TRITON_WARNED', set())
    calls = []

    def install(forward, backward):
        def counted(*args):
            calls.append('forward')
            return forward(*args)
        monkeypatch.setattr(backends, '_triton_module', lambda: types.SimpleNamespace(
            MAX_CLASSES=1024, forward=counted, backward=backward))
        return calls
    return install


def failing(*args):
    raise RuntimeError('no kernel image is available for execution on the device')


def test_a_kernel_that_fails_to_launch_warns_once_and_auto_takes_the_compiled_path(
        stand_in_kernels):
    stand_in_kernels(failing, failing)
    logits, label = inputs((2, 21, 8, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert resolve_impl('auto', torch.empty(2, 21, 256, 256)).name == 'compile'
        assert resolve_impl('auto', torch.empty(2, 21, 300, 300)).name == 'compile'
        value = ngl_pixel_loss(logits, label)  # small: the eager path
    messages = [str(w.message) for w in caught if 'self-check' in str(w.message)]
    assert len(messages) == 1, messages
    assert 'no kernel image is available' in messages[0] and 'torch.compile' in messages[0]
    assert torch.allclose(value.double(), ref_pixel_loss(logits, label), rtol=1e-5)
    with pytest.raises(RuntimeError, match="impl='triton'.*self-check.*no kernel image"):
        ngl_pixel_loss(logits, label, impl='triton')


@pytest.mark.parametrize('wrong, message', [
    ('value', 'its loss disagrees with the eager math'),
    ('grad', 'its gradient disagrees with the eager math'),
])
def test_a_kernel_that_computes_something_else_is_not_used(stand_in_kernels, wrong, message):
    def forward(*args):
        out = ngl_torch.forward_chunked(*args)
        return out * (1 + 1e-4) if wrong == 'value' else out

    def backward(*args):
        grad = ngl_torch.backward_chunked(*args)
        return grad.flip(-1) if wrong == 'grad' else grad
    stand_in_kernels(forward, backward)
    logits, label = inputs((2, 21, 8, 8))
    with pytest.warns(UserWarning, match=message):
        assert resolve_impl('auto', logits).name == 'torch'
    with pytest.raises(RuntimeError, match=message):
        resolve_impl('triton', logits)


def test_a_kernel_that_agrees_is_taken_and_checked_once_per_variant(stand_in_kernels):
    calls = stand_in_kernels(ngl_torch.forward_chunked, ngl_torch.backward_chunked)
    logits, label = inputs((2, 21, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for _ in range(3):
            assert resolve_impl('auto', logits).name == 'triton'
        assert calls == ['forward']  # the probe, once
        resolve_impl('auto', logits, scaling=True)  # another kernel variant: its own check
        resolve_impl('auto', logits.half())  # another dtype
        assert len(calls) == 3
        value = ngl_pixel_loss(logits, label)
    assert torch.allclose(value.double(), ref_pixel_loss(logits, label), rtol=1e-5)
    result = backends.triton_self_check(logits)
    assert result.failure is None and result.value_error <= selfcheck.VALUE_RTOL


class CudaLogitsStandIn:
    """What resolve_impl reads of CUDA logits, on a machine without CUDA."""
    is_cuda = True
    dtype = torch.float32
    shape = (2, 21, 512, 512)
    device = torch.device('cuda', 0)

    def numel(self):
        return math.prod(self.shape)


def test_auto_reads_the_triton_version_once_per_process(monkeypatch):
    """``impl='auto'`` on CUDA asks whether Triton is recent enough on every call; the
    installed version is read from the package metadata once (a read costs ~0.3 ms)."""
    import importlib.metadata
    reads = []
    monkeypatch.setattr(importlib.metadata, 'version',
                        lambda name: reads.append(name) or '3.6.0')
    monkeypatch.setattr(backends, '_triton_module', lambda: types.SimpleNamespace(MAX_CLASSES=1024))
    monkeypatch.setattr(backends, 'triton_self_check',
                        lambda logits, scaling=False: selfcheck.Result(None, 0.0))
    backends.triton_version.cache_clear()
    try:
        for _ in range(3):
            assert resolve_impl('auto', CudaLogitsStandIn()).name == 'triton'
        assert reads == ['triton']
    finally:
        backends.triton_version.cache_clear()  # the next reader sees the real version


@needs_interpreter
def test_interpreted_real_kernels_pass_their_self_check():
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for classes, scaling in ((21, False), (4, True), (171, False)):
            z = torch.empty(1, classes, 1, dtype=dtype)
            result = backends.triton_self_check(z, scaling)
            assert result.failure is None, (dtype, classes, scaling, result)
    print(f'self-check in the interpreter: {result.seconds * 1e3:.0f} ms (171 classes)')


def test_cross_entropy_share_reaches_the_compiled_graph(message_hub):
    """The CE warm-up blends in under torch.compile as in eager (a guard on the share)."""
    torch._dynamo.reset()
    message_hub.update_info('max_iters', 100)
    message_hub.update_info('iter', 5)
    logits, label = inputs()
    loss = NGLLoss(impl='torch', ce_warmup=0.1, loss_weight=0.5)
    compiled = torch.compile(loss, backend='aot_eager')
    ce = F.cross_entropy(logits.double(), label, ignore_index=255)
    expected = 0.5 * (0.5 * ce + 0.5 * ref_loss(logits, label))
    assert compiled(logits, label).item() == pytest.approx(expected.item(), rel=1e-6)
