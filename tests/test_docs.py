"""The README and docs/ point at things that exist: links, repository paths,
presets and make targets (a renamed file or preset must take its docs along)."""
import glob
import os.path as osp
import re
import subprocess

import pytest

from ngl_mmseg.experiments.presets import LOSS_PRESETS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Hand-written pages; docs/study/*.md and the saved reports are tool output.
PAGES = ['README.md'] + sorted(p for p in glob.glob(osp.join(REPO, 'docs', '*.md'))
                               if not osp.basename(p).endswith('_report.md'))
TOP = ('ngl_mmseg/', 'configs/', 'tools/', 'tests/', 'docs/', 'requirements/', '.ci/')


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
    return {name for name in found if not name.startswith('ngl-mmseg')}  # console scripts


@pytest.mark.parametrize('page', page_ids())
def test_named_presets_exist(page):
    unknown = sorted(preset_mentions(read(page)) - set(LOSS_PRESETS))
    assert not unknown, f'{page} names presets that do not exist: {unknown}'


@pytest.mark.parametrize('page', page_ids())
def test_named_make_targets_exist(page):
    with open(osp.join(REPO, 'Makefile')) as f:
        makefile = f.read()
    targets = set(re.findall(r'^([\w.-]+):', makefile, flags=re.M))
    for target in re.findall(r'`make ([\w-]+)', read(page)):
        assert target in targets, f'{page}: `make {target}` is not a Makefile target'


def test_the_checks_catch_what_they_look_for():
    assert preset_mentions('--losses ce ngl-warmup "x={}"') == {'ce', 'ngl-warmup'}
    assert preset_mentions('`--losses ce ngl-plain`), 5 min') == {'ce', 'ngl-plain'}
    assert 'ngl-warmup' not in LOSS_PRESETS
    assert 'README.md' in page_ids() and 'docs/training.md' in page_ids()


def test_readme_is_short():
    assert len(read('README.md').splitlines()) <= 180
