"""The ``ngl_mmseg`` registry scope: one child of each of mmseg's registries, used without
mmengine's "ngl_mmseg is not installed" message."""
from mmengine.registry import Registry
from mmseg import registry as mmseg_registry

from ngl_mmseg import registry
from ngl_mmseg.hooks import NGLMonitorHook


def test_one_child_registry_per_name_of_mmsegs():
    assert registry.__all__ == list(registry.NAMES)
    assert set(registry.NAMES) == {name for name in dir(mmseg_registry)
                                   if isinstance(getattr(mmseg_registry, name), Registry)}
    for name in registry.NAMES:
        ours, parent = getattr(registry, name), getattr(mmseg_registry, name)
        assert ours.parent is parent and ours.scope == 'ngl_mmseg' and ours.name == parent.name


def test_the_ngl_mmseg_scope_does_not_claim_it_is_not_installed():
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    logged = []
    logger = MMLogger.get_current_instance()
    handler = type('H', (__import__('logging').Handler, ), {
        'emit': lambda self, record: logged.append(record.getMessage())})()
    logger.addHandler(handler)
    try:
        with DefaultScope.overwrite_default_scope('ngl_mmseg'):
            registry.HOOKS._imported = False
            assert registry.HOOKS.get('NGLMonitorHook') is NGLMonitorHook
    finally:
        logger.removeHandler(handler)
    assert not [m for m in logged if 'is not installed' in m]
