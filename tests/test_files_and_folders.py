"""Run folders and result files: a folder holding a run is refused and read as one run (a
resumed run continues it, a restarted one replaces it), a results table comes from exactly the
runs it names, and ``--resume`` continues from the newest checkpoint that loads."""
import json
import os
import os.path as osp

import pytest
import torch
from helpers import VOC_CFG

from ngl_mmseg.experiments import compare, study
from ngl_mmseg.experiments.runs import check_fresh_run_dir, read_scalars
from ngl_mmseg.launch import pick_resume_checkpoint

# --- one run per folder -----------------------------------------------------------------------


def fake_run(run_dir, stamp='20260101_000000', rows=({'step': 4, 'mIoU': 50.0}, )):
    vis = osp.join(run_dir, stamp, 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in rows))


def test_a_folder_holding_a_run_is_refused_and_read_as_one_run(tmp_path):
    check_fresh_run_dir(str(tmp_path / 'new'))  # nothing there: fine
    fake_run(str(tmp_path / 'ce_sgd_seed0'))
    with pytest.raises(FileExistsError, match='already holds a run'):
        check_fresh_run_dir(str(tmp_path / 'ce_sgd_seed0'))
    with pytest.raises(FileExistsError, match='already holds a run'):
        study.study(VOC_CFG, ['ce'], seeds=[0], work_dir=str(tmp_path), iters=4)


def test_scalars_of_a_resumed_run_continue_and_a_restarted_one_replaces(tmp_path):
    run_dir = str(tmp_path / 'run')
    fake_run(run_dir, rows=[{'step': s, 'loss': 1.0} for s in (1, 2, 3, 4)] +
             [{'step': 4, 'mIoU': 40.0}])
    fake_run(run_dir, stamp='20260102_000000', rows=[{'step': 5, 'loss': 0.5},
                                                     {'step': 6, 'mIoU': 60.0}])
    train, val = read_scalars(run_dir)  # --resume from iteration 4
    assert [r['step'] for r in train] == [1, 2, 3, 4, 5] and [r['step'] for r in val] == [4, 6]
    fake_run(run_dir, stamp='20260103_000000', rows=[{'step': 1, 'loss': 2.0},
                                                     {'step': 2, 'mIoU': 10.0}])
    train, val = read_scalars(run_dir)  # started again from the beginning: only that run
    assert train == [{'step': 1, 'loss': 2.0}] and val == [{'step': 2, 'mIoU': 10.0}]


def test_compare_refuses_a_variant_folder_that_holds_a_run(tmp_path):
    fake_run(str(tmp_path / 'ce'))
    with pytest.raises(FileExistsError, match='already holds a run'):
        compare.compare(VOC_CFG, ['ngl', 'ce'], work_dir=str(tmp_path))
    assert not (tmp_path / 'ngl').exists()  # refused before the first variant trained


# --- a results table comes from exactly the runs it names -------------------------------------

def write_study(path, runs):
    os.makedirs(path, exist_ok=True)
    with open(osp.join(path, 'study.json'), 'w') as f:
        json.dump(dict(config='c.py', title='', rows=[], runs=runs), f)


def test_merge_counts_every_run_once(tmp_path):
    run = dict(variant='ce', optimizer='sgd', seed=0, curve=[[4, 50.0]], seconds=1.0)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_study(a, [run])
    write_study(b, [dict(run, seed=1)])
    with pytest.raises(ValueError, match='named twice'):
        study.merge(str(tmp_path / 'm'), [a, a])
    with pytest.raises(ValueError, match='is one of the merged studies'):
        study.merge(a, [a, b])
    write_study(str(tmp_path / 'c'), [run])
    with pytest.raises(ValueError, match='appears in more than one merged study'):
        study.merge(str(tmp_path / 'm'), [a, str(tmp_path / 'c')])
    rows = study.merge(str(tmp_path / 'm'), [a, b])
    assert len(rows) == 1 and rows[0]['final_miou'] == [50.0, 50.0]
    with open(osp.join(a, 'study.json')) as f:
        assert len(json.load(f)['runs']) == 1  # the source is untouched


def test_merged_regimes_are_rows_of_their_own(tmp_path):
    run = dict(variant='ce', optimizer='adamw', seed=0, curve=[[4, 50.0]], seconds=1.0)
    write_study(str(tmp_path / 'clean'), [dict(run, regime='clean')])
    write_study(str(tmp_path / 'noisy'), [dict(run, regime='uniform-40', curve=[[4, 30.0]])])
    rows = study.merge(str(tmp_path / 'm'), [str(tmp_path / 'clean'), str(tmp_path / 'noisy')])
    assert [(r['regime'], r['mean']) for r in rows] == [('clean', 50.0), ('uniform-40', 30.0)]
    table = open(tmp_path / 'm' / 'study.md').read()
    assert '| regime |' in table and '| uniform-40 | ce | adamw | config | 30.00' in table
    assert '| clean | adamw | config | 50.0 ± 0.0 |' in table  # the by-regime table


# --- checkpoints ------------------------------------------------------------------------------

def test_resume_continues_from_the_newest_checkpoint_that_loads(tmp_path):
    for it in (4, 8):
        torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': {'iter': it}},
                   tmp_path / f'iter_{it}.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    assert pick_resume_checkpoint(str(tmp_path)) is None  # the recorded one loads: mmengine's
    (tmp_path / 'iter_8.pth').write_bytes(b'PK\x03\x04 cut short while saving')
    assert pick_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    with pytest.raises(RuntimeError, match='no checkpoint in .* loads: .*iter_8.pth .*iter_4.pth'):
        pick_resume_checkpoint(str(tmp_path))
