"""ngl-mmseg's lab: the machinery that compares losses, apart from the plugin.

Loss presets (``presets``), launching and reading runs (``runs``), the CE-vs-NGL
comparison (``compare``, ``evaluate``), the studies (``study*``, with the
``train_miou`` and ``heldout_miou`` hooks), the benchmark and the GPU check, the
figures and the synthetic datasets the studies train on.

It imports the plugin (``ngl_mmseg``); the plugin never imports it, and a user who
installs ``ngl-mmseg`` alone gets none of it (nor matplotlib). compare, evaluate,
benchmark, gpu_check, study_cli, figures and synthetic_cli are runnable
(``python -m ngl_lab.<name>``); the scripts under ``tools/`` are thin wrappers.
"""
__version__ = '0.5.0'
