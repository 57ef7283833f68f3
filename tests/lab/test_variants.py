"""The loss variants of the comparison and the study: every variant's loss is built on every
head before the first run, a variant dict of the wrong shape or a type that would import a
module is refused when parsed (and never imported), and a variant's name fits in a folder name
and is not the name of a report file."""
import subprocess
import sys

import pytest
from helpers import VOC_CFG, no_training
from mmengine.config import Config

from ngl_lab import compare
from ngl_lab.presets import check_variant_losses, parse_loss_spec, parse_loss_specs


def voc_config():
    return Config.fromfile(VOC_CFG)


# --- every variant's loss is built before the first run ---------------------------------------

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
    out = subprocess.run([sys.executable, '-m', 'ngl_lab.compare', VOC_CFG,
                          '--losses', 'ce', "bad={'type': 'NoSuchLoss'}", '--work-dir',
                          str(tmp_path / 'w')], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "variant 'bad'" in out.stderr, out.stderr[-2000:]
    assert 'NoSuchLoss' in out.stderr and not (tmp_path / 'w').exists()


# --- a variant type never imports a module ----------------------------------------------------

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
    out = subprocess.run([sys.executable, '-m', 'ngl_lab.compare', VOC_CFG,
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


# --- a variant's name: a folder name, not a report file's -------------------------------------

def test_a_variant_name_longer_than_a_folder_name_can_be_is_refused():
    with pytest.raises(ValueError, match='has 300 characters: use at most 100'):
        parse_loss_spec('a' * 300 + "={'type': 'NGLLoss'}")
    assert parse_loss_spec('a' * 100 + "={'type': 'NGLLoss'}")[0] == 'a' * 100


@pytest.mark.parametrize('name', ['report.md', 'report.json', 'curves.png', 'Predictions.PNG'])
def test_variant_names_of_the_report_files_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.setattr(compare, 'train_run', no_training)
    with pytest.raises(ValueError, match=f"variant name '{name}' is the name of a file of the"):
        compare.compare(VOC_CFG, ['ce', f"{name}={{'type': 'NGLLoss'}}"],
                        work_dir=str(tmp_path / 'w'))
    assert not (tmp_path / 'w').exists()
