"""Import and size rules of the two packages (docs/architecture.md): the plugin
(``ngl_mmseg``) imports nothing of the lab (``ngl_lab``) nor matplotlib, its ops know
nothing of mmseg, no import circle in either package, no lab module over 450 lines
and no function over 80 in either; the plugin's tests import nothing of the lab and
no test module imports another; no module finds code or data through the
repository's tools/ or tests/. Everything here reads the lab's source as text: this
module imports nothing of it."""
import ast
import json
import pathlib
import re
import subprocess
import sys

import pytest
from helpers import REPO

PLUGIN = pathlib.Path(REPO, 'ngl_mmseg')
LAB = pathlib.Path(REPO, 'lab', 'ngl_lab')
TESTS = pathlib.Path(REPO, 'tests')
MAX_LAB_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def imported_after(statement):
    code = (f'import sys; {statement}; import json; '
            'print(json.dumps(sorted(m for m in sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def blocker(roots):
    """Source that makes the top-level packages ``roots`` unimportable in a process."""
    return ("import importlib.abc, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {tuple(roots)!r}:\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n")


@pytest.mark.slow
def test_ops_work_without_mmseg_mmengine_mmcv():
    """With OpenMMLab's packages unimportable (a bare GPU box), the fused ops
    import and compute; NGLLoss says what is missing."""
    code = (blocker(['mmseg', 'mmengine', 'mmcv']) +
            'import torch, ngl_mmseg\n'
            'from ngl_mmseg.ops import ngl_pixel_loss\n'
            'x = torch.randn(2, 5, 3, 3, requires_grad=True)\n'
            'ngl_pixel_loss(x, torch.zeros(2, 3, 3, dtype=torch.long)).sum().backward()\n'
            'assert not [m for m in sys.modules if m.split(".")[0] in ("mmseg", "mmengine")]\n'
            'try:\n    ngl_mmseg.NGLLoss\nexcept ImportError as e:\n    print("ERR", e)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'ERR ngl_mmseg needs mmsegmentation' in proc.stdout


@pytest.mark.slow
def test_importing_the_plugin_loads_no_lab_module_nor_matplotlib():
    modules = imported_after('import ngl_mmseg')
    assert 'ngl_mmseg.losses.ngl_loss' in modules and 'ngl_mmseg.hooks' in modules
    outside = sorted(m for m in modules if m.split('.')[0] in ('ngl_lab', 'matplotlib')
                     or m.startswith('ngl_mmseg.cli'))
    assert not outside, outside


@pytest.mark.slow
def test_the_plugin_imports_with_the_lab_and_matplotlib_unimportable():
    code = blocker(['ngl_lab', 'matplotlib']) + 'import ngl_mmseg, ngl_mmseg.cli.train\n'
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- reading the sources ----------------------------------------------------------------------

def module_name(path, root):
    """The dotted name of the module at ``path`` of the package folder ``root``."""
    rel = path.relative_to(root.parent).with_suffix('')
    return '.'.join(rel.parts[:-1] if rel.name == '__init__' else rel.parts)


def package_modules(root):
    """``(name, path, tree)`` of every module of the package folder ``root``."""
    for path in sorted(root.rglob('*.py')):
        if '.mim' in path.parts:
            continue
        yield module_name(path, root), path, ast.parse(path.read_text(), str(path))


def both_packages():
    yield from package_modules(PLUGIN)
    yield from package_modules(LAB)


def import_targets(name, tree, is_package=False):
    """One entry per import statement of ``tree`` (at module level or inside a function):
    the absolute names it may load, most specific first (``from a import b`` gives
    ``['a.b', 'a']``: ``b`` is a module or a name in ``a``), relative ones resolved."""
    package = name if is_package else name.rpartition('.')[0]
    statements = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            statements += [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition('.')[0]
            module = node.module or ''
            full = (f'{base}.{module}' if module else base) if node.level else module
            statements += [[f'{full}.{alias.name}', full] for alias in node.names]
    return statements


def imports_of(name, tree, is_package=False):
    """Absolute names of every module ``tree`` imports, inside functions too (relative
    ones resolved; ``from a import b`` gives ``a`` and ``a.b``)."""
    return {target for statement in import_targets(name, tree, is_package)
            for target in statement}


def import_graph(modules):
    """``{module: modules of `modules` it imports}`` for ``(name, path, tree)`` triples:
    an import names the deepest of ``modules`` it loads (``import a.b.c`` an edge to
    ``a.b.c``; the packages above it, which Python loads first, are not edges)."""
    modules = list(modules)
    known = {name for name, _, _ in modules}
    graph = {}
    for name, path, tree in modules:
        edges = set()
        for statement in import_targets(name, tree, path.name == '__init__.py'):
            for target in statement:
                while target and target not in known:
                    target = target.rpartition('.')[0]
                if target:
                    edges.add(target)
                    break
        graph[name] = edges - {name}
    return graph


def import_cycles(graph):
    """One circle (``[a, b, ..., a]``) per group of modules that import each other, found
    with Tarjan's strongly connected components."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [circle_in(graph, group) for group in groups]


def circle_in(graph, group):
    """A path ``[a, ..., a]`` through ``group``, a set of modules that import each other."""
    start = min(group)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & group):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    raise AssertionError(f'{sorted(group)} holds no circle')


def long_functions(name, tree, limit=MAX_FUNCTION_LINES):
    """``'module.Class.function (N lines)'`` for each function of ``tree`` longer than
    ``limit`` lines (from its ``def`` to its last line, docstring included)."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = f'{prefix}.{child.name}'
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > limit:
                        found.append(f'{qualname} ({lines} lines)')
                visit(child, qualname)
            else:
                visit(child, prefix)

    visit(tree, name)
    return found


def long_modules(root, limit=MAX_LAB_MODULE_LINES):
    """``'module (N lines)'`` for each module of the package folder ``root`` longer than
    ``limit`` lines."""
    found = []
    for path in sorted(root.rglob('*.py')):
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found.append(f'{module_name(path, root)} ({lines} lines)')
    return found


# --- the rules --------------------------------------------------------------------------------

def test_static_import_rules_hold_for_every_module():
    """Read from the source, so an import inside a function counts too: ops import
    nothing of OpenMMLab's nor of the package above them; the plugin imports nothing of
    the lab nor matplotlib, and (cli/ aside) nothing of cli/; Triton loads in one place."""
    checked = 0
    for name, path, tree in package_modules(PLUGIN):
        imported = imports_of(name, tree, path.name == '__init__.py')
        if name.startswith('ngl_mmseg.ops'):
            bad = {m for m in imported if m.split('.')[0] in ('mmseg', 'mmengine', 'mmcv')
                   or (m.startswith('ngl_mmseg.') and not m.startswith('ngl_mmseg.ops'))}
            assert not bad, (name, bad)
        bad = {m for m in imported if m.split('.')[0] in ('ngl_lab', 'matplotlib')}
        assert not bad, f'{name} imports {sorted(bad)}: the plugin imports neither the lab nor ' \
            'matplotlib'
        if not name.startswith('ngl_mmseg.cli'):
            bad = {m for m in imported if m.startswith('ngl_mmseg.cli')}
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


def lab_names_in_strings(tree):
    """String constants that name a lab module (``importlib.import_module('ngl_lab.x')``,
    a config's ``custom_imports``)."""
    return [s for s in string_constants(tree) if re.match(r'ngl_lab(\.|$)', s)]


def test_the_plugin_and_its_configs_name_no_lab_module():
    """Nor by a module path in a string: what the wheel ships runs without the lab."""
    for name, _, tree in package_modules(PLUGIN):
        assert not lab_names_in_strings(tree), name
    for config in sorted(pathlib.Path(REPO, 'configs').rglob('*.py')):
        tree = ast.parse(config.read_text(), str(config))
        found = lab_names_in_strings(tree) + sorted(
            m for m in imports_of('config', tree) if m.split('.')[0] == 'ngl_lab')
        assert not found, f'{config.relative_to(REPO)} names {found}'


def test_no_import_circle_in_either_package():
    """Imports at module level and inside functions, across both packages."""
    graph = import_graph(both_packages())
    assert {'ngl_mmseg.losses.ngl_loss', 'ngl_lab.compare'} <= set(graph)
    cycles = import_cycles(graph)
    assert not cycles, 'import circles: ' + '; '.join(' -> '.join(c) for c in cycles)


def test_no_lab_module_is_over_450_lines():
    long = long_modules(LAB)
    assert not long, f'lab modules over {MAX_LAB_MODULE_LINES} lines: {long}'


def test_no_function_is_over_80_lines():
    long = [found for name, _, tree in both_packages() for found in long_functions(name, tree)]
    assert not long, f'functions over {MAX_FUNCTION_LINES} lines: {long}'


def all_test_files():
    """Every Python file of tests/ (shared helpers, conftest.py, both parts)."""
    return sorted(TESTS.rglob('*.py'))


def plugin_test_files():
    """The plugin's tests and the helpers they share with the lab's."""
    return sorted(TESTS.glob('plugin/*.py')) + [
        TESTS / name for name in ('helpers.py', 'conftest.py', 'reference.py', 'impls.py')]


def test_the_plugins_tests_import_no_lab_module():
    checked = 0
    for path in plugin_test_files():
        tree = ast.parse(path.read_text(), str(path))
        found = sorted(m for m in imports_of(path.stem, tree) if m.split('.')[0] == 'ngl_lab')
        assert not found, f'{path.relative_to(REPO)} imports {found}: the plugin\'s tests ' \
            'import nothing of the lab (run its tools in a subprocess, as helpers.make_dataset)'
        checked += 1
    assert checked >= 15


def imported_test_modules(path, test_modules):
    """The test modules (names in ``test_modules``) that the file at ``path`` imports."""
    tree = ast.parse(path.read_text(), str(path))
    return sorted({part for m in imports_of(path.stem, tree) for part in m.split('.')
                   if part in test_modules})


def test_no_test_module_imports_another():
    """What tests share lives in helpers (helpers.py, conftest.py, reference.py, impls.py,
    tests/lab/*_helpers.py, tests/lab/docs_checks.py), not in a test module."""
    files = all_test_files()
    test_modules = {p.stem for p in files if p.name.startswith('test_')}
    assert len(test_modules) >= 20
    for path in files:
        found = imported_test_modules(path, test_modules)
        assert not found, f'{path.relative_to(REPO)} imports the test modules {found}'


TEST_FILE = re.compile(r'tests/[\w/]+\.py')


def test_paths_the_tests_name_exist():
    """A test that runs another file of tests (pytest in a subprocess) names one that exists
    (a file moved to tests/plugin or tests/lab takes these along)."""
    named = set()
    for path in all_test_files():
        tree = ast.parse(path.read_text(), str(path))
        named |= {s for s in string_constants(tree) if TEST_FILE.fullmatch(s)}
    missing = sorted(p for p in named if not pathlib.Path(REPO, p).is_file())
    assert not missing, f'the tests name files that do not exist: {missing}'


TOOLS_OR_TESTS_PATH = re.compile(r'^(\.\./)*(tools|tests)(/|$)')


def string_constants(tree):
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_reads_paths_of_tools_or_tests():
    """Both packages work installed, without the repository around them: no path into
    tools/ or tests/, no sys.path edits, no __file__ outside the one helper that finds
    the configs shipped inside the plugin."""
    for name, path, tree in both_packages():
        paths = [s for s in string_constants(tree) if TOOLS_OR_TESTS_PATH.match(s)]
        assert not paths, (name, paths)
        source = path.read_text()
        assert 'sys.path' not in source, name
        if '__file__' in source:
            assert name == 'ngl_mmseg.compat', name
    for script in pathlib.Path(REPO, 'tools').glob('*.py'):
        source = script.read_text()
        assert 'sys.path' not in source and "'tests'" not in source, script.name


# --- the checks above, on code that breaks their rules -----------------------------------------

def parse(source):
    return ast.parse(source)


def test_the_import_rules_catch_what_they_forbid():
    tree = parse("import os\nfrom ..experiments.compare import x\n"
                 "def f():\n    import mmseg\n    from ngl_lab import study\n"
                 "    return os.path.join(ROOT, 'tools'), 'ngl_lab.train_miou'\n")
    imported = imports_of('ngl_mmseg.ops.x', tree)
    assert {'ngl_mmseg.experiments.compare', 'mmseg', 'ngl_lab', 'ngl_lab.study'} <= imported
    assert [s for s in string_constants(tree) if TOOLS_OR_TESTS_PATH.match(s)] == ['tools']
    assert lab_names_in_strings(tree) == ['ngl_lab.train_miou']
    assert not TOOLS_OR_TESTS_PATH.match('create one with tools/make_synthetic_dataset.py')
    assert not lab_names_in_strings(parse("x = 'ngl_labels'"))


def fake_modules(sources):
    """``(name, path, tree)`` for ``{module name: source}``; names ending in ``__init__``
    stand for packages."""
    for name, source in sources.items():
        is_package = name.endswith('.__init__')
        name = name[:-len('.__init__')] if is_package else name
        path = pathlib.Path(*name.split('.'))
        yield name, (path / '__init__.py' if is_package else path.with_suffix('.py')), \
            parse(source)


def test_the_circle_check_finds_circles_through_functions_and_names_them():
    graph = import_graph(fake_modules({
        'lab.__init__': '',
        'lab.study': 'from . import report\ndef main():\n    from .spec import run_spec\n',
        'lab.spec': 'from lab.study import study\n',  # a name in study: the edge is to study
        'lab.report': 'import os\nfrom .stats import mean\n',
        'lab.stats': 'import lab\n',  # the package itself: an edge to its __init__
        'lab.cli': 'from .synthetic import make\n',
        'lab.synthetic': 'def main():\n    from lab import cli\n',
    }))
    assert graph['lab.study'] == {'lab.report', 'lab.spec'}
    assert graph['lab.spec'] == {'lab.study'} and graph['lab.stats'] == {'lab'}
    assert sorted(import_cycles(graph)) == [['lab.cli', 'lab.synthetic', 'lab.cli'],
                                            ['lab.spec', 'lab.study', 'lab.spec']]
    assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []
    assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == [['a', 'b', 'c', 'a']]


def statements(count, indent):
    return ''.join(f'{indent}x{i} = {i}\n' for i in range(count))


def test_the_size_checks_find_long_functions_and_modules(tmp_path):
    limit = MAX_FUNCTION_LINES
    tree = parse('def short():\n    pass\n'
                 f'class Pool:\n    def run(self):\n{statements(limit, " " * 8)}'
                 f'    def helper(self):\n        def inner():\n{statements(limit, " " * 12)}'
                 f'if True:\n    def fits():\n{statements(limit - 1, " " * 8)}')
    assert long_functions('lab.jobs', tree) == [f'lab.jobs.Pool.run ({limit + 1} lines)',
                                                f'lab.jobs.Pool.helper ({limit + 2} lines)',
                                                f'lab.jobs.Pool.helper.inner ({limit + 1} lines)']
    (tmp_path / 'lab').mkdir()
    (tmp_path / 'lab' / 'big.py').write_text('x = 1\n' * (MAX_LAB_MODULE_LINES + 1))
    (tmp_path / 'lab' / 'fits.py').write_text('x = 1\n' * MAX_LAB_MODULE_LINES)
    assert long_modules(tmp_path / 'lab') == [f'lab.big ({MAX_LAB_MODULE_LINES + 1} lines)']


def test_the_test_checks_find_a_test_module_imported_and_a_lab_import(tmp_path):
    path = tmp_path / 'test_docs.py'
    path.write_text('import json\nfrom helpers import REPO\nfrom docs_checks import x\n'
                    'def test_x():\n    from test_docs_tuned import DIFFERENCE\n'
                    '    import ngl_lab.presets\n')
    assert imported_test_modules(path, {'test_docs', 'test_docs_tuned', 'test_ops'}) == \
        ['test_docs_tuned']
    tree = ast.parse(path.read_text())
    assert sorted(m for m in imports_of(path.stem, tree) if m.split('.')[0] == 'ngl_lab') == \
        ['ngl_lab.presets']
    assert TESTS / 'helpers.py' in plugin_test_files()
    assert TESTS / 'plugin' / 'test_ops.py' in plugin_test_files()
    assert not [p for p in plugin_test_files() if p.relative_to(TESTS).parts[0] == 'lab']
