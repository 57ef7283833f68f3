"""Experiment machinery: loss presets, launching and reading runs (``runs``), the
CE-vs-NGL comparison, the benchmark and GPU check, the trainability study (with
``train_miou``), the figures and the synthetic datasets they train on.

The plugin (``ngl_mmseg`` as a training user imports it) never imports this
subpackage. compare, evaluate, benchmark, gpu_check, study, figures and synthetic are runnable
(``python -m ngl_mmseg.experiments.<name>``); the scripts under ``tools/`` are
thin wrappers over them.
"""
