"""ngl-mmseg: the Next Generation Loss (NGL) for MMSegmentation.

With mmsegmentation installed, importing the package:

- registers ``NGLLoss`` in ``mmseg.registry.MODELS``, ``NGLMonitorHook`` in
  ``mmseg.registry.HOOKS`` and the ``CheckSegLabels`` transform, and creates
  the ``ngl_mmseg`` registry scope;
- changes four things of OpenMMLab's, process-wide, each a workaround
  documented in ``compat.py`` (numbers as there):

  1. torch's weights-only loading allow-lists the few classes mmengine's
     checkpoints hold (``HistoryBuffer``, numpy arrays and scalars), so
     ``--resume``, ``tools/test.py`` and ``load_from`` work with torch >= 2.6;
  2. mmseg's ``LoadAnnotations._load_seg_map`` is wrapped to name the label
     file it cannot decode;
  3. mmengine's ``get_installed_path`` (and ``MODULE2PACKAGE``) resolve
     ``ngl_mmseg::`` in configs' ``_base_`` to the configs shipped here;
  4. mmengine's ``LoggerHook.after_test_epoch`` dumps the test metrics' JSON
     from rank 0 only.

  (Workaround 5, distributed runs on CPUs, is applied by the train and test
  tools to their config, not at import.)

Each patch is applied once (``compat.patch_once``). Without mmsegmentation only the
fused ops (``ngl_pixel_loss``) load and nothing is patched.
"""
from .ops import ALPHA, ngl_literal, ngl_pixel_loss

__version__ = '0.5.0'

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
