"""Every config in configs/: it loads, builds its model (no pretrained weights) and
runs one training iteration on tiny input; each NGL config differs from its CE
twin only in the losses."""
import copy
import glob
import os.path as osp

import mmseg
import pytest
import torch
from helpers import REPO, image_batch
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import ngl_mmseg  # noqa: F401
from ngl_mmseg.compat import sync_bn_to_bn

MMSEG_CONFIGS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py')))
NGL_CONFIGS = [c for c in CONFIGS if '_ngl_' in osp.basename(c)]  # the recipe
PLAIN_CONFIGS = [c for c in CONFIGS if '_ngl-plain_' in osp.basename(c)]  # strict twins


def rel(path):
    return osp.relpath(path, REPO)


def test_every_dataset_and_model_of_the_issue_has_a_config():
    names = [osp.basename(c) for c in NGL_CONFIGS]
    for needed in ('deeplabv3plus_r50-d8_ngl_4xb4-20k_voc12aug',
                   'deeplabv3plus_r50-d8_ngl_4xb4-40k_voc12aug',
                   'deeplabv3plus_r101-d8_ngl_4xb4-20k_voc12aug',
                   'deeplabv3plus_r101-d8_ngl_4xb4-40k_voc12aug',
                   'deeplabv3_r50-d8_ngl_4xb4-80k_coco-stuff164k',
                   'pspnet_r50-d8_ngl_4xb4-80k_coco-stuff164k',
                   'deeplabv3plus_r50-d8_ngl_4xb4-80k_coco-stuff164k',
                   'segformer_mit-b0_ngl_8xb2-40k_voc12aug',
                   'segformer_mit-b2_ngl_8xb2-80k_coco-stuff164k'):
        assert any(n.startswith(needed) for n in names), needed
        plain = needed.replace('_ngl_', '_ngl-plain_')
        assert any(osp.basename(c).startswith(plain) for c in PLAIN_CONFIGS), plain


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS, ids=rel)
def test_config_builds_and_trains_one_iteration(config):
    register_all_modules()
    cfg = Config.fromfile(config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pretrained = None
    if model_cfg.backbone.get('init_cfg'):
        model_cfg.backbone.init_cfg = None  # no downloads here
    sync_bn_to_bn(model_cfg)
    size = 64
    model_cfg.data_preprocessor.size = (size, size)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).train()
    num_classes = cfg.model.decode_head.num_classes
    inputs, samples = image_batch(2, size, num_classes)
    data = model.data_preprocessor(dict(inputs=list(inputs), data_samples=samples), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if '_ngl' in osp.basename(config):
        assert 'decode.loss_ngl' in losses
        if cfg.model.get('auxiliary_head'):
            assert 'aux.loss_ngl' in losses


def ce_twin(config):
    name = osp.basename(config).replace('_ngl-plain_', '_')
    local = osp.join(osp.dirname(config), name)
    if osp.isfile(local):
        return local
    found = glob.glob(osp.join(MMSEG_CONFIGS, '*', name))
    return found[0] if found else None


def unscoped(obj):
    """Plain data without the ``_scope_`` keys that loading through ``mmseg::`` adds."""
    if isinstance(obj, dict):
        return {k: unscoped(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return [unscoped(v) for v in obj]
    return obj


def strip_losses(model_cfg):
    model_cfg = unscoped(model_cfg.to_dict())
    for key in ('decode_head', 'auxiliary_head'):
        if model_cfg.get(key):
            model_cfg[key].pop('loss_decode')
    return model_cfg


@pytest.mark.slow
@pytest.mark.parametrize('config', PLAIN_CONFIGS, ids=rel)
def test_plain_ngl_config_differs_from_its_ce_twin_only_in_losses(config):
    twin = ce_twin(config)
    assert twin, f'no CE twin for {rel(config)}'
    ngl, ce = Config.fromfile(config), Config.fromfile(twin)
    assert strip_losses(ngl.model) == strip_losses(ce.model)
    ngl_all, ce_all = unscoped(ngl.to_dict()), unscoped(ce.to_dict())
    for key in set(ngl_all) | set(ce_all):
        if key not in ('model', 'custom_imports', 'custom_hooks'):
            assert ngl_all.get(key) == ce_all.get(key), key
    # The only extra hook only logs (NGL's progress, the plateau warning).
    extra = [h for h in ngl_all.get('custom_hooks', []) if h not in ce_all.get('custom_hooks', [])]
    assert extra == [dict(type='NGLMonitorHook')]
    assert ce.model.decode_head.loss_decode.type == 'CrossEntropyLoss'
    assert dict(ngl.model.decode_head.loss_decode) == dict(type='NGLLoss', loss_weight=1.0)
    if ngl.model.get('auxiliary_head'):
        assert dict(ngl.model.auxiliary_head.loss_decode) == dict(type='NGLLoss', loss_weight=0.4)


@pytest.mark.slow
@pytest.mark.parametrize('config', [c for c in NGL_CONFIGS if '/ngl/' in c], ids=rel)
def test_recipe_config_is_its_plain_twin_plus_the_recipe(config):
    """*_ngl_* = *_ngl-plain_* with NGLLoss(auto_weight=True, ce_warmup=0.1): the recipe
    lives in the loss, nothing else changes (optimizer, schedule, data)."""
    plain = Config.fromfile(config.replace('_ngl_', '_ngl-plain_'))
    recipe = Config.fromfile(config)
    heads = [('decode_head', 1.0)] + ([('auxiliary_head', 0.4)]
                                      if recipe.model.get('auxiliary_head') else [])
    for head, weight in heads:
        assert dict(recipe.model[head].loss_decode) == dict(
            type='NGLLoss', auto_weight=True, ce_warmup=0.1, loss_weight=weight)
    assert recipe.custom_hooks == [dict(type='NGLMonitorHook')]
    assert strip_losses(recipe.model) == strip_losses(plain.model)
    a, b = unscoped(recipe.to_dict()), unscoped(plain.to_dict())
    assert {k: v for k, v in a.items() if k != 'model'} == \
        {k: v for k, v in b.items() if k != 'model'}
