"""The ``ngl_mmseg`` registry scope: one child of each of mmseg's registries.

Dicts of configs inherited as ``_base_ = ['ngl_mmseg::...']`` carry
``_scope_='ngl_mmseg'``, and mmengine builds them from the registries of that
scope (it imports this module to find them). Each registry here is a child of
mmseg's, so a lookup falls through to mmseg's modules and to ours, which are
registered in mmseg's registries (``NGLLoss`` in ``MODELS``, ...).
"""
from mmengine.registry import Registry
from mmseg import registry as mmseg_registry

NAMES = ('RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS',
         'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS',
         'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS',
         'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS',
         'INFERENCERS')


def _child(name):
    parent = getattr(mmseg_registry, name)
    # `locations`: without one, mmengine's first lookup in this scope falls back to
    # importing `ngl_mmseg.utils` and logs "ngl_mmseg is not installed" when that fails.
    return Registry(parent.name, parent=parent, scope='ngl_mmseg', locations=['ngl_mmseg'])


# One registry per name, as module attributes: RUNNERS, HOOKS, MODELS, ...
globals().update({name: _child(name) for name in NAMES})
__all__ = list(NAMES)
