"""Adversarial input to the synthetic-data and comparison tools, the loss variants and
the training-set mIoU hook (issue 22): each case deleted files, trained before failing,
lost a report or failed with a traceback before it was fixed."""
import hashlib
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from ngl_mmseg.experiments import compare, synthetic
from ngl_mmseg.experiments.presets import check_variant_losses, parse_loss_spec, parse_loss_specs
from ngl_mmseg.experiments.synthetic import MANIFEST, make_coco_stuff, make_voc
from ngl_mmseg.experiments.train_miou import TrainSetMIoUHook

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VOC_CFG = osp.join(REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py')
MAKE = [sys.executable, osp.join(REPO, 'tools', 'make_synthetic_dataset.py')]
SMALL = dict(num_train=2, num_val=1, size=(32, 32))


def snapshot(folder):
    """Every file under ``folder``: its path and a hash of its bytes."""
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            with open(osp.join(d, name), 'rb') as f:
                out[osp.relpath(osp.join(d, name), folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def edit_manifest(root, value):
    with open(osp.join(root, MANIFEST), 'w') as f:
        f.write(value if isinstance(value, str) else json.dumps(value))


def run_tool(args, **kwargs):
    return subprocess.run(MAKE + [str(a) for a in args], capture_output=True, text=True,
                          timeout=120, **kwargs)


# --- files and folders ---------------------------------------------------------------------

@pytest.mark.parametrize('where', ['relative', 'absolute', 'through a link'])
def test_overwrite_never_deletes_what_an_edited_manifest_lists_outside_the_dataset(tmp_path,
                                                                                   where):
    root = make_voc(str(tmp_path / 'out'), **SMALL)
    victim = tmp_path / 'elsewhere' / 'victim.txt'
    victim.parent.mkdir()
    victim.write_text('keep me')
    entry = {'relative': '../../../elsewhere/victim.txt', 'absolute': str(victim),
             'through a link': 'link/victim.txt'}[where]
    if where == 'through a link':
        os.symlink(victim.parent, osp.join(root, 'link'))
    manifest = json.load(open(osp.join(root, MANIFEST)))
    edit_manifest(root, dict(manifest, files=manifest['files'] + [entry]))
    before = snapshot(root)
    with pytest.raises(ValueError, match=r"lists '.*victim.txt', which is not a file inside"):
        make_voc(str(tmp_path / 'out'), overwrite=True, **SMALL)
    assert victim.read_text() == 'keep me' and snapshot(root) == before


@pytest.mark.parametrize('manifest', [['JPEGImages/2007_000000.jpg'], {'files': [1, 2]},
                                      {'files': 'JPEGImages'}, {'label_noise': None},
                                      '{"files": [', ''])
def test_overwrite_refuses_a_manifest_of_the_wrong_shape_with_a_message(tmp_path, manifest):
    root = make_voc(str(tmp_path), **SMALL)
    edit_manifest(root, manifest)
    before = snapshot(root)
    with pytest.raises(ValueError, match='is not a manifest this tool wrote'):
        make_voc(str(tmp_path), overwrite=True, **SMALL)
    if manifest == '':  # the tool says the same, in one line
        out = run_tool(['voc', tmp_path, '--overwrite', '--num-train', 2, '--num-val', 1])
        assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-2000:]
        assert 'make_synthetic_dataset: error:' in out.stderr
        assert 'is not a manifest this tool wrote' in out.stderr
    assert snapshot(root) == before


@pytest.mark.slow
def test_out_dir_that_is_a_file_is_refused_with_a_message(tmp_path):
    out_dir = tmp_path / 'a-file'
    out_dir.write_text('not a folder')
    with pytest.raises(ValueError, match='is a file, not a folder'):
        make_coco_stuff(str(out_dir), **SMALL)
    out = run_tool(['voc', out_dir])
    assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-2000:]
    assert f'{out_dir} is a file, not a folder' in out.stderr
    assert out_dir.read_text() == 'not a folder'


def test_a_run_that_fails_midway_leaves_the_old_dataset_as_it_was(tmp_path, monkeypatch):
    root = make_voc(str(tmp_path), **SMALL)
    before = snapshot(root)
    render, calls = synthetic.render_image, []

    def fail_on_the_third_image(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError('No space left on device')
        return render(*args)

    monkeypatch.setattr(synthetic, 'render_image', fail_on_the_third_image)
    with pytest.raises(OSError, match='No space left'):
        make_voc(str(tmp_path), overwrite=True, seed=1, **SMALL)
    assert snapshot(root) == before
    assert os.listdir(tmp_path / 'VOCdevkit') == ['VOC2012']  # no staging folder left behind
    monkeypatch.undo()
    make_voc(str(tmp_path), overwrite=True, seed=1, **SMALL)  # the dataset is replaced
    assert snapshot(root) != before and snapshot(root).keys() == before.keys()


# --- tool arguments ------------------------------------------------------------------------

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


def no_training(*args, **kwargs):
    raise AssertionError('a variant trained before the comparison was refused')


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


# --- variants ------------------------------------------------------------------------------

def voc_config():
    return Config.fromfile(VOC_CFG)


@pytest.mark.parametrize('spec, message', [
    ("bad={'type': 'NoSuchLoss'}", "variant 'bad'.*'NoSuchLoss' is not registered"),
    ("x={'type': 'NGLLoss', 'alpha': 100}", r"variant 'x'.*cannot be built.*alpha"),
    ("x=[{'type': 'NGLLoss'}, {'type': 'CrossEntropyLoss', 'colour': 'red'}]",
     "variant 'x'.*CrossEntropyLoss.*colour"),
    ("net={'type': 'ResNet', 'depth': 18}", "variant 'net'.*ResNet.*cannot be built"),
    ("probe={'type': 'NotALossProbe'}", "variant 'probe'.*'NotALossProbe' is not a loss"),
])
def test_every_variant_loss_is_built_before_the_first_run(spec, message):
    import torch
    from mmseg.registry import MODELS

    @MODELS.register_module(name='NotALossProbe', force=True)
    class NotALoss(torch.nn.Module):  # registered, builds with a loss_weight, no loss_name
        def __init__(self, loss_weight=1.0):
            super().__init__()

    parsed = parse_loss_specs(['ce', spec])
    with pytest.raises(ValueError, match=message):
        check_variant_losses(voc_config(), parsed)


def test_good_variants_build_on_every_head():
    parsed = parse_loss_specs(['ce', 'ngl', 'ngl+ce', "a2={'type': 'NGLLoss', 'alpha': 2.0}"])
    assert check_variant_losses(voc_config(), parsed) == parsed


@pytest.mark.parametrize('spec, message', [
    ('empty=[]', 'non-empty list'),
    ("x={'type': 3}", 'must be the name of a loss'),
    ("x={'type': 'NGLLoss', 'loss_weight': 'big'}", 'loss_weight must be a number'),
])
def test_variant_dicts_of_the_wrong_shape_are_refused_when_parsed(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)


def test_an_empty_variant_is_refused_on_every_head():
    with pytest.raises(ValueError, match="variant 'empty' leaves the decode_head without a loss"):
        check_variant_losses(voc_config(), [('empty', [])])


@pytest.mark.slow
def test_compare_refuses_a_variant_that_cannot_be_built_before_training(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'ngl_mmseg.experiments.compare', VOC_CFG,
                          '--losses', 'ce', "bad={'type': 'NoSuchLoss'}", '--work-dir',
                          str(tmp_path / 'w')], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "variant 'bad'" in out.stderr, out.stderr[-2000:]
    assert 'NoSuchLoss' in out.stderr and not (tmp_path / 'w').exists()


PROBE = "open(__file__ + '.imported', 'w').close()\nclass Anything:\n    pass\n"


@pytest.mark.parametrize('spec, message', [
    ("x={'type': 'probe_mod.Anything'}", 'dotted path'),
    ("x={'type': 'NGLLoss', 'arg': {'type': 'probe_mod.Anything'}}", 'dotted path'),
    ("x={'type': 'NGLLoss', '_scope_': 'probe_mod'}", '_scope_'),
])
def test_a_variant_type_that_would_import_a_module_is_refused_when_parsed(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)


@pytest.mark.slow
def test_a_variant_type_never_imports_a_module(tmp_path, monkeypatch):
    (tmp_path / 'probe_mod.py').write_text(PROBE)
    imported = tmp_path / 'probe_mod.py.imported'
    out = subprocess.run([sys.executable, '-m', 'ngl_mmseg.experiments.compare', VOC_CFG,
                          '--losses', "x={'type': 'probe_mod.Anything'}", '--work-dir',
                          str(tmp_path / 'w')], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)  # `python -m` puts the cwd on sys.path
    assert out.returncode == 2 and 'dotted path' in out.stderr, out.stderr[-2000:]
    assert not imported.exists() and not (tmp_path / 'w').exists()
    # A plain name that no registry holds: mmengine's Registry.get would import it.
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="'probe_mod' is not registered"):
        check_variant_losses(voc_config(), [parse_loss_spec("x={'type': 'probe_mod'}")])
    assert not imported.exists() and 'probe_mod' not in sys.modules


def test_a_variant_name_longer_than_a_folder_name_can_be_is_refused():
    with pytest.raises(ValueError, match='has 300 characters: use at most 100'):
        parse_loss_spec('a' * 300 + "={'type': 'NGLLoss'}")
    assert parse_loss_spec('a' * 100 + "={'type': 'NGLLoss'}")[0] == 'a' * 100


def test_compare_keeps_an_earlier_report(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, 'train_run', no_training)
    for name in compare.REPORT_FILES:
        work = tmp_path / name.replace('.', '_')
        work.mkdir()
        (work / name).write_text('earlier')
        with pytest.raises(FileExistsError, match=f'already holds the report .*{name}'):
            compare.compare(VOC_CFG, ['ngl-plain'], work_dir=str(work))
        assert os.listdir(work) == [name] and (work / name).read_text() == 'earlier'


@pytest.mark.parametrize('name', ['report.md', 'report.json', 'curves.png', 'Predictions.PNG'])
def test_variant_names_of_the_report_files_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.setattr(compare, 'train_run', no_training)
    with pytest.raises(ValueError, match=f"variant name '{name}' is the name of a file of the"):
        compare.compare(VOC_CFG, ['ce', f"{name}={{'type': 'NGLLoss'}}"],
                        work_dir=str(tmp_path / 'w'))
    assert not (tmp_path / 'w').exists()


def test_compare_names_a_damaged_scalars_file(tmp_path, monkeypatch):
    work = tmp_path / 'w'
    scalars = work / 'ce' / '20260101_000000' / 'vis_data' / 'scalars.json'

    def fake_training(config_path, run_dir, *args, **kwargs):
        scalars.parent.mkdir(parents=True)
        scalars.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n')  # cut short
        (work / 'ce' / 'last_checkpoint').write_text(str(work / 'ce' / 'iter_2.pth'))
        return 1.0

    monkeypatch.setattr(compare, 'train_run', fake_training)
    monkeypatch.setattr(compare, 'evaluate_checkpoint', lambda *args, **kwargs: dict(
        mIoU=1.0, mAcc=1.0, aAcc=1.0, per_class_iou={}))
    monkeypatch.setattr(sys, 'argv', ['compare_losses.py', VOC_CFG, '--losses', 'ce',
                                      '--work-dir', str(work), '--num-samples', '0'])
    with pytest.raises(SystemExit) as exit_:
        compare.main()
    message = str(exit_.value.code)
    assert message.startswith('compare_losses: error:') and f'{scalars}, line 2' in message
