"""mmseg's train and test tools with ngl-mmseg's additions, as modules.

``python -m ngl_mmseg.cli.train CONFIG`` and ``python -m ngl_mmseg.cli.test
CONFIG CHECKPOINT`` run them from an installed package; ``tools/train.py`` and
``tools/test.py`` (also shipped as ``ngl_mmseg/.mim/tools``) are thin wrappers.
Not imported by ``import ngl_mmseg``.
"""
