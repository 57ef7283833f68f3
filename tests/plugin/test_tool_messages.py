"""The plugin's tools say what to pass (``dist_*.sh`` GPUS, a folder given as a config,
``setup_env.sh`` outside a checkout), and the train and test tools load a config one way."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from helpers import REPO, VOC_CFG

from ngl_mmseg.launch import load_config

# --- messages that say what to do -----------------------------------------------------------

@pytest.mark.parametrize('gpus', ['', '0', 'two', '-1'])
def test_dist_scripts_say_what_gpus_must_be(gpus):
    for script, args in (('dist_train.sh', [VOC_CFG, gpus]),
                         ('dist_test.sh', [VOC_CFG, 'ckpt.pth', gpus])):
        out = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert 'GPUS must be a positive integer' in out.stderr and 'usage:' in out.stderr


def test_train_tool_says_a_folder_is_not_a_config(tmp_path, monkeypatch):
    from ngl_mmseg.cli import train
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', ['train.py', str(tmp_path)])
    with pytest.raises(SystemExit, match='is a directory; name a config file'):
        train.main()


def test_setup_script_outside_a_checkout_says_so(tmp_path):
    os.makedirs(tmp_path / 'tools')
    script = tmp_path / 'tools' / 'setup_env.sh'
    script.write_text(open(osp.join(REPO, 'tools', 'setup_env.sh')).read())
    out = subprocess.run(['bash', str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and 'sets up a checkout of the ngl-mmseg repository' in out.stderr
    assert not (tmp_path / '.venv').exists()


# --- the train and test tools: one way to load a config --------------------------------------

@pytest.mark.slow
def test_config_loading_sets_launcher_options_and_work_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = osp.splitext(osp.basename(VOC_CFG))[0]
    cfg = load_config(VOC_CFG)
    assert cfg.launcher == 'none' and cfg.work_dir == osp.join('./work_dirs', name)
    cfg = load_config(VOC_CFG, 'pytorch', {'train_cfg.max_iters': 7, 'work_dir': 'in_options'})
    assert cfg.launcher == 'pytorch' and cfg.train_cfg.max_iters == 7
    assert cfg.work_dir == 'in_options'  # the config's own (here from --cfg-options)
    assert load_config(VOC_CFG, cfg_options={'work_dir': 'a'}, work_dir='b').work_dir == 'b'
    with pytest.raises(SystemExit, match='is a directory; name a config file'):
        load_config(str(tmp_path))


def test_the_test_tools_help_says_what_it_takes(monkeypatch, capsys):
    from ngl_mmseg.cli import test as test_tool
    monkeypatch.setattr(sys, 'argv', ['test.py', '--help'])
    with pytest.raises(SystemExit):
        test_tool.parse_args()
    text = ' '.join(capsys.readouterr().out.split())
    assert 'the one the checkpoint was trained with' in text and 'train config' not in text
    assert 'will be dumped into the directory as json' in text


@pytest.mark.parametrize('tool, positional', [('train', [VOC_CFG]),
                                              ('test', [VOC_CFG, 'ckpt.pth'])])
def test_train_and_test_tools_take_the_same_launch_arguments(tool, positional, monkeypatch,
                                                             capsys):
    import importlib
    module = importlib.import_module(f'ngl_mmseg.cli.{tool}')
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    monkeypatch.setattr(sys, 'argv', [f'{tool}.py', *positional, '--cfg-options',
                                      'train_cfg.max_iters=7', '--launcher', 'pytorch',
                                      '--local-rank', '3'])
    args = module.parse_args()
    assert args.cfg_options == {'train_cfg.max_iters': 7} and args.launcher == 'pytorch'
    assert args.local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    monkeypatch.setattr(sys, 'argv', [f'{tool}.py', *positional, '--launcher', 'lsf'])
    with pytest.raises(SystemExit):
        module.parse_args()
    assert "invalid choice: 'lsf'" in capsys.readouterr().err
