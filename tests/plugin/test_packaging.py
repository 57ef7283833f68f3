"""The package as users get it: a wheel installed without the repository, the
requirement files, and a GPU pin set that resolves on the package index."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from helpers import REPO
from packaging.requirements import Requirement

import ngl_mmseg
from ngl_lab.synthetic import make_voc
from ngl_mmseg.ops import MIN_TRITON

pytestmark = pytest.mark.slow  # builds a wheel and a fresh venv


def read_requirements(name):
    with open(osp.join(REPO, 'requirements', name)) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(out), REPO], check=True, capture_output=True)
    (path,) = out.glob('ngl_mmseg-*.whl')
    return path


def test_wheel_holds_configs_tools_and_metadata_from_their_one_home(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for rel in ('configs/ngl', 'configs/quickstart'):
        shipped = sorted(n for n in names if n.startswith(f'ngl_mmseg/.mim/{rel}/'))
        in_repo = sorted(f'ngl_mmseg/.mim/{rel}/{f}' for f in os.listdir(osp.join(REPO, rel))
                         if f.endswith('.py'))
        assert set(in_repo) <= set(shipped) and in_repo, rel
    for tool in ('train.py', 'test.py', 'dist_train.sh', 'dist_test.sh'):
        assert f'ngl_mmseg/.mim/tools/{tool}' in names
    assert 'ngl_mmseg/.mim/model-index.yml' in names
    assert not [n for n in names if n.startswith(('tests/', 'tools/', 'configs/'))]
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith('.dist-info/METADATA'))).decode()
    assert f'Version: {ngl_mmseg.__version__}\n' in meta
    requires = {Requirement(line.split(': ', 1)[1]) for line in meta.splitlines()
                if line.startswith('Requires-Dist:') and 'extra ==' not in line}
    assert requires == {Requirement(r) for r in read_requirements('runtime.txt')}
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith('.dist-info/entry_points.txt'))).decode()
    assert 'ngl-mmseg-compare = ngl_lab.compare:main' in entry_points


def test_installed_wheel_trains_a_config_inheriting_ngl_mmseg_configs(wheel, tmp_path):
    """Into a fresh venv (torch, mmseg, ... seen through a path entry, without the
    checkout's editable install), then, from a folder outside the repository:
    a user config with ``_base_ = ['ngl_mmseg::...']`` trains one iteration."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                          check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: the stack's packages, but not its .pth files (the editable finder).
    with open(osp.join(site, 'the_stack.pth'), 'w') as f:
        f.write(sysconfig.get_path('purelib') + '\n')
    subprocess.run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q', '--no-deps',
                    '--no-index', str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    work = tmp_path / 'user'
    make_voc(str(work / 'data' / 'synthetic' / 'voc'), num_train=8, num_val=2)
    (work / 'my_config.py').write_text(
        "_base_ = ['ngl_mmseg::quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py']\n"
        "train_cfg = dict(max_iters=1, val_interval=100)\n"
        "train_dataloader = dict(batch_size=2)\n"
        "default_hooks = dict(checkpoint=dict(interval=1))\n")
    where = subprocess.run([python, '-c', 'import ngl_mmseg; print(ngl_mmseg.__file__)'],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    assert where.stdout.strip().startswith(site), where.stdout
    proc = subprocess.run([python, '-m', 'ngl_mmseg.cli.train', 'my_config.py', '--work-dir',
                           'wd'], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (work / 'wd' / 'iter_1.pth').is_file()
    # Built from the ngl_mmseg scope's registries, not mmengine's fallback.
    assert 'Failed to search registry' not in proc.stdout + proc.stderr
    assert "type='NGLLoss'" in (work / 'wd' / 'my_config.py').read_text()  # mmengine's dump
    scripts = subprocess.run([str(venv / 'bin' / 'ngl-mmseg-compare'), '--help'], cwd=work,
                             env=env, capture_output=True, text=True)
    assert scripts.returncode == 0 and '--losses' in scripts.stdout, scripts.stderr[-2000:]


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
