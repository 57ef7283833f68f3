"""ngl-mmseg: the Next Generation Loss (NGL) for MMSegmentation.

Importing the package registers ``NGLLoss`` in ``mmseg.registry.MODELS`` and
lets checkpoints written by mmengine load under torch's weights-only loading.
"""
from .ops import ALPHA, ngl_literal, ngl_pixel_loss

__version__ = '0.4.0'

try:
    import mmseg  # noqa: F401
except ImportError:  # the fused ops stay usable on their own (e.g. a bare GPU box)
    _MMSEG_ERROR = 'ngl_mmseg needs mmsegmentation for NGLLoss; install it first'
else:
    _MMSEG_ERROR = None
    from . import compat, datasets, registry  # noqa: F401  (CheckSegLabels; the ngl_mmseg scope)
    from .hooks import NGLMonitorHook  # noqa: F401  (registers it)
    from .losses import NGLLoss, ngl_loss
    compat.allow_checkpoint_globals()
    compat.name_unreadable_label_maps()
    compat.register_config_scope()
    compat.dump_test_metrics_on_rank_zero()


def __getattr__(name):
    if name in ('NGLLoss', 'ngl_loss') and _MMSEG_ERROR:
        raise ImportError(_MMSEG_ERROR)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['ALPHA', 'NGLLoss', 'ngl_literal', 'ngl_loss', 'ngl_pixel_loss', '__version__']
