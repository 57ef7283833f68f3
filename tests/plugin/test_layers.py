"""Import rules between the layers (docs/architecture.md): the ops know nothing of
mmseg, what a training user imports pulls in none of the experiment machinery,
and no module finds code or data through the repository's tools/ or tests/."""
import ast
import json
import pathlib
import re
import subprocess
import sys

from helpers import REPO

import ngl_mmseg

PACKAGE = pathlib.Path(ngl_mmseg.__file__).parent


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
    outside = sorted(m for m in modules if m.startswith(('ngl_lab', 'ngl_mmseg.cli'))
                     or m.split('.')[0] == 'matplotlib')
    assert not outside, outside


def package_modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        if '.mim' in path.parts:
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix('')
        name = '.'.join(rel.parts[:-1] if rel.name == '__init__' else rel.parts)
        yield name, path, ast.parse(path.read_text(), str(path))


def imports_of(name, tree, is_package=False):
    """Absolute names of every module ``tree`` imports (relative ones resolved)."""
    package = name if is_package else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition('.')[0]
            module = node.module or ''
            full = (f'{base}.{module}' if module else base) if node.level else module
            found.add(full)
            found.update(f'{full}.{alias.name}' for alias in node.names)
    return found


def test_static_import_rules_hold_for_every_module():
    """Read from the source, so an import inside a function counts too:
    ops import nothing of OpenMMLab's nor of the package above them; the
    plugin (all but experiments/ and cli/) imports neither of those two."""
    checked = 0
    for name, path, tree in package_modules():
        imported = imports_of(name, tree, path.name == '__init__.py')
        if name.startswith('ngl_mmseg.ops'):
            bad = {m for m in imported if m.split('.')[0] in ('mmseg', 'mmengine', 'mmcv')
                   or (m.startswith('ngl_mmseg.') and not m.startswith('ngl_mmseg.ops'))}
            assert not bad, (name, bad)
        if not name.startswith(('ngl_lab', 'ngl_mmseg.cli')):
            bad = {m for m in imported
                   if m.startswith(('ngl_lab', 'ngl_mmseg.cli'))}
            assert not bad, (name, bad)
        # The one place the kernels load (and the kernels' module, which needs Triton itself).
        if name not in ('ngl_mmseg.ops.backends', 'ngl_mmseg.ops.ngl_triton'):
            bad = {m for m in imported if m.startswith(('ngl_mmseg.ops.ngl_triton', 'triton'))}
            assert not bad, (name, bad)
        checked += 1
    assert checked >= 20
    # The tests' float64 reference is independent of what it checks.
    reference = ast.parse(pathlib.Path(REPO, 'tests', 'reference.py').read_text())
    assert not {m for m in imports_of('reference', reference) if m.startswith('ngl_mmseg')}


TOOLS_OR_TESTS_PATH = re.compile(r'^(\.\./)*(tools|tests)(/|$)')


def string_constants(tree):
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_reads_paths_of_tools_or_tests():
    """The package works installed, without the repository around it: no path
    into tools/ or tests/, no sys.path edits, no __file__ outside the one helper
    that finds the configs shipped inside the package."""
    for name, path, tree in package_modules():
        paths = [s for s in string_constants(tree) if TOOLS_OR_TESTS_PATH.match(s)]
        assert not paths, (name, paths)
        source = path.read_text()
        assert 'sys.path' not in source, name
        if '__file__' in source:
            assert name == 'ngl_mmseg.compat', name
    for script in pathlib.Path(REPO, 'tools').glob('*.py'):
        source = script.read_text()
        assert 'sys.path' not in source and "'tests'" not in source, script.name


def test_the_rules_catch_what_they_forbid():
    """The checks above on code that breaks them."""
    tree = ast.parse("import os\nfrom ..experiments.compare import x\n"
                     "def f():\n    import mmseg\n    return os.path.join(ROOT, 'tools')\n")
    assert {'ngl_lab.compare', 'mmseg'} <= imports_of('ngl_mmseg.ops.x', tree)
    assert [s for s in string_constants(tree) if TOOLS_OR_TESTS_PATH.match(s)] == ['tools']
    assert not TOOLS_OR_TESTS_PATH.match('create one with tools/make_synthetic_dataset.py')
