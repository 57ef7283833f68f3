#!/usr/bin/env python
# Copyright (c) OpenMMLab. All rights reserved.
# mmseg's tools/train.py with ngl-mmseg's additions; the code is ngl_mmseg/cli/train.py, so an
# installed package runs the same thing as `python -m ngl_mmseg.cli.train`.
from ngl_mmseg.cli.train import main

if __name__ == '__main__':
    main()
