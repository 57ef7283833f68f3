"""The paired differences on docs/when-to-use-ngl.md, docs/training.md and the README
are read from docs/study/*.json: every interval printed there is one the JSONs hold
(recomputed here from their per-seed scores); the plateau study's short answer on
docs/when-to-use-ngl.md is the one docs/study/plateau.json gives, a verdict of a cell
not at its plateau says so wherever it is quoted, and every tuned comparison of
docs/study/tuned.json (500 iterations) is on the page with its verdict unless the
plateau study has superseded its cell, when it is not."""
import json
import os.path as osp
import re

import pytest
from docs_checks import (
    DIFFERENCE,
    README,
    TRAINING,
    WHEN_TO_USE,
    checked_cells,
    plateau_study,
)
from helpers import REPO

from ngl_lab.stats import format_difference, mean_interval, paired_difference
from ngl_lab.study_answer import NOT_AT_PLATEAU, format_short_answer
from ngl_lab.study_tables import cell_at_plateau, tuned_rows

TUNED = osp.join(REPO, 'docs', 'study', 'tuned.json')
PAGE = WHEN_TO_USE
# The pages whose paired differences this module checks: each must state at least one.
DIFFERENCE_PAGES = [PAGE, README, TRAINING]


def _rows():
    with open(TUNED) as f:
        data = json.load(f)
    return data, data['tuned']


def _not_superseded(rows):
    """The 500-iteration tuned rows whose cell the plateau study has not checked yet."""
    checked = checked_cells(plateau_study()['tuned'])
    return [r for r in rows if (r['regime'], r['optimizer']) not in checked]


def _recomputed(rows):
    """Every row's differences to tuned CE, recomputed from the per-seed scores."""
    by_cell = {(r['regime'], r['optimizer'], r['variant']): r for r in rows}
    out = {}
    for r in rows:
        ce = by_cell.get((r['regime'], r['optimizer'], 'ce'))
        if ce is None or r['variant'] == 'ce':
            continue
        final = paired_difference(r['report_final'], ce['report_final'])
        peak = paired_difference(r['report_peak'], ce['report_peak'])
        out[(r['regime'], r['optimizer'], r['variant'])] = (format_difference(final),
                                                              format_difference(peak))
    return out


def test_the_json_is_consistent_with_its_runs():
    data, rows = _rows()
    assert rows, 'docs/study/tuned.json holds no tuned rows'
    for r in rows:
        runs = [run for run in data['runs'] if run['regime'] == r['regime'] and
                run['optimizer'] == r['optimizer'] and run['variant'] == r['variant'] and
                run['lr'] == r['lr']]
        assert sorted(int(s) for s in r['report_final']) == sorted(run['seed'] for run in runs)
        for run in runs:
            assert r['report_final'][str(run['seed'])] == run['report_curve'][-1][1]
        mean, half = mean_interval(list(r['report_final'].values()))
        assert r['mean'] == pytest.approx(mean) and r['half_width'] == pytest.approx(half)
        # the lr was chosen on the validation split: the best search mean
        search = {float(k): v for k, v in r['search_mean'].items()}
        assert max(search, key=search.get) == r['lr']


def _untuned_differences():
    """Every paired difference of the untuned studies (docs/study/*.json rows),
    recomputed from their per-seed finals."""
    import glob
    out = set()
    for path in glob.glob(osp.join(REPO, 'docs', 'study', '*.json')):
        with open(path) as f:
            rows = json.load(f)['rows']
        by_key = {(r['regime'], r['optimizer'], r.get('lr'), r['variant']): r for r in rows}
        for r in rows:
            ce = by_key.get((r['regime'], r['optimizer'], r.get('lr'), 'ce'))
            if ce is not None and r['variant'] != 'ce':
                out.add(format_difference(paired_difference(
                    dict(zip(r['seeds'], r['final_miou'])),
                    dict(zip(ce['seeds'], ce['final_miou'])))))
    return out


def _between_variants(rows):
    """Every tuned variant against every other of its regime (final, report split)."""
    return {format_difference(paired_difference(a['report_final'], b['report_final']))
            for a in rows for b in rows
            if a is not b and (a['regime'], a['optimizer']) == (b['regime'], b['optimizer'])}


def _plateau_differences():
    """Every paired difference of docs/study/plateau.json, recomputed from its runs:
    final, at the validation peak, at a quarter and at twice the budget, and between
    variants."""
    rows = tuned_rows(plateau_study()['runs'])
    known = {format_difference(r[key]) for r in rows
             for key in ('vs_ce', 'vs_ce_peak', 'vs_ce_quarter', 'vs_ce_doubled') if r.get(key)}
    return known | _between_variants(rows)


def known_differences():
    """Every paired difference the pages may print, as they print it."""
    _, rows = _rows()
    rows = _not_superseded(rows)
    known = {text for pair in _recomputed(rows).values() for text in pair}
    return known | _between_variants(rows) | _untuned_differences() | _plateau_differences()


def check_differences(page, text, known):
    """Every paired difference on ``page`` (its ``text``) is one of ``known``, none wrapped
    across lines (where no check would see it); the page states at least one (a page that
    states none guards nothing)."""
    wrapped = [m for m in WRAPPED_DIFFERENCE.findall(text) if '\n' in m]
    assert not wrapped, f'{page}: paired differences wrapped across lines: {wrapped}'
    found = DIFFERENCE.findall(text)
    assert found, f'{page} states no paired difference: this check guards nothing there'
    for claim in found:
        assert claim in known, f'{page}: {claim!r} is in no docs/study/*.json'


@pytest.mark.parametrize('path', DIFFERENCE_PAGES, ids=osp.basename)
def test_every_interval_on_the_pages_is_one_the_json_holds(path):
    with open(path) as f:
        check_differences(osp.relpath(path, REPO), f.read(), known_differences())


# A paired difference as DIFFERENCE finds it, but with any white space (a line break) between
# its parts.
WRAPPED_DIFFERENCE = re.compile(DIFFERENCE.pattern.replace(' ', r'\s+'))


def test_the_difference_check_catches_what_it_looks_for():
    known = {'+1.05 [-4.58, +6.68], ahead 3/5, tie'}
    with pytest.raises(AssertionError, match='wrapped across lines'):
        check_differences('a page', 'NGL - CE +1.05 [-4.58, +6.68],\nahead 3/5, tie.', known)
    check_differences('a page', 'NGL - CE: +1.05 [-4.58, +6.68], ahead 3/5, tie.', known)
    with pytest.raises(AssertionError, match='is in no docs/study'):
        check_differences('a page', 'NGL - CE: +1.06 [-4.58, +6.68], ahead 3/5, tie.', known)
    with pytest.raises(AssertionError, match='states no paired difference'):
        check_differences('a page', 'NGL and CE tie (+1.05 mIoU).', known)


def test_every_tuned_comparison_is_on_the_page_with_its_verdict():
    """... every one not superseded; the superseded ones are on no page."""
    _, rows = _rows()
    current = {(r['regime'], r['optimizer'], r['variant']) for r in _not_superseded(rows)}
    pages = {}
    for path in (PAGE, README):
        with open(path) as f:
            pages[path] = f.read()
    for (regime, optimizer, variant), (final, peak) in _recomputed(rows).items():
        if (regime, optimizer, variant) not in current:
            for path, text in pages.items():
                assert final not in text and peak not in text, \
                    f'{osp.basename(path)}: {regime} {optimizer} {variant} at 500 iterations ' \
                    f'({final}) is superseded by the plateau study: it leaves the page'
            continue
        lines = [ln.lower() for ln in pages[PAGE].splitlines() if final in ln]
        assert any(regime in ln and variant in ln for ln in lines), \
            f'{regime} {optimizer} {variant} vs CE ({final}) is not on the page with its ' \
            'regime and variant'


def test_the_plateau_json_is_consistent_with_its_runs():
    """Its tuned rows (chosen rates, differences, doubling checks) are what its runs give."""
    data = plateau_study()
    assert data['tuned'], 'docs/study/plateau.json holds no tuned rows'
    again = {(r['regime'], r['optimizer'], r['variant']): r for r in tuned_rows(data['runs'])}
    assert len(again) == len(data['tuned'])
    for row in data['tuned']:
        r = again[(row['regime'], row['optimizer'], row['variant'])]
        assert r['lr'] == row['lr'] and r['seeds'] == row['seeds']
        for key in ('vs_ce', 'vs_ce_peak', 'vs_ce_quarter', 'vs_ce_doubled'):
            assert (r[key] and format_difference(r[key])) == \
                (row[key] and format_difference(row[key])), (row['regime'], row['variant'], key)
        assert (r['doubled'] or {}).get('delta') == \
            pytest.approx((row['doubled'] or {}).get('delta')), (row['regime'], row['variant'])
    assert not {tuple(c) for c in data.get('pending', [])} & {key[:2] for key in again}, \
        'a cell is both published and pending'


def test_the_short_answer_on_the_page_is_the_plateau_jsons():
    data = plateau_study()
    table = format_short_answer(data['tuned'], [tuple(c) for c in data.get('pending', [])])
    with open(PAGE) as f:
        assert table in f.read(), 'the short answer on docs/when-to-use-ngl.md is not the ' \
            'one docs/study/plateau.json gives (copy it from docs/study/plateau.md)'


def check_plateau_marks(page, text, unsettled):
    """Each quote in ``page`` (its ``text``) of one of ``unsettled`` (the differences of
    cells that failed their doubling check) is followed by "(not at plateau" (a
    difference is never wrapped across lines: ``check_differences``)."""
    for claim in unsettled:
        start = text.find(claim)
        while start >= 0:
            after = text[start + len(claim):start + len(claim) + len(NOT_AT_PLATEAU) + 3]
            assert after.startswith(f' ({NOT_AT_PLATEAU}'), \
                f'{page}: {claim!r} is quoted without " ({NOT_AT_PLATEAU}" after it'
            start = text.find(claim, start + 1)


PLATEAU_MD = osp.join(REPO, 'docs', 'study', 'plateau.md')


@pytest.mark.parametrize('path', [PAGE, README, PLATEAU_MD], ids=osp.basename)
def test_a_verdict_not_at_plateau_says_so_wherever_it_is_quoted(path):
    tuned = plateau_study()['tuned']
    # a cell that failed its check: every verdict; one whose peak scores failed theirs: the
    # verdicts at the peak
    unsettled = {format_difference(r[key]) for r in tuned
                 for key, figures in (('vs_ce', ('final',)), ('vs_ce_peak', ('final', 'peak')))
                 if r.get(key) and any(cell_at_plateau(tuned, r['regime'], r['optimizer'],
                                                       figure) is False for figure in figures)}
    with open(path) as f:
        check_plateau_marks(osp.basename(path), f.read(), unsettled)


def test_the_plateau_mark_check_catches_what_it_looks_for():
    claim = '+1.05 [-4.58, +6.68], ahead 3/5, tie'
    check_plateau_marks('a page', f'NGL - CE {claim} (not at plateau).', {claim})
    with pytest.raises(AssertionError, match='without " \\(not at plateau" after it'):
        check_plateau_marks('a page', f'NGL - CE {claim}.', {claim})
    with pytest.raises(AssertionError, match='without'):  # the mark elsewhere on the line
        check_plateau_marks('a page', f'(not at plateau) NGL - CE {claim}.', {claim})


def test_the_page_keeps_no_claim_its_data_cannot_carry():
    with open(PAGE) as f:
        page = f.read().lower()
    for phrase in ('steadier across seeds', 'ahead in every kind of noise',
                   'in every kind of noise tried'):
        assert phrase not in page
    with open(README) as f:
        readme = f.read()
    assert 'docs/study/tuned.json' in readme


# '| uniform-40 | adamw | ngl | 0.002 | 48.39 [34.88, 61.90] | ... | 41.87, 64.97, ... | 0/5 |'
TABLE_ROW = re.compile(r'^\| ([\w-]+) \| ([\w-]+) \| ([\w-]+) \| ([\d.]+) \| (\d+\.\d\d) '
                       r'\[(\d+\.\d\d), '
                       r'(\d+\.\d\d)\] \| [^|]* \| ([\d., ]+) \| (\d+)/(\d+) \|$', re.M)


def test_every_tuned_row_on_the_page_is_the_jsons_to_the_last_digit():
    """The page's tuned tables (lr, mean and interval, per-seed scores, converged),
    read against docs/study/tuned.json; every tuned row of the JSON is on the page."""
    _, rows = _rows()
    by_cell = {(r['regime'], r['optimizer'], r['variant']): r for r in rows}
    assert len(by_cell) == len(rows), 'two tuned rows share a regime, optimizer and variant'
    by_cell = {(r['regime'], r['optimizer'], r['variant']): r for r in _not_superseded(rows)}
    with open(PAGE) as f:
        found = TABLE_ROW.findall(f.read())
    on_page = set()
    for regime, optimizer, variant, lr, mean, lo, hi, seeds, converged, n in found:
        r = by_cell.get((regime, optimizer, variant))
        assert r is not None, f'{regime} {optimizer} {variant}: a tuned row on the page is not ' \
            'in the JSON, or superseded by the plateau study'
        on_page.add((regime, optimizer, variant))
        assert float(lr) == r['lr'], (regime, variant, lr)
        assert mean == f"{r['mean']:.2f}", (regime, variant, mean)
        assert (lo, hi) == (f"{r['mean'] - r['half_width']:.2f}",
                            f"{r['mean'] + r['half_width']:.2f}"), (regime, variant)
        assert seeds == ', '.join(f"{r['report_final'][str(s)]:.2f}" for s in r['seeds'])
        assert (int(converged), int(n)) == (r['converged'], len(r['seeds'])), (regime, variant)
    assert on_page == set(by_cell), f'tuned rows missing from the page: {set(by_cell) - on_page}'


def test_the_readmes_when_it_pays_off_is_short_and_states_every_171_class_plateau_verdict():
    """At most 8 lines, naming the plateau study and 171 classes; once the plateau study
    has a 171-class cell, the README quotes its NGL recipe - CE verdict."""
    with open(README) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('- **When it pays off**'))
    bullet = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith('  '):
            break
        bullet.append(line)
    assert len(bullet) <= 8, f"the README's 'when it pays off' is {len(bullet)} lines (8 at most)"
    text = ' '.join(bullet)
    assert '171 classes' in text and 'docs/study/plateau.json' in text
    for row in plateau_study()['tuned']:
        if row['regime'].startswith('171-') and row['variant'] == 'ngl':
            assert format_difference(row['vs_ce']) in text, \
                f"the README does not state the 171-class verdict of {row['regime']}"
