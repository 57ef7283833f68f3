"""The packages as users get them: the plugin's wheel, installed alone in a fresh venv
outside the repository, trains the quickstart NGL config while the lab cannot be
imported and the plugin cannot import matplotlib; the lab's wheel holds the lab and its
commands; the requirement files, and a GPU pin set that resolves on the package index.
Nothing of the lab is imported here: the synthetic data comes from its tool, run in a
subprocess, and the lab's wheel is read as a zip."""
import ast
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from helpers import REPO, last_launch_scalars, make_dataset
from packaging.requirements import Requirement

import ngl_mmseg
from ngl_mmseg.ops import MIN_TRITON

pytestmark = pytest.mark.slow  # builds wheels and a fresh venv

QUICKSTART = 'quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py'
LAB_COMMANDS = {'ngl-lab-compare': 'ngl_lab.compare:main',
                'ngl-lab-study': 'ngl_lab.study_cli:main',
                'ngl-lab-benchmark': 'ngl_lab.benchmark:main',
                'ngl-lab-gpu-check': 'ngl_lab.gpu_check:main',
                'ngl-lab-synthetic': 'ngl_lab.synthetic_cli:main'}


def read_requirements(name):
    with open(osp.join(REPO, 'requirements', name)) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


def build_wheel(source, out, pattern):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(out), source], check=True, capture_output=True)
    (path,) = out.glob(pattern)
    return path


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    return build_wheel(REPO, tmp_path_factory.mktemp('wheel'), 'ngl_mmseg-*.whl')


@pytest.fixture(scope='module')
def lab_wheel(tmp_path_factory):
    return build_wheel(osp.join(REPO, 'lab'), tmp_path_factory.mktemp('lab_wheel'),
                       'ngl_mmseg_lab-*.whl')


def dist_info(names, zf, name):
    return zf.read(next(n for n in names if n.endswith(f'.dist-info/{name}'))).decode()


def entry_points(text):
    """``{command: target}`` of an entry_points.txt's console scripts."""
    section, found = None, {}
    for line in text.splitlines():
        if line.startswith('['):
            section = line.strip('[]')
        elif '=' in line and section == 'console_scripts':
            command, target = (part.strip() for part in line.split('=', 1))
            found[command] = target
    return found


def requires(metadata):
    return {Requirement(line.split(': ', 1)[1]) for line in metadata.splitlines()
            if line.startswith('Requires-Dist:') and 'extra ==' not in line}


def test_the_plugins_wheel_holds_the_plugin_configs_and_mmsegs_tools_only(wheel):
    zf = zipfile.ZipFile(wheel)
    names = zf.namelist()
    for rel in ('configs/ngl', 'configs/quickstart'):
        shipped = sorted(n for n in names if n.startswith(f'ngl_mmseg/.mim/{rel}/'))
        in_repo = sorted(f'ngl_mmseg/.mim/{rel}/{f}' for f in os.listdir(osp.join(REPO, rel))
                         if f.endswith('.py'))
        assert set(in_repo) <= set(shipped) and in_repo, rel
    tools = sorted(n.rpartition('/')[2] for n in names if n.startswith('ngl_mmseg/.mim/tools/'))
    assert {'train.py', 'test.py', 'dist_train.sh', 'dist_test.sh'} <= set(tools)
    assert not [t for t in tools if t not in ('train.py', 'test.py') and not t.endswith('.sh')], \
        f'the lab\'s scripts are in the wheel: {tools}'
    assert 'ngl_mmseg/.mim/model-index.yml' in names
    packages = {n.split('/')[0] for n in names if '.dist-info/' not in n}
    assert packages == {'ngl_mmseg'}, packages
    assert not [n for n in names if n.startswith('ngl_mmseg/experiments')]
    meta = dist_info(names, zf, 'METADATA')
    assert f'Version: {ngl_mmseg.__version__}\n' in meta
    assert requires(meta) == {Requirement(r) for r in read_requirements('runtime.txt')}
    assert 'matplotlib' not in {r.name for r in requires(meta)}
    assert entry_points(dist_info(names, zf, 'entry_points.txt')) == {
        'ngl-mmseg-train': 'ngl_mmseg.cli.train:main',
        'ngl-mmseg-test': 'ngl_mmseg.cli.test:main'}


def lab_version():
    """``__version__`` of lab/ngl_lab/__init__.py, read as text (the lab is not imported)."""
    with open(osp.join(REPO, 'lab', 'ngl_lab', '__init__.py')) as f:
        tree = ast.parse(f.read())
    return next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ['__version__'])


def test_the_labs_wheel_holds_the_lab_and_its_commands(lab_wheel):
    zf = zipfile.ZipFile(lab_wheel)
    names = zf.namelist()
    modules = sorted(f'ngl_lab/{f}' for f in os.listdir(osp.join(REPO, 'lab', 'ngl_lab'))
                     if f.endswith('.py'))
    assert 'ngl_lab/__init__.py' in modules
    assert set(modules) == {n for n in names if n.endswith('.py')}  # nothing stale either
    packages = {n.split('/')[0] for n in names if '.dist-info/' not in n}
    assert packages == {'ngl_lab'}, packages  # not the plugin: it is ngl-mmseg's
    meta = dist_info(names, zf, 'METADATA')
    assert 'Name: ngl-mmseg-lab\n' in meta and f'Version: {lab_version()}\n' in meta
    assert {'ngl-mmseg', 'matplotlib'} <= {r.name for r in requires(meta)}
    # the plugin it was released with: the lab uses the plugin's internals
    import ngl_mmseg
    assert lab_version() == ngl_mmseg.__version__
    assert Requirement(f'ngl-mmseg=={lab_version()}') in requires(meta)
    commands = entry_points(dist_info(names, zf, 'entry_points.txt'))
    assert commands == LAB_COMMANDS
    for target in commands.values():  # each command's module is in the wheel
        assert target.split(':')[0].replace('.', '/') + '.py' in names, target


# Imported at the start of every interpreter of the test's venv (a .pth line): no module of
# the lab can be imported, by anyone; the plugin (an importer named ngl_mmseg*) cannot import
# matplotlib or the lab, whether the module was imported before or not. matplotlib stays
# importable by others: mmengine's Visualizer, which every Runner builds, imports it.
# Each refusal is also written to $NGL_BLOCKED_LOG, so a plugin that caught the ImportError
# still fails the test.
BLOCKER = """
import builtins, importlib, importlib.abc, os, sys

FORBIDDEN_TO_THE_PLUGIN = ('matplotlib', 'ngl_lab')


def refuse(what):
    log = os.environ.get('NGL_BLOCKED_LOG')
    if log:
        with open(log, 'a') as f:
            f.write(what + '\\n')
    raise ImportError('blocked by test_packaging: ' + what)


class NoLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'ngl_lab':
            refuse(name)


def checked(importer, name):
    if (importer or '').split('.')[0] == 'ngl_mmseg' and \\
            name.split('.')[0] in FORBIDDEN_TO_THE_PLUGIN:
        refuse(importer + ' imports ' + name)


_import, _import_module = builtins.__import__, importlib.import_module


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        checked((globals or {}).get('__name__'), name)
    return _import(name, globals, locals, fromlist, level)


def guarded_import_module(name, package=None):
    if not name.startswith('.'):
        checked(sys._getframe(1).f_globals.get('__name__'), name)
    return _import_module(name, package)


sys.meta_path.insert(0, NoLab())
builtins.__import__ = guarded_import
importlib.import_module = guarded_import_module
"""

PROBE = """
import importlib.metadata as md, json
import ngl_mmseg
out = {'plugin': ngl_mmseg.__file__,
       'plugin_dist': str(md.distribution('ngl-mmseg').locate_file('ngl_mmseg'))}
try:
    md.distribution('ngl-mmseg-lab')
    out['lab_dist'] = 'installed'
except md.PackageNotFoundError:
    out['lab_dist'] = None
for name, code, importer in (('lab', 'import ngl_lab.presets', '__main__'),
                             ('plugin_matplotlib', 'import matplotlib', 'ngl_mmseg.probe'),
                             ('plugin_import_module',
                              'import importlib; importlib.import_module("matplotlib.pyplot")',
                              'ngl_mmseg.probe'),
                             ('others_matplotlib', 'import matplotlib', '__main__')):
    try:
        exec(code, {'__name__': importer})
        out[name] = 'imported'
    except ImportError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def stack_without_this_checkout(folder):
    """``folder`` filled with links to what this interpreter's site-packages hold (torch,
    mmcv, mmseg, ...) but this checkout's editable ngl-mmseg and ngl-mmseg-lab (their
    finders, .pth files and metadata): the stack without the packages under test."""
    folder.mkdir()
    for site in {sysconfig.get_path('purelib'), sysconfig.get_path('platlib')}:
        for entry in os.listdir(site):
            if re.match(r'(__editable__|ngl[_-]mmseg|ngl[_-]lab)', entry, re.I):
                continue
            if not (folder / entry).exists():
                os.symlink(osp.join(site, entry), folder / entry)
    return folder


def venv_with_the_plugin_alone(wheel, tmp_path):
    """A fresh venv holding the plugin's wheel (no lab), the stack seen through a path line
    (a plain entry: its .pth files, editable finders among them, are not run) and BLOCKER;
    its python and site-packages."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                          check=True, capture_output=True, text=True).stdout.strip()
    stack = stack_without_this_checkout(tmp_path / 'stack')
    with open(osp.join(site, 'the_stack.pth'), 'w') as f:
        f.write(f'{stack}\n')
    with open(osp.join(site, 'ngl_test_blocker.py'), 'w') as f:
        f.write(BLOCKER)
    with open(osp.join(site, 'ngl_test_blocker.pth'), 'w') as f:
        f.write('import ngl_test_blocker\n')
    subprocess.run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q', '--no-deps',
                    '--no-index', str(wheel)], check=True, capture_output=True)
    return venv, site


def test_the_plugin_installed_alone_trains_the_quickstart_ngl_config(wheel, tmp_path):
    """From a folder outside the repository, a user config with ``_base_ =
    ['ngl_mmseg::quickstart/...']`` trains with NGL through the ``ngl-mmseg-train``
    command, the lab unimportable and matplotlib unimportable by the plugin."""
    venv, site = venv_with_the_plugin_alone(wheel, tmp_path)
    blocked = tmp_path / 'blocked.log'
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['NGL_BLOCKED_LOG'] = str(blocked)
    work = tmp_path / 'user'
    work.mkdir()
    probe = subprocess.run([str(venv / 'bin' / 'python'), '-c', PROBE], cwd=work, env=env,
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.splitlines()[-1])
    assert found['plugin'].startswith(site) and found['plugin_dist'].startswith(site), found
    assert found['lab_dist'] is None, found  # the lab's distribution is not installed
    # The blocker works: the lab refused to anyone, matplotlib to the plugin only.
    assert 'blocked by test_packaging: ngl_lab' in found['lab'], found
    assert 'ngl_mmseg.probe imports matplotlib' in found['plugin_matplotlib'], found
    assert 'ngl_mmseg.probe imports matplotlib.pyplot' in found['plugin_import_module'], found
    assert found['others_matplotlib'] == 'imported', found
    blocked.unlink()
    commands = sorted(os.listdir(venv / 'bin'))
    assert 'ngl-mmseg-train' in commands and 'ngl-mmseg-test' in commands
    assert not [c for c in commands if c.startswith('ngl-lab') or c in (
        'ngl-mmseg-compare', 'ngl-mmseg-benchmark')], commands

    make_dataset('voc', work / 'data' / 'synthetic' / 'voc', '--num-train', 8, '--num-val', 2)
    (work / 'my_config.py').write_text(
        f"_base_ = ['ngl_mmseg::{QUICKSTART}']\n"
        "train_cfg = dict(max_iters=1, val_interval=100)\n"
        "train_dataloader = dict(batch_size=2)\n"
        "default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))\n")
    proc = subprocess.run([str(venv / 'bin' / 'ngl-mmseg-train'), 'my_config.py', '--work-dir',
                           'wd'], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not blocked.exists(), f'the plugin imported: {blocked.read_text()}'
    assert (work / 'wd' / 'iter_1.pth').is_file()
    # Built from the ngl_mmseg scope's registries, not mmengine's fallback.
    assert 'Failed to search registry' not in proc.stdout + proc.stderr
    assert "type='NGLLoss'" in (work / 'wd' / 'my_config.py').read_text()  # mmengine's dump
    (row, ) = last_launch_scalars(work / 'wd')[0]
    assert row['step'] == 1 and row['decode.loss_ngl'] > 0, row


def test_gpu_pins_are_the_tested_releases():
    """requirements/gpu.txt pins what CI runs (requirements/cpu.txt), Triton aside:
    torch's CUDA wheel pins its own, which must be one the kernels support."""
    gpu = dict(r.split('==') for r in read_requirements('gpu.txt') if '==' in r)
    cpu = dict(r.split('==') for r in read_requirements('cpu.txt') if '==' in r)
    for package in ('torch', 'mmengine', 'mmsegmentation'):
        assert gpu[package] == cpu[package], package
    assert tuple(int(v) for v in gpu['triton'].split('.')[:2]) >= MIN_TRITON
    assert 'mmcv' not in gpu  # built from source for torch 2.13, see the file's comment


def pypi_reachable():
    try:
        socket.create_connection(('pypi.org', 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not pypi_reachable(), reason='pypi.org is not reachable from here')
@pytest.mark.parametrize('name', ['gpu.txt', 'gpu-torch2.1.txt'])
def test_gpu_requirements_resolve_on_pypi(tmp_path, name):
    """``pip install --dry-run`` of a GPU set from PyPI alone (this machine's pip
    configuration ignored): the set resolves, with the pins kept."""
    report = tmp_path / 'report.json'
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--isolated', '--dry-run', '--ignore-installed',
         '--index-url', 'https://pypi.org/simple', '--quiet',
         '--report', str(report), '-r', osp.join(REPO, 'requirements', name)],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = {item['metadata']['name'].lower(): item['metadata']['version']
                 for item in json.loads(report.read_text())['install']}
    for requirement in read_requirements(name):
        if '==' in requirement:
            name, version = requirement.split('==')
            assert installed[name.lower()] == version, (name, installed.get(name.lower()))
    assert any(package.startswith('nvidia-') for package in installed)  # torch's CUDA build
    if name == 'gpu-torch2.1.txt':  # the set the issue found broken: numpy 2 against torch 2.1
        assert int(installed['numpy'].split('.')[0]) < 2
