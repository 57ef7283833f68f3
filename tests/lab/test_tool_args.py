"""The tools' arguments: a variant's name runs no code and stays inside the work dir, every
argument of the comparison and the study is checked before the first run,
the comparison's ``--seed`` replaces the config's, the synthetic-data writer refuses bad
arguments before it touches the disk, the training-set mIoU hook checks ``max_images`` and
scores the dataset a RepeatDataset wraps. The plugin's tools:
``tests/plugin/test_tool_messages.py``."""
import math
import sys

import pytest
from helpers import SMALL, VOC_CFG, no_training, run_tool, snapshot
from mmengine.config import Config

from ngl_lab import compare, study_cli
from ngl_lab.presets import parse_loss_spec, parse_loss_specs
from ngl_lab.study_settings import StudySettings
from ngl_lab.synthetic import make_coco_stuff, make_voc
from ngl_lab.train_miou import TrainSetMIoUHook

INJECTION = ("a'+str(__import__('os').system('touch PWNED'))+'={'type': 'NGLLoss', "
             "'loss_name': 'loss_{{ fileDirname }}'}")


# --- a variant's name runs no code and stays inside the work dir ----------------------------

@pytest.mark.parametrize('spec, message', [
    (INJECTION, 'variant name'),
    ("../../x={'type': 'NGLLoss'}", 'variant name'),
    ("/tmp/x={'type': 'NGLLoss'}", 'variant name'),
    ("..={'type': 'NGLLoss'}", 'variant name'),
    ("ok={'type': 'NGLLoss', 'loss_name': 'loss_{{ fileDirname }}'}", 'template marker'),
    ("ok={'type': 'NGLLoss', '{{x}}': 1}", 'template marker'),
])
def test_variant_names_and_dicts_are_refused_when_unsafe(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)


@pytest.mark.parametrize('tool', ['compare', 'study'])
def test_tools_refuse_an_injected_variant_before_writing_anything(tmp_path, monkeypatch, capsys,
                                                                   tool):
    monkeypatch.chdir(tmp_path)
    flag = '--losses' if tool == 'compare' else '--variants'
    assert_refused_before_writing(tmp_path, monkeypatch, capsys, tool, [flag, 'ce', INJECTION],
                                  'variant name')
    assert not (tmp_path / 'PWNED').exists()


# --- every argument is checked before the first run -----------------------------------------

def test_repeated_variants_seeds_and_optimizers_are_refused():
    with pytest.raises(ValueError, match="variant 'ce' is named more than once"):
        parse_loss_specs(['ce', 'ce'])
    with pytest.raises(ValueError, match="variant 'x' is named more than once"):
        parse_loss_specs(["x={'type': 'NGLLoss'}", "x={'type': 'NGLLoss', 'alpha': 2.0}"])
    with pytest.raises(ValueError, match='seed 0 is given more than once'):
        StudySettings('c.py', ['ce'], ['sgd'], [0, 0]).check()
    with pytest.raises(ValueError, match="optimizer 'sgd' is given more than once"):
        StudySettings('c.py', ['ce'], ['sgd', 'sgd'], [0]).check()


def assert_refused_before_writing(tmp_path, monkeypatch, capsys, tool, args, message):
    """``python -m ngl_lab.<tool> CONFIG ARGS`` exits with a usage error
    naming ``message`` and writes nothing (its ``main()``, run in this process)."""
    main = {'compare': compare.main, 'study': study_cli.main}[tool]
    monkeypatch.setattr(sys, 'argv', [tool, VOC_CFG, *args, '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(SystemExit) as exited:
        main()
    stderr = capsys.readouterr().err
    assert exited.value.code == 2 and message in stderr, stderr[-2000:]
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('args, message', [
    (['--losses', 'ce', 'bogus'], "unknown loss preset 'bogus'"),
    (['--losses', 'ce', 'ce'], 'named more than once'),
    (['--gpus', '0'], 'gpus must be an integer >= 1'),
    (['--num-samples', '-1'], 'num_samples must be an integer >= 0'),
])
def test_compare_refuses_bad_arguments_before_training(tmp_path, monkeypatch, capsys, args,
                                                       message):
    assert_refused_before_writing(tmp_path, monkeypatch, capsys, 'compare', args, message)


@pytest.mark.parametrize('args, message', [
    (['--iters', '0'], 'iters must be an integer >= 1'),
    (['--iters', '-4'], 'iters must be an integer >= 1'),
    (['--seeds', '0', '0'], 'seed 0 is given more than once'),
    (['--seeds', '-1'], 'seed must be an integer >= 0'),
    (['--variants', 'ce', 'bogus'], "unknown loss preset 'bogus'"),
    (['--optimizers', 'sgd', 'lion'], "unknown optimizer 'lion'"),
])
def test_study_refuses_bad_arguments_before_training(tmp_path, monkeypatch, capsys, args,
                                                     message):
    assert_refused_before_writing(tmp_path, monkeypatch, capsys, 'study', args, message)


@pytest.mark.slow
def test_compare_seed_replaces_the_seed_the_config_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, 'train_run', no_training)
    assert Config.fromfile(VOC_CFG).randomness.seed == 0  # the quickstarts set one
    _, path, _ = compare.prepare_variant(VOC_CFG, parse_loss_spec('ce'), str(tmp_path), seed=7)
    assert Config.fromfile(path).randomness.seed == 7
    _, path, _ = compare.prepare_variant(VOC_CFG, parse_loss_spec('ngl'), str(tmp_path))
    assert Config.fromfile(path).randomness.seed == 0  # no --seed: the config's own
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match='seed must be an integer'):
            compare.compare(VOC_CFG, ['ce'], work_dir=str(tmp_path / 'w'), seed=seed)
    assert not (tmp_path / 'w').exists()


# --- the synthetic-data writer: bad arguments leave the old dataset as it was ---------------

@pytest.mark.slow
@pytest.mark.parametrize('dataset, args, message', [
    ('voc', ['--seed', '-1'], 'seed must be an integer in [0, 2**32 - 1]'),
    ('coco-stuff', ['--seed', '-1'], 'seed must be an integer in [0, 2**32 - 1]'),
    ('coco-stuff', ['--label-noise', '1.5', '--noise-kind', 'uniform'], 'fraction in [0, 1]'),
])
def test_bad_arguments_with_overwrite_leave_the_old_dataset_as_it_was(tmp_path, dataset, args,
                                                                      message):
    make = make_voc if dataset == 'voc' else make_coco_stuff
    root = make(str(tmp_path), **SMALL)
    before = snapshot(root)
    out = run_tool([dataset, tmp_path, '--overwrite', *args])
    assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
    assert snapshot(root) == before


@pytest.mark.parametrize('kwargs, message', [
    (dict(seed=-1), 'seed must be'), (dict(seed=2**32), 'seed must be'),
    (dict(seed=1.5), 'seed must be'), (dict(size=(2, 2)), 'size must be'),
    (dict(size=(32, )), 'size must be'), (dict(num_train=True), 'num_train must be'),
    (dict(num_test=-2), 'num_test must be'), (dict(noise_kind='uniform', noise_rate=math.nan),
                                              'fraction in'),
])
def test_bad_writer_arguments_are_refused_before_the_disk_is_touched(tmp_path, kwargs,
                                                                     message):
    root = make_voc(str(tmp_path), **SMALL)
    before = snapshot(root)
    with pytest.raises(ValueError, match=message):
        make_voc(str(tmp_path), overwrite=True, **dict(SMALL, **kwargs))
    with pytest.raises(ValueError, match=message):
        make_coco_stuff(str(tmp_path / 'fresh'), **dict(SMALL, **kwargs))
    assert snapshot(root) == before and not (tmp_path / 'fresh').exists()


# --- the training-set mIoU hook: max_images, and a RepeatDataset's images -------------------

@pytest.mark.parametrize('max_images', [0, -1, '10', 2.5, True, float('nan'), None])
def test_train_miou_hook_refuses_a_bad_max_images_when_built(max_images):
    with pytest.raises(ValueError, match='max_images must be an integer >= 1'):
        TrainSetMIoUHook(max_images=max_images)


def test_train_miou_hook_scores_the_dataset_a_repeat_dataset_wraps(tmp_path):
    """mmseg's DRIVE, CHASE_DB1, HRF and STARE configs train on a RepeatDataset."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmseg')
    root = make_voc(str(tmp_path), num_train=5, num_val=1, size=(32, 32))
    cfg = Config.fromfile(VOC_CFG)
    train = cfg.train_dataloader.dataset.datasets[0]
    train.data_root = cfg.val_dataloader.dataset.data_root = root
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=40, dataset=train)

    class FakeRunner:
        build_dataloader = staticmethod(Runner.build_dataloader)

        def build_evaluator(self, evaluator):
            return Evaluator(evaluator)

    runner = FakeRunner()
    runner.cfg = cfg
    hook = TrainSetMIoUHook(max_images=3)
    hook._build(runner)
    assert len(hook._loader.dataset) == 3  # the first 3 training images, each once
    batch = next(iter(hook._loader))
    assert batch['data_samples'][0].img_path.endswith('2007_000000.jpg')


# --- messages that say what to do -----------------------------------------------------------
