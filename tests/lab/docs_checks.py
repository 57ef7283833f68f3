"""What the docs tests share (tests/lab/test_docs.py, test_docs_tuned.py): the pages'
paths and the pattern of a paired difference as the pages print it. Test modules import
from here, never from each other."""
import json
import os.path as osp
import re

from helpers import REPO

README = osp.join(REPO, 'README.md')
WHEN_TO_USE = osp.join(REPO, 'docs', 'when-to-use-ngl.md')
TRAINING = osp.join(REPO, 'docs', 'training.md')
# A paired difference with its interval and verdict, recomputed from docs/study/*.json by
# test_docs_tuned.py (test_docs.py leaves these to it): '+1.23 [-0.40, +2.86], ahead 3/5, tie'
DIFFERENCE = re.compile(r'[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\], ahead \d+/\d+, '
                        r'(?:tie|win|loss)')

PLATEAU = osp.join(REPO, 'docs', 'study', 'plateau.json')


def plateau_study():
    """docs/study/plateau.json: the plateau study as published so far (its merge is
    partial: ``pending`` lists the cells not run yet)."""
    with open(PLATEAU) as f:
        return json.load(f)


def checked_cells(tuned):
    """The (regime, optimizer) cells of ``tuned`` whose budget-doubling check ran for
    every variant: their verdicts at 500 iterations are superseded and leave the pages."""
    from ngl_lab.study_tables import cell_at_plateau
    return {(r['regime'], r['optimizer']) for r in tuned
            if cell_at_plateau(tuned, r['regime'], r['optimizer']) is not None}
