"""Import rules between the layers: the ops know nothing of mmseg, and what a
training user imports pulls in none of the experiment machinery."""
import json
import subprocess
import sys


def imported_after(statement):
    code = (f'import sys; {statement}; import json; '
            'print(json.dumps(sorted(m for m in sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


BLOCK_OPENMMLAB = (
    "import importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('mmseg', 'mmengine', 'mmcv'):\n"
    "            raise ImportError('blocked: ' + name)\n"
    "sys.meta_path.insert(0, Block())\n")


def test_ops_work_without_mmseg_mmengine_mmcv():
    """With OpenMMLab's packages unimportable (a bare GPU box), the fused ops
    import and compute; NGLLoss says what is missing."""
    code = (f'import sys\n{BLOCK_OPENMMLAB}'
            'import torch, ngl_mmseg\n'
            'from ngl_mmseg.ops import ngl_pixel_loss\n'
            'x = torch.randn(2, 5, 3, 3, requires_grad=True)\n'
            'ngl_pixel_loss(x, torch.zeros(2, 3, 3, dtype=torch.long)).sum().backward()\n'
            'assert not [m for m in sys.modules if m.split(".")[0] in ("mmseg", "mmengine")]\n'
            'try:\n    ngl_mmseg.NGLLoss\nexcept ImportError as e:\n    print("ERR", e)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'ERR ngl_mmseg needs mmsegmentation' in proc.stdout


def test_the_plugin_imports_no_experiment_machinery():
    modules = imported_after('import ngl_mmseg')
    assert 'ngl_mmseg.losses.ngl_loss' in modules and 'ngl_mmseg.hooks' in modules
    experiments = {'ngl_mmseg.experiments', 'ngl_mmseg.experiments.study', 'ngl_mmseg.experiments.compare',
                   'ngl_mmseg.experiments.benchmark', 'ngl_mmseg.experiments.synthetic', 'matplotlib'}
    assert not modules & experiments, modules & experiments
