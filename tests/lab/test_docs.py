"""The README and docs/ point at things that exist: links, repository paths,
presets and make targets (a renamed file or preset must take its docs along); the
figures they derive from the code are the code's, and the figures they quote from a
study name the docs/study/*.json file they come from and are in it."""
import glob
import json
import math
import os.path as osp
import re
import subprocess

import pytest
from docs_checks import DIFFERENCE
from helpers import REPO

from ngl_lab.presets import LOSS_PRESETS

# Hand-written pages; docs/study/*.md and the saved reports are tool output.
PAGES = ['README.md'] + sorted(p for p in glob.glob(osp.join(REPO, 'docs', '*.md'))
                               if not osp.basename(p).endswith('_report.md'))
TOP = ('ngl_mmseg/', 'lab/', 'configs/', 'tools/', 'tests/', 'docs/', 'requirements/', '.ci/')


def page_ids():
    return [osp.relpath(p, REPO) if osp.isabs(p) else p for p in PAGES]


def read(page):
    with open(osp.join(REPO, page)) as f:
        return f.read()


def tracked_names():
    out = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True)
    files = out.stdout.split() if out.returncode == 0 else [
        osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, '**', '*'), recursive=True)]
    return {osp.basename(f) for f in files}


@pytest.mark.parametrize('page', page_ids())
def test_relative_links_exist(page):
    text = read(page)
    base = osp.dirname(osp.join(REPO, page))
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+://', target) or target.startswith('#'):
            continue
        path = target.split('#')[0]
        assert osp.exists(osp.normpath(osp.join(base, path))), f'{page}: broken link {target}'


@pytest.mark.parametrize('page', page_ids())
def test_code_quoted_repository_paths_exist(page):
    names = tracked_names()
    for quoted in re.findall(r'`([^`\s]+)`', read(page)):
        path = quoted.rstrip('.,:;')
        if any(c in path for c in '<>*{}$=[]()|') or '::' in path:
            continue  # placeholders, globs, scoped names, expressions
        if path.startswith(TOP):
            assert osp.exists(osp.join(REPO, path)), f'{page}: `{quoted}` does not exist'
        elif re.fullmatch(r'[\w.+-]+_ngl(-plain)?_[\w.+-]+\.py', path):
            assert path in names, f'{page}: config `{quoted}` does not exist'


def preset_mentions(text):
    """Variants named on --losses/--variants lines, and backquoted preset-like words."""
    found = set()
    for line in text.splitlines():
        match = re.search(r'--(?:losses|variants)\s+(.*)', line)
        if match:
            for token in match.group(1).split():
                if '=' in token:  # NAME=<dict>: a custom variant
                    continue
                token = token.strip('"\'`),.;:')
                if not re.fullmatch(r'[a-z][a-z0-9+-]*', token):
                    break  # the end of the list: an option, a backquote, prose
                found.add(token)
    found |= set(re.findall(r'`((?:ce|ngl)(?:[-+][a-z0-9+-]+)?)`', text))
    return {name for name in found  # console scripts are not presets
            if not name.startswith(('ngl-mmseg', 'ngl-lab'))}


@pytest.mark.parametrize('page', page_ids())
def test_named_presets_exist(page):
    unknown = sorted(preset_mentions(read(page)) - set(LOSS_PRESETS))
    assert not unknown, f'{page} names presets that do not exist: {unknown}'


# The pages that name `make` targets (each checked to name one at least); the others name none.
MAKE_PAGES = ['README.md', 'docs/architecture.md', 'docs/demo.md', 'docs/install.md',
              'docs/testing.md', 'docs/tools.md', 'docs/training.md', 'docs/when-to-use-ngl.md']
MAKE_TARGET = re.compile(r'`make ([\w-]+)')


def makefile_targets():
    with open(osp.join(REPO, 'Makefile')) as f:
        return set(re.findall(r'^([\w.-]+):', f.read(), flags=re.M))


def check_make_targets(page, text, targets):
    """Every ``make`` target ``text`` (of ``page``) names is one of ``targets``, and it
    names one at least (a page that names none guards nothing)."""
    named = MAKE_TARGET.findall(text)
    assert named, f'{page} names no `make` target: drop it from MAKE_PAGES'
    for target in named:
        assert target in targets, f'{page}: `make {target}` is not a Makefile target'


@pytest.mark.parametrize('page', MAKE_PAGES)
def test_named_make_targets_exist(page):
    check_make_targets(page, read(page), makefile_targets())


def test_every_page_naming_a_make_target_is_checked():
    naming = [page for page in page_ids() if MAKE_TARGET.search(read(page))]
    assert sorted(naming) == sorted(MAKE_PAGES), 'MAKE_PAGES lists the pages naming a target'


def test_the_checks_catch_what_they_look_for():
    assert preset_mentions('--losses ce ngl-warmup "x={}"') == {'ce', 'ngl-warmup'}
    assert preset_mentions('`--losses ce ngl-plain`), 5 min') == {'ce', 'ngl-plain'}
    assert preset_mentions('`ngl-lab-compare`, `ngl-mmseg-train`, `ngl-bias`') == {'ngl-bias'}
    assert 'ngl-warmup' not in LOSS_PRESETS
    assert 'README.md' in page_ids() and 'docs/training.md' in page_ids()
    targets = {'demo', 'test'}
    check_make_targets('a page', 'run `make test`, then `make demo`', targets)
    with pytest.raises(AssertionError, match='is not a Makefile target'):
        check_make_targets('a page', 'run `make tests`', targets)
    with pytest.raises(AssertionError, match='names no `make` target'):
        check_make_targets('a page', 'run make test (no backquotes)', targets)


def test_readme_is_short():
    assert len(read('README.md').splitlines()) <= 180


# --- figures the docs derive from the code: computed here, compared with the text -------------

def flat(page):
    """The page on one line (prose wraps anywhere)."""
    return ' '.join(read(page).split())


def agrees(printed, value):
    """``printed`` is ``value`` to the precision it is printed with ("46" and "45.8" for 45.84;
    "2630" for 2628.4: trailing zeros of an integer are not significant)."""
    if '.' in printed:
        tolerance = 0.5 * 10 ** -len(printed.split('.')[1])
    else:
        tolerance = 0.5 * 10 ** (len(printed) - len(printed.rstrip('0')))
    return abs(value - float(printed)) <= tolerance + 1e-12


# "46x at 21 classes, 2675x at 171", "0.067 at 21 classes and 0.010 at 171"
NUMBER = r'(\d[\d.]*\d|\d)'
AT_CLASSES = re.compile(fr'{NUMBER}x? at (\d+)(?: classes)?(?:,| and) {NUMBER}x? at (\d+)')


def figure_at(context, num_classes):
    """What the code gives for a figure quoted per class count, told by the words before it."""
    from ngl_mmseg.losses import recipe
    if 'bias' in context:
        return 'the default target bias', recipe.default_target_bias(num_classes)
    if 'moves by' in context:
        at_chance, minimum = recipe.ngl_reference_values(num_classes)
        return 'NGL from chance to its minimum', at_chance - minimum
    if 'ce_matched_weight' in context or 'C^2' in context:
        return 'the CE-matched weight', recipe.ce_matched_weight(num_classes)
    raise AssertionError(f'a figure per class count the test cannot tell: ...{context}; say '
                         'which code gives it in figure_at()')


def test_figures_per_class_count_are_the_codes():
    checked = set()
    for page in page_ids():
        text = flat(page)
        for match in AT_CLASSES.finditer(text):
            context = text[max(0, match.start() - 150):match.start()]
            for printed, num_classes in (match.group(1, 2), match.group(3, 4)):
                what, value = figure_at(context, int(num_classes))
                assert agrees(printed, value), (
                    f'{page}: {what} at {num_classes} classes is {value:.4g}, the page says '
                    f'{printed}: ...{text[match.start() - 80:match.end()]}')
                checked.add(what)
    assert checked >= {'the CE-matched weight', 'the default target bias'}, checked


def test_ce_matched_weight_limit_and_reference_values_are_the_codes():
    from ngl_mmseg.losses.recipe import ngl_reference_values
    from ngl_mmseg.ops.formula import ALPHA
    for page in page_ids():
        text = flat(page)
        # "(its limit for many classes is `C^2 / e^a`, 40 and 2630)"
        for match in re.finditer(r'`C\^2 ?/ ?e\^a`,? (\d+) and (\d+)', text):
            for printed, c in zip(match.groups(), (21, 171)):
                assert agrees(printed, c ** 2 / math.exp(ALPHA)), (page, match.group(0))
        # "0.067 at 21 classes and 0.010 at 171 (10.043 -> 9.976, 10.520 -> 10.510)"
        for match in re.finditer(r'at (\d+) classes and [\d.]+ at (\d+) \(([\d.]+) -> ([\d.]+), '
                                 r'([\d.]+) -> ([\d.]+)\)', text):
            for c, pair in zip(match.group(1, 2), (match.group(3, 4), match.group(5, 6))):
                for printed, value in zip(pair, ngl_reference_values(int(c))):
                    assert agrees(printed, value), (page, c, printed, value)


def polynomial_errors():
    """The largest error of the polynomial f and f' on [0, 1] at the paper's alpha:
    ``{('f', 'absolute'): ..., ('f', 'relative'): ..., ("f'", ...): ...}``."""
    import numpy as np

    from ngl_mmseg.ops.formula import ALPHA, ngl_term_derivatives_np, ngl_terms_np
    from ngl_mmseg.ops.poly import ngl_coefficients
    f, df = ngl_coefficients(ALPHA)
    p = np.linspace(0, 1, 200001)
    errors = {}
    for name, coefficients, exact in (('f', f, ngl_terms_np(p)[0]),
                                      ("f'", df, ngl_term_derivatives_np(p)[0])):
        error = np.abs(np.polyval(coefficients, p) - exact)
        errors[name, 'absolute'] = float(error.max())
        errors[name, 'relative'] = float((error / np.abs(exact)).max())
    return errors


# "degree-11 polynomials of `p` on [0, 1] (largest error < 2e-10 for f and < 5e-9 for f', ...)":
# each bound from "error" to the end of its clause, for f, for f' or (unnamed) for both.
POLY_BOUND = re.compile(r"(<|~|below|under|at most|within)\s*~?(\d(?:\.\d+)?e-\d+)"
                        r"(?:\s+(?:for|of|in)\s+(f'|f)(?![\w(]))?")


def test_polynomial_degree_and_error_in_the_docs_are_the_codes():
    from ngl_mmseg.ops.poly import DEGREE
    errors = polynomial_errors()
    claims = 0
    for page in page_ids():
        text = flat(page)
        for degree in re.findall(r'degree-(\d+) polynomial', text):
            assert int(degree) == DEGREE, f'{page}: degree-{degree}, the code fits {DEGREE}'
        for error in re.finditer(r'\berror\b', text):
            if 'polynomial' not in text[max(0, error.start() - 300):error.start()]:
                continue
            clause = re.split(r'[,;)]|\. ', text[error.start():error.start() + 200])[0]
            before = text[max(0, error.start() - 20):error.start()]
            kind = 'relative' if 'relative' in before else 'absolute'
            for relation, printed, name in POLY_BOUND.findall(clause):
                actual = max(errors[n, kind] for n in ([name] if name else ['f', "f'"]))
                bound = float(printed)
                which = name or "f and f'"
                where = f'{page}: "...{clause}": the {kind} error of {which} is'
                if relation == '~':
                    assert actual / 10 <= bound <= actual * 10, f'{where} {actual:.2g}'
                else:
                    assert actual <= bound <= actual * 100, f'{where} {actual:.2g}'
                claims += 1
    assert claims, "no page states the polynomials' error any more: drop this test or fix it"


# --- numbered claims about a study name the JSON file they come from -----------------------

# The README quotes only paired differences (recomputed by test_docs_tuned).
STUDY_PAGES = ['docs/training.md', 'docs/when-to-use-ngl.md']
# A figure with one decimal (mIoU, a spread, a gap in points); not a version, a factor (46.2x), a
# percentage or a figure with more decimals.
STUDY_NUMBER = re.compile(r'(?<![\w.^/])(\d{1,3}\.\d)(?![\w%]|\.\d)')
STUDY_CITED = re.compile(r'study/([\w-]+)\.(?:json|md)')
# Figures that are not a study's results (a license, a statistic, a learning rate).
NOT_STUDY = [r'License \d\.\d', r'\(F = [\d., ]+\)', r'(?:SGD|lr) 0\.\d+']


def blocks(text):
    """``(section, block)`` for each paragraph, list item and table outside code."""
    section, found, current, fence = 0, [], [], False
    for line in text.splitlines() + ['']:
        if line.startswith('```'):
            fence = not fence
            continue
        if fence or (line.startswith('    ') and not current):
            continue  # code
        starts_item = re.match(r'\s*(- |\d+\. )', line)
        if not line.strip() or line.startswith('#') or starts_item:
            if current:
                found.append((section, '\n'.join(current)))
            current = [line] if starts_item else []
            section += line.startswith('#')
        else:
            current.append(line)
    return found


def study_values(name, steps=()):
    """The figures a page may quote from ``docs/study/<name>.json``: each row's mean, spread,
    per-seed finals, peak and final training-set mIoU, the gaps between the means of rows that
    share a regime and an optimizer, and the curves' points at ``steps`` (iterations the page
    names beside the figure)."""
    import itertools
    path = osp.join(REPO, 'docs', 'study', f'{name}.json')
    assert osp.isfile(path), f'docs/study/{name}.json does not exist'
    with open(path) as f:
        study = json.load(f)
    values, means = set(), {}
    for row in study['rows']:
        values |= {row['mean'], row['std'], row.get('peak', row['mean']), *row['final_miou'],
                   *row.get('train_mean_curve', [])[-1:]}
        means.setdefault((row.get('regime', ''), row['optimizer']), []).append(row['mean'])
        for curve in (row['mean_curve'], row.get('train_mean_curve') or []):
            values |= {v for step, v in zip(row['steps'], curve) if step in steps}
    for row in study.get('tuned', []):  # a tuned study: the report split's figures too
        values |= {row['mean'], row['peak_mean'], row['selection_mean'], row['lr'],
                   row['mean'] - row['half_width'], row['mean'] + row['half_width'],
                   *row['report_final'].values(), *row['report_peak'].values(),
                   *row['search_mean'].values()}
        values |= {v for v in (row.get('quarter_mean'),) if v is not None}
        if row.get('doubled'):  # the plateau check: the means it compared and its move
            check = row['doubled']
            values |= {check['base_mean'], check['mean'], abs(check['delta'])}
            if 'peak_delta' in check:  # and the same at the validation peak
                values |= {check['peak_base_mean'], check['peak_mean'], abs(check['peak_delta'])}
    for run in study['runs']:  # every split's curve, at the iterations the block names
        values |= {v for step, v in run['curve'] + (run.get('train_curve') or []) +
                   (run.get('report_curve') or []) if step in steps}
    for group in means.values():
        values |= {abs(a - b) for a, b in itertools.combinations(group, 2)}
    return values


def study_claims(page, number=STUDY_NUMBER, text=None):
    """``(block, cited studies, figures)`` for each block of ``page`` (or of ``text``)
    quoting figures (``number``): a block cites the studies it names
    (``docs/study/<name>.json``, or a link to its ``.md``) or, naming none, those of the
    nearest block above it in the same section that names one. Paired differences with
    their interval are left to test_docs_tuned (recomputed there)."""
    cited_above = {}
    for section, block in blocks(read(page) if text is None else text):
        cited = STUDY_CITED.findall(block)
        if cited:
            cited_above[section] = cited
        prose = re.sub(r'`[^`]*`|\]\([^)]*\)', ' ', block)
        for pattern in NOT_STUDY + [DIFFERENCE.pattern]:
            prose = re.sub(pattern, ' ', prose)
        figures = number.findall(prose)
        if figures:
            yield block, cited or cited_above.get(section, []), figures


def check_study_figures(page, number, tolerance, text=None):
    """Every figure ``number`` finds on ``page`` (or in ``text``) is within ``tolerance``
    (its last digit's rounding) of a value of the studies its block cites, and it finds
    one at least (a page where it finds none is guarded by nothing)."""
    claims = list(study_claims(page, number, text))
    assert claims, f'{page}: no study figure ({number.pattern}) found: this check guards nothing'
    for block, cited, figures in claims:
        assert cited, f'{page}: figures {figures} name no docs/study/*.json:\n{block}'
        steps = {int(n) for n in re.findall(r'\b(\d+) iterations', block)}
        values = set().union(*(study_values(name, steps) for name in cited))
        wrong = [x for x in figures
                 if not any(abs(float(x) - v) <= tolerance + 1e-9 for v in values)]
        assert not wrong, f'{page}: {wrong} are not in docs/study/{cited}.json:\n{block}'


@pytest.mark.parametrize('page', STUDY_PAGES)
def test_study_figures_name_the_json_they_come_from(page):
    check_study_figures(page, STUDY_NUMBER, 0.05)


# A figure with two decimals (a mean, a seed's score, an interval's end), on the pages whose
# every such figure is a study's; other pages use two decimals for analysis too.
STUDY_NUMBER_2 = re.compile(r'(?<![\w.^/])(\d{1,3}\.\d\d)(?![\w%]|\.\d)')
TWO_DECIMAL_PAGES = ['docs/when-to-use-ngl.md']


@pytest.mark.parametrize('page', TWO_DECIMAL_PAGES)
def test_two_decimal_study_figures_are_the_jsons_to_the_digit(page):
    check_study_figures(page, STUDY_NUMBER_2, 0.005)


def test_the_readme_quotes_two_decimals_only_in_paired_differences():
    """Those test_docs_tuned recomputes; any other two-decimal study figure there would go
    unchecked (add the README to TWO_DECIMAL_PAGES then)."""
    found = [figures for _, _, figures in study_claims('README.md', STUDY_NUMBER_2)]
    assert not found, f'README.md: two-decimal figures {found}: add it to TWO_DECIMAL_PAGES'


def test_the_study_check_catches_what_it_looks_for():
    claims = list(study_claims('docs/training.md'))
    assert any('30.0' in figures and 'coco-bias' in cited for _, cited, figures in claims)
    assert any(abs(v - 28.86) < 1e-3 for v in study_values('coco-bias'))  # a seed's final mIoU
    assert not STUDY_NUMBER.findall('0.4.0, 46.2x, 0.067, 40%, alpha = 2.4092')
    assert STUDY_NUMBER.findall('30.0 against 34.3 (-4.3)') == ['30.0', '34.3', '4.3']
    assert STUDY_NUMBER_2.findall('46.98, 0.004, 1.6e-2, 12.5%, 3.10x and 29.30.') == \
        ['46.98', '29.30']
    cites = 'In `docs/study/coco-bias.json` '
    check_study_figures('a page', STUDY_NUMBER, 0.05, text=cites + 'NGL reaches 30.0.')
    with pytest.raises(AssertionError, match='are not in docs/study'):
        check_study_figures('a page', STUDY_NUMBER, 0.05, text=cites + 'NGL reaches 99.9.')
    with pytest.raises(AssertionError, match='name no docs/study'):
        check_study_figures('a page', STUDY_NUMBER, 0.05, text='NGL reaches 30.0.')
    with pytest.raises(AssertionError, match='guards nothing'):
        check_study_figures('a page', STUDY_NUMBER, 0.05, text=cites + 'NGL wins.')


def test_tools_page_lists_every_loss_preset():
    from ngl_lab.presets import LOSS_PRESETS
    text = read('docs/tools.md')
    missing = [name for name in LOSS_PRESETS if f'`{name}`' not in text]
    assert not missing, f'docs/tools.md does not list the presets {missing}'


def test_the_plateau_resume_loop_names_every_unpublished_cell_in_the_specs_order():
    """The page's resume loop names studies of the plateau spec, in its order, and every study
    of the `plateau` merge that docs/study/plateau.json does not publish yet (those it does,
    --with-published adds), so the loop leaves none of the published merge's cells out."""
    from ngl_lab.study_publish import published_report
    from ngl_lab.study_spec import load_spec
    from ngl_lab.study_spec_checks import published_study_names
    text = read('docs/when-to-use-ngl.md')
    loop = re.search(r'for cell in ((?:[\w-]+|\s|\\\n)+); do\n\s+make study '
                     r'SPEC=configs/studies/plateau\.json JOBS=\d ONLY=\$cell WITH_PUBLISHED=1',
                     text)
    assert loop, 'the resume loop is not on docs/when-to-use-ngl.md'
    cells = loop.group(1).replace('\\', ' ').split()
    spec = load_spec(osp.join(REPO, 'configs', 'studies', 'plateau.json'))
    studies = list(spec['studies'])
    assert set(cells) <= set(studies) and cells == sorted(cells, key=studies.index)
    published = published_study_names(
        published_report(osp.join(REPO, spec['merges']['plateau']['publish'])))
    missing = [name for name in spec['merges']['plateau']['studies']
               if name not in published and name not in cells]
    assert not missing, f'the loop leaves out {missing}'
