"""tools/gpu_check.py's checks on CPU tensors at small sizes, the Triton kernels in Triton's
interpreter (a subprocess: the interpreter must be on before the kernels are defined; no sync
counting without CUDA): what a lent GPU runs first works."""
import os
import subprocess
import sys

import pytest

CHECKS = """
import torch
from ngl_lab import gpu_check
costs, cached = gpu_check.self_check_costs(cases=((21, False, torch.float32),), device='cpu')
assert costs[0]['failure'] is None and costs[0]['seconds'] > cached, costs
big = gpu_check.check_beyond_2_31(classes=5, pixels=40, images=2, device='cpu')
assert big['elements'] == 400 and big['value_rel'] < 1e-5 and big['grad_rel'] < 3e-5, big
first, steady, what = gpu_check.host_syncs_per_iteration(iterations=2, size=8, batch=1,
                                                         device='cpu')
assert (first, steady) == (0, 0) and 'NGLLoss' in what, (first, steady, what)
print('gpu_check checks passed')
"""


@pytest.mark.slow
def test_gpu_check_runs_its_checks_in_the_interpreter_on_small_cpu_tensors():
    pytest.importorskip('triton')
    proc = subprocess.run([sys.executable, '-c', CHECKS], capture_output=True, text=True,
                          env=dict(os.environ, TRITON_INTERPRET='1'), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'gpu_check checks passed' in proc.stdout


@pytest.mark.parametrize('ok, code, verdict', [(True, 0, 'ALL CHECKS PASSED'),
                                               (False, 1, 'SOME CHECKS FAILED')])
def test_the_report_is_written_with_its_verdict_and_exit_status(tmp_path, capsys, ok, code,
                                                                verdict):
    import json

    from ngl_lab import gpu_check
    report = dict(gpu='test', checks=[dict(impl='torch', passed=ok)])
    with pytest.raises(SystemExit) as exited:
        gpu_check.finish(report, str(tmp_path), ok)
    assert exited.value.code == code
    assert capsys.readouterr().out.strip().splitlines()[-1] == verdict
    assert json.loads((tmp_path / 'gpu_check.json').read_text()) == report
