"""Experiment machinery: loss presets, the CE-vs-NGL comparison, the benchmark,
the trainability study and the synthetic datasets they train on.

The plugin (``ngl_mmseg`` as a training user imports it) never imports this
subpackage. compare, evaluate, benchmark, study and synthetic are runnable
(``python -m ngl_mmseg.experiments.<name>``); the scripts under ``tools/`` are
thin wrappers over them.
"""
