"""What the comparison's figure and report show of an NGL run (issue 16, item 4)."""
import pytest

from ngl_lab.compare import recipe_note, training_panel
from ngl_lab.presets import LOSS_PRESETS


def logged_rows(max_iters=1000, every=50):
    """Scalars as mmengine logs them for the recipe: the weighted loss climbs from
    ~3 (CE) to ~640 (NGL times the CE-matched weight) while NGL's progress grows."""
    rows = []
    for step in range(every, max_iters + 1, every):
        share = max(0.0, 1 - (step - 1) / (0.1 * max_iters))
        rows.append({'step': step, 'loss': share * 3 + (1 - share) * 640,
                     'decode.ngl_progress': step / max_iters})
    return rows


def test_ngl_panel_shows_progress_and_the_ce_share_not_the_weighted_loss():
    rows = logged_rows()
    panel = training_panel(rows, LOSS_PRESETS['ngl'])
    assert panel['title'] == 'NGL progress (0: chance, 1: minimum)'
    (label, steps, values), (share_label, _, share) = panel['series']
    assert label == 'NGL progress' and values == [r['decode.ngl_progress'] for r in rows]
    assert steps == [r['step'] for r in rows]
    assert share_label == 'CE share of the loss'
    assert share[0] == pytest.approx(1 - 49 / 100) and share[1] == pytest.approx(0.01)
    assert all(v == 0.0 for v in share[2:])


def test_panels_without_a_warmup_or_without_ngl():
    rows = logged_rows()
    panel = training_panel(rows, LOSS_PRESETS['ngl-plain'])
    assert [s[0] for s in panel['series']] == ['NGL progress']
    ce = training_panel(rows, LOSS_PRESETS['ce'])
    assert ce['title'] == 'training loss' and ce['series'][0][2] == [r['loss'] for r in rows]
    # an NGL run that logged no progress (no monitor hook): its loss, not an empty panel
    bare = [{'step': r['step'], 'loss': r['loss']} for r in rows]
    assert training_panel(bare, LOSS_PRESETS['ngl'])['title'] == 'training loss'


def test_report_names_the_recipe_and_what_the_logged_loss_is():
    assert recipe_note(LOSS_PRESETS['ce']) == ''
    note = recipe_note(LOSS_PRESETS['ngl'])
    assert 'auto_weight (the CE-matched weight)' in note and 'ce_warmup=0.1' in note
    assert 'the logged loss is NGL times the CE-matched weight, blended with CE during ' \
           'the warm-up' in note
    assert "the paper's formula alone" in recipe_note(LOSS_PRESETS['ngl-plain'])
    assert 'target_bias_warmup=0.1' in recipe_note(LOSS_PRESETS['ngl-bias'])


def test_collect_rebuilds_a_study_from_its_run_folders(tmp_path):
    from study_helpers import fake_study_run

    from ngl_lab.study_rebuild import collect
    fake_study_run(tmp_path, 'ce', 0, [10.0, 40.0])
    fake_study_run(tmp_path, 'ce', 1, [10.0, 50.0])
    fake_study_run(tmp_path, 'ngl-bias-half', 0, [5.0, 20.0])
    rows = collect(str(tmp_path))
    assert [(r['variant'], r['mean'], r['seeds']) for r in rows] == [
        ('ce', 45.0, [0, 1]), ('ngl-bias-half', 20.0, [0])]
    assert rows[0]['seconds'] == 100.0 and rows[0]['train_mean_curve'] == [70.0]
    assert (tmp_path / 'study.md').read_text().count('| r |') >= 2


def test_a_comparison_report_says_one_seed_is_not_a_comparison():
    from ngl_lab.compare import ONE_SEED_NOTE, format_report

    def result(name, miou):
        return dict(name=name, losses=[{'type': 'CrossEntropyLoss'}], mIoU=miou, mAcc=90.0,
                    aAcc=99.0, train_seconds=100.0, per_class_iou={'cat': miou})

    two = format_report([result('ce', 92.2), result('ngl', 92.6)])
    assert ONE_SEED_NOTE in two
    assert two.index('| ngl |') < two.index(ONE_SEED_NOTE) < two.index('| class |')
    assert 'docs/when-to-use-ngl.md' in ONE_SEED_NOTE and 'study_ngl.py' in ONE_SEED_NOTE
    assert ONE_SEED_NOTE not in format_report([result('ngl', 92.6)])  # nothing compared
