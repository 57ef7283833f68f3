"""Run folders and result files: a folder holding a run is refused and read as one run (a
resumed run continues it, a restarted one replaces it), a results table comes from exactly the
runs it names, the comparison keeps an earlier report and names a damaged scalars file,
``--resume`` continues from the newest checkpoint that loads, and the synthetic-data tool's
``--overwrite`` deletes only the files it wrote and keeps the old dataset until the new one is
whole."""
import json
import os
import os.path as osp
import sys

import pytest
import torch
from helpers import SMALL, VOC_CFG, no_training, run_tool, snapshot

from ngl_lab import compare, study, study_rebuild, synthetic
from ngl_lab.runs import check_fresh_run_dir, read_scalars
from ngl_lab.study_resume import resume_points
from ngl_lab.study_settings import StudySettings
from ngl_lab.synthetic import MANIFEST, make_coco_stuff, make_voc
from ngl_mmseg.launch import checkpoint_number, pick_resume_checkpoint

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
        study.study(StudySettings(VOC_CFG, ['ce'], seeds=[0], work_dir=str(tmp_path), iters=4))


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
        study_rebuild.merge(str(tmp_path / 'm'), [a, a])
    with pytest.raises(ValueError, match='is one of the merged studies'):
        study_rebuild.merge(a, [a, b])
    write_study(str(tmp_path / 'c'), [run])
    with pytest.raises(ValueError, match='appears in more than one merged study'):
        study_rebuild.merge(str(tmp_path / 'm'), [a, str(tmp_path / 'c')])
    rows = study_rebuild.merge(str(tmp_path / 'm'), [a, b])
    assert len(rows) == 1 and rows[0]['final_miou'] == [50.0, 50.0]
    with open(osp.join(a, 'study.json')) as f:
        assert len(json.load(f)['runs']) == 1  # the source is untouched


def test_merged_regimes_are_rows_of_their_own(tmp_path):
    run = dict(variant='ce', optimizer='adamw', seed=0, curve=[[4, 50.0]], seconds=1.0)
    write_study(str(tmp_path / 'clean'), [dict(run, regime='clean')])
    write_study(str(tmp_path / 'noisy'), [dict(run, regime='uniform-40', curve=[[4, 30.0]])])
    rows = study_rebuild.merge(str(tmp_path / 'm'),
                               [str(tmp_path / 'clean'), str(tmp_path / 'noisy')])
    assert [(r['regime'], r['mean']) for r in rows] == [('clean', 50.0), ('uniform-40', 30.0)]
    table = open(tmp_path / 'm' / 'study.md').read()
    assert '| regime |' in table and '| uniform-40 | ce | adamw | config | 30.00' in table
    assert '| clean | adamw | config | 50.0 ± 0.0 |' in table  # the by-regime table


# --- the comparison's report: an earlier one is kept, a damaged scalars file named ------------

def test_compare_keeps_an_earlier_report(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, 'train_run', no_training)
    for name in compare.REPORT_FILES:
        work = tmp_path / name.replace('.', '_')
        work.mkdir()
        (work / name).write_text('earlier')
        with pytest.raises(FileExistsError, match=f'already holds the report .*{name}'):
            compare.compare(VOC_CFG, ['ngl-plain'], work_dir=str(work))
        assert os.listdir(work) == [name] and (work / name).read_text() == 'earlier'


def test_compare_names_a_damaged_scalars_file(tmp_path, monkeypatch):
    work = tmp_path / 'w'
    scalars = work / 'ce' / '20260101_000000' / 'vis_data' / 'scalars.json'

    def fake_training(config_path, run_dir, *args, **kwargs):
        scalars.parent.mkdir(parents=True)
        scalars.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n')  # cut short
        (work / 'ce' / 'last_checkpoint').write_text(str(work / 'ce' / 'iter_2.pth'))
        return 1.0

    monkeypatch.setattr(compare, 'train_run', fake_training)
    monkeypatch.setattr(compare, 'evaluate_checkpoint', lambda *args, **kwargs: dict(
        mIoU=1.0, mAcc=1.0, aAcc=1.0, per_class_iou={}))
    monkeypatch.setattr(sys, 'argv', ['compare_losses.py', VOC_CFG, '--losses', 'ce',
                                      '--work-dir', str(work), '--num-samples', '0'])
    with pytest.raises(SystemExit) as exit_:
        compare.main()
    message = str(exit_.value.code)
    assert message.startswith('compare_losses: error:') and f'{scalars}, line 2' in message


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


def test_resume_points_are_the_iterations_checkpoints_below_the_last_newest_first(tmp_path):
    for name in ('iter_100.pth', 'iter_20.pth', 'iter_300.pth', 'epoch_5.pth',
                 'best_mIoU_iter_50.pth', 'iter_7.pth.tmp', 'iter_x.pth'):
        (tmp_path / name).write_bytes(b'')
    assert checkpoint_number(str(tmp_path / 'best_mIoU_iter_50.pth')) == 50
    assert checkpoint_number(str(tmp_path / 'epoch_5.pth')) == 5
    assert checkpoint_number(str(tmp_path / 'iter_x.pth')) is None
    assert resume_points(str(tmp_path), below=300) == [
        (100, str(tmp_path / 'iter_100.pth')), (20, str(tmp_path / 'iter_20.pth'))]


# --- a synthetic dataset's folder: --overwrite deletes only what it wrote ---------------------

def edit_manifest(root, value):
    with open(osp.join(root, MANIFEST), 'w') as f:
        f.write(value if isinstance(value, str) else json.dumps(value))


@pytest.mark.parametrize('where', ['relative', 'absolute', 'through a link'])
def test_overwrite_never_deletes_what_an_edited_manifest_lists_outside_the_dataset(tmp_path,
                                                                                   where):
    root = make_voc(str(tmp_path / 'out'), **SMALL)
    victim = tmp_path / 'elsewhere' / 'victim.txt'
    victim.parent.mkdir()
    victim.write_text('keep me')
    entry = {'relative': '../../../elsewhere/victim.txt', 'absolute': str(victim),
             'through a link': 'link/victim.txt'}[where]
    if where == 'through a link':
        os.symlink(victim.parent, osp.join(root, 'link'))
    manifest = json.load(open(osp.join(root, MANIFEST)))
    edit_manifest(root, dict(manifest, files=manifest['files'] + [entry]))
    before = snapshot(root)
    with pytest.raises(ValueError, match=r"lists '.*victim.txt', which is not a file inside"):
        make_voc(str(tmp_path / 'out'), overwrite=True, **SMALL)
    assert victim.read_text() == 'keep me' and snapshot(root) == before


@pytest.mark.parametrize('manifest', [['JPEGImages/2007_000000.jpg'], {'files': [1, 2]},
                                      {'files': 'JPEGImages'}, {'label_noise': None},
                                      '{"files": [', ''])
def test_overwrite_refuses_a_manifest_of_the_wrong_shape_with_a_message(tmp_path, manifest):
    root = make_voc(str(tmp_path), **SMALL)
    edit_manifest(root, manifest)
    before = snapshot(root)
    with pytest.raises(ValueError, match='is not a manifest this tool wrote'):
        make_voc(str(tmp_path), overwrite=True, **SMALL)
    if manifest == '':  # the tool says the same, in one line
        out = run_tool(['voc', tmp_path, '--overwrite', '--num-train', 2, '--num-val', 1])
        assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-2000:]
        assert 'make_synthetic_dataset: error:' in out.stderr
        assert 'is not a manifest this tool wrote' in out.stderr
    assert snapshot(root) == before


@pytest.mark.slow
def test_out_dir_that_is_a_file_is_refused_with_a_message(tmp_path):
    out_dir = tmp_path / 'a-file'
    out_dir.write_text('not a folder')
    with pytest.raises(ValueError, match='is a file, not a folder'):
        make_coco_stuff(str(out_dir), **SMALL)
    out = run_tool(['voc', out_dir])
    assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-2000:]
    assert f'{out_dir} is a file, not a folder' in out.stderr
    assert out_dir.read_text() == 'not a folder'


def test_a_run_that_fails_midway_leaves_the_old_dataset_as_it_was(tmp_path, monkeypatch):
    root = make_voc(str(tmp_path), **SMALL)
    before = snapshot(root)
    render, calls = synthetic.render_image, []

    def fail_on_the_third_image(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError('No space left on device')
        return render(*args)

    monkeypatch.setattr(synthetic, 'render_image', fail_on_the_third_image)
    with pytest.raises(OSError, match='No space left'):
        make_voc(str(tmp_path), overwrite=True, seed=1, **SMALL)
    assert snapshot(root) == before
    assert os.listdir(tmp_path / 'VOCdevkit') == ['VOC2012']  # no staging folder left behind
    monkeypatch.undo()
    make_voc(str(tmp_path), overwrite=True, seed=1, **SMALL)  # the dataset is replaced
    assert snapshot(root) != before and snapshot(root).keys() == before.keys()
