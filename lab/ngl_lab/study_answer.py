"""The short answer of a tuned study: one row per situation (a regime under one
optimizer), the NGL recipe against tuned CE with its verdict, and whether the
situation is at its plateau.

It is built from the tuned rows alone (``study_tables.tuned_rows``, or the same
rows read back from a published study.json), so a page that quotes it can be
checked against the JSON by regenerating it. The verdicts of a cell whose
budget-doubling check failed carry "not at plateau", those of a cell not checked
"plateau not checked"; a cell of the study that has not finished yet is listed as such.
"""
from .stats import format_difference
from .study_tables import NOT_AT_PLATEAU, REFERENCE, cell_at_plateau, verdicts_at_plateau

ANSWERED = 'ngl'  # the variant whose verdict the short answer gives: the recipe
NOT_CHECKED = 'plateau not checked'

# How a regime label reads in a sentence; a label not here reads as itself.
_REGIME_WORDS = {
    'clean': 'clean labels',
    'uniform-40': '40% of objects relabelled to a random class',
    'unlabelled-ignore-40': '40% of objects unlabelled (ignored)',
}
_OPTIMIZER_WORDS = {'adamw': 'AdamW', 'sgd': 'SGD'}


def situation(regime, optimizer):
    """'clean labels, AdamW from scratch (`clean`, adamw)'; a regime named ``171-...``
    (the COCO-Stuff cells) opens with '171 classes'."""
    classes, name = ('171 classes, ', regime[len('171-'):]) if regime.startswith('171-') \
        else ('', regime)
    if name == 'pretrained':  # the pretrained cells train on clean labels
        words, start = 'clean labels', 'from a pretrained backbone'
    else:
        words, start = _REGIME_WORDS.get(name, name or 'every run'), 'from scratch'
    return (f'{classes}{words}, {_OPTIMIZER_WORDS.get(optimizer, optimizer)} {start} '
            f'(`{regime}`, {optimizer})')


def _cells(tuned):
    """The (regime, optimizer) cells of ``tuned`` in their order."""
    seen = []
    for r in tuned:
        cell = (r['regime'], r['optimizer'])
        if cell not in seen:
            seen.append(cell)
    return seen


def plateau_text(tuned, regime, optimizer, answered=ANSWERED, reference=REFERENCE):
    """The cell's budget-doubling check in a few words: yes or no with the largest move
    of a variant's final mean, the same for the peak scores where the study checked
    them, and, where the cell failed, ``answered``'s difference to the reference at
    twice the budget (whether the verdict keeps its sign there)."""
    at = cell_at_plateau(tuned, regime, optimizer)
    if at is None:
        return 'not checked yet'
    rows = [r for r in tuned if (r['regime'], r['optimizer']) == (regime, optimizer)]

    def largest(key):
        variant, delta = max(((r['variant'], r['doubled'][key]) for r in rows),
                             key=lambda c: abs(c[1]))
        return f'{delta:+.2f}, {variant}'

    text = f"{'yes' if at else '**no**'} (largest move {largest('delta')})"
    if all('peak_delta' in r['doubled'] for r in rows):
        peak_at = cell_at_plateau(tuned, regime, optimizer, 'peak')
        text += f"; peak {'yes' if peak_at else '**no**'} ({largest('peak_delta')})"
    row = next((r for r in rows if r['variant'] == answered and r.get('vs_ce_doubled')), None)
    if row is not None and not at:
        text += (f"; {answered} - {reference} at {row['doubled']['iters']}: "
                 f"{format_difference(row['vs_ce_doubled'])}")
    return text


def _difference(row, key, mark=''):
    diff = row.get(key)
    if not diff:
        return '-'
    return format_difference(diff) + (f' ({mark})' if mark else '')


def _budget(tuned, regime, optimizer):
    # one per cell: a merge refuses a row whose runs differ in iterations
    return str(next(r['iters'] for r in tuned if (r['regime'], r['optimizer']) ==
                    (regime, optimizer)))


def _best(tuned, regime, optimizer):
    rows = [r for r in tuned if (r['regime'], r['optimizer']) == (regime, optimizer)]
    best = max(rows, key=lambda r: r['mean'])
    return f"{best['variant']} {best['mean']:.2f}"


def format_short_answer(tuned, pending=(), answered=ANSWERED, reference=REFERENCE):
    """Markdown: one row per cell of ``tuned`` (``answered`` against ``reference``, both
    at their own chosen rate, report split) and one per ``pending`` (regime, optimizer)
    cell that has not finished yet.

    Columns: the situation; its budget (iterations); the final verdict (paired mean
    difference, 95% interval, seeds ahead of n, win/tie/loss) with "not at plateau" where
    the cell's doubling check failed and "plateau not checked" where it did not run; the
    same at the validation peak (early stopping; marked also where the check of the peak
    scores failed); at a quarter of the budget (speed, never the verdict); the doubling
    check; the best variant's mean.
    """
    head = ['situation', 'budget (iterations)',
            f'{answered} vs tuned {reference}, final (report split)',
            'at the validation peak', 'at a quarter of the budget (speed)',
            'at plateau (budget doubled)', 'best variant (final mean)']
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---:|---|---|---|---|---|']
    for regime, optimizer in _cells(tuned):
        row = next((r for r in tuned if (r['regime'], r['optimizer'], r['variant']) ==
                    (regime, optimizer, answered)), None)
        mark, peak_mark = ('' if at else NOT_CHECKED if at is None else NOT_AT_PLATEAU
                           for at in verdicts_at_plateau(tuned, regime, optimizer))
        cells = [situation(regime, optimizer), _budget(tuned, regime, optimizer)]
        if row is None:
            cells += [f'{answered} not in this cell', '-', '-']
        else:
            cells += [_difference(row, 'vs_ce', mark), _difference(row, 'vs_ce_peak', peak_mark),
                      _difference(row, 'vs_ce_quarter')]
        cells += [plateau_text(tuned, regime, optimizer, answered, reference),
                  _best(tuned, regime, optimizer)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    for regime, optimizer in pending:
        lines.append(f'| {situation(regime, optimizer)} | - | not finished yet | - | - | - | - |')
    return '\n'.join(lines)
