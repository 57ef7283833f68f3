"""Label noise in the synthetic datasets: measured on the written files against
the clean dataset of the same seed (images and validation byte-identical)."""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

from ngl_lab.synthetic import NOISE_KINDS, make_coco_stuff, make_voc

SMALL = dict(num_train=70, num_val=6, size=(48, 64), seed=3)
RATE = 0.4


@pytest.fixture(scope='module')
def clean_voc(tmp_path_factory):
    return make_voc(str(tmp_path_factory.mktemp('clean')), **SMALL)


def ids(root, split):
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        return f.read().split()


def label(root, folder, name):
    return np.array(Image.open(osp.join(root, folder, name + '.png')))


def objects(clean):
    """The objects of a clean map: the region of each class but the background (0)."""
    return [(c, clean == c) for c in np.unique(clean) if c not in (0, 255)]


def files(root, sub):
    return sorted(os.listdir(osp.join(root, sub)))


def check_only_training_labels_differ(clean, noisy):
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        assert files(clean, sub) == files(noisy, sub)
    _, mismatch, errors = filecmp.cmpfiles(osp.join(clean, 'JPEGImages'),
                                           osp.join(noisy, 'JPEGImages'),
                                           files(clean, 'JPEGImages'), shallow=False)
    assert not mismatch and not errors  # the images show the truth
    val = [n + '.png' for n in ids(clean, 'val')]
    _, mismatch, errors = filecmp.cmpfiles(osp.join(clean, 'SegmentationClass'),
                                           osp.join(noisy, 'SegmentationClass'), val,
                                           shallow=False)
    assert not mismatch and not errors  # validation untouched


def binomial_ok(hits, total, rate):
    return abs(hits / total - rate) <= 3.5 * np.sqrt(rate * (1 - rate) / total)


@pytest.mark.parametrize('kind', ['uniform', 'confusion', 'unlabelled-ignore',
                                  'unlabelled-background'])
def test_whole_object_noise_hits_the_rate_and_only_training_labels(tmp_path, clean_voc, kind):
    noisy = make_voc(str(tmp_path), noise_kind=kind, noise_rate=RATE, **SMALL)
    check_only_training_labels_differ(clean_voc, noisy)
    total = hits = 0
    given = {}
    for name in ids(clean_voc, 'train'):
        clean, bad = (label(r, 'SegmentationClassAug', name) for r in (clean_voc, noisy))
        # Train ids' SegmentationClass is the noisy map with VOC's 255 borders.
        with_borders = label(noisy, 'SegmentationClass', name)
        assert ((with_borders == bad) | (with_borders == 255)).all()
        untouched = np.ones_like(clean, dtype=bool)
        for cls, mask in objects(clean):
            total += 1
            values = np.unique(bad[mask])
            assert len(values) == 1, 'an object is relabelled whole or not at all'
            untouched &= ~mask
            if values[0] == cls:
                continue
            hits += 1
            new = int(values[0])
            if kind == 'uniform' or kind == 'confusion':
                assert 1 <= new < 21
                given.setdefault(int(cls), set()).add(new)
            elif kind == 'unlabelled-ignore':
                assert new == 255
            else:
                assert new == 0
        assert (bad[untouched] == clean[untouched]).all()  # the background is not noise
    assert total > 100 and binomial_ok(hits, total, RATE), (hits, total)
    if kind == 'confusion':  # always the same look-alike for a class
        assert all(len(v) == 1 for v in given.values())
    elif kind == 'uniform':  # any other class
        assert any(len(v) > 1 for v in given.values())
    manifest = json.load(open(osp.join(noisy, '.ngl_mmseg_synthetic.json')))['label_noise']
    assert (manifest['kind'], manifest['rate'], manifest['seed']) == (kind, RATE, SMALL['seed'])
    assert (manifest['objects_hit'], manifest['objects']) == (hits, total)


def test_boundary_noise_moves_outlines_by_a_few_pixels(tmp_path, clean_voc):
    noisy = make_voc(str(tmp_path), noise_kind='boundary', noise_rate=RATE, **SMALL)
    check_only_training_labels_differ(clean_voc, noisy)
    total = moved = 0
    for name in ids(clean_voc, 'train'):
        clean, bad = (label(r, 'SegmentationClassAug', name) for r in (clean_voc, noisy))
        changed = bad != clean
        # Every changed pixel lies within 4 pixels of an outline of the clean map.
        near = np.zeros_like(changed)
        edge = np.zeros_like(changed)
        edge[:-1] |= clean[:-1] != clean[1:]
        edge[1:] |= clean[:-1] != clean[1:]
        edge[:, :-1] |= clean[:, :-1] != clean[:, 1:]
        edge[:, 1:] |= clean[:, :-1] != clean[:, 1:]
        ys, xs = np.nonzero(edge)
        for y, x in zip(ys, xs):
            near[max(0, y - 4):y + 5, max(0, x - 4):x + 5] = True
        assert not (changed & ~near).any()
        for cls, mask in objects(clean):
            total += 1
            grown = (bad == cls) & ~mask
            shrunk = mask & (bad != cls)
            moved += bool(grown.any() or shrunk.any())
    # Other objects' moves can touch an object too: at least the rate, not far above.
    assert total > 100 and RATE - 0.15 <= moved / total <= RATE + 0.25, (moved, total)


def test_noise_is_reproducible_and_recorded(tmp_path):
    a = make_voc(str(tmp_path / 'a'), noise_kind='uniform', noise_rate=0.2, **SMALL)
    b = make_voc(str(tmp_path / 'b'), noise_kind='uniform', noise_rate=0.2, **SMALL)
    names = files(a, 'SegmentationClassAug')
    _, mismatch, errors = filecmp.cmpfiles(osp.join(a, 'SegmentationClassAug'),
                                           osp.join(b, 'SegmentationClassAug'), names,
                                           shallow=False)
    assert not mismatch and not errors
    clean = make_voc(str(tmp_path / 'c'), **SMALL)
    assert json.load(open(osp.join(clean, '.ngl_mmseg_synthetic.json')))['label_noise'] is None


def test_coco_stuff_noise_in_train2017_only(tmp_path):
    kw = dict(num_train=20, num_val=6, size=(48, 64), seed=1)
    clean = make_coco_stuff(str(tmp_path / 'clean'), **kw)
    noisy = make_coco_stuff(str(tmp_path / 'noisy'), noise_kind='unlabelled-ignore',
                            noise_rate=0.5, **kw)
    for sub in ('images/train2017', 'images/val2017', 'annotations/val2017'):
        names = files(clean, sub)
        _, mismatch, errors = filecmp.cmpfiles(osp.join(clean, sub), osp.join(noisy, sub),
                                               names, shallow=False)
        assert not mismatch and not errors, sub
    ann = osp.join('annotations', 'train2017')
    ignored = [
        (np.array(Image.open(osp.join(noisy, ann, n))) == 255).mean() -
        (np.array(Image.open(osp.join(clean, ann, n))) == 255).mean()
        for n in files(clean, ann) if n.endswith('_labelTrainIds.png')]
    assert np.mean(ignored) > 0.05  # whole objects became 255, raw and train ids alike


@pytest.mark.parametrize('kwargs, message', [
    (dict(noise_kind='gaussian', noise_rate=0.2), 'unknown label-noise kind'),
    (dict(noise_kind='uniform', noise_rate=1.5), 'fraction in'),
    (dict(noise_kind='uniform', noise_rate='0.2'), 'fraction in'),
    (dict(noise_rate=0.2), 'needs a noise kind'),
])
def test_bad_noise_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_voc(str(tmp_path), num_train=2, num_val=2, **kwargs)
    assert not any(tmp_path.rglob('*.png'))


@pytest.mark.slow
def test_tool_writes_noise_and_reports_the_measured_rate(tmp_path):
    tool = [sys.executable, osp.join(REPO, 'tools', 'make_synthetic_dataset.py'), 'voc',
            str(tmp_path / 'v'), '--num-train', '12', '--num-val', '2', '--label-noise', '0.5',
            '--noise-kind', 'unlabelled-background']
    out = subprocess.run(tool, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'label noise (unlabelled-background, rate 0.5, seed 0)' in out.stdout
    assert 'validation is clean' in out.stdout
    bad = subprocess.run(tool[:-4] + ['--label-noise', '0.3'], capture_output=True, text=True)
    assert bad.returncode == 2 and '--label-noise needs --noise-kind' in bad.stderr
    assert set(NOISE_KINDS) == {'uniform', 'confusion', 'boundary', 'unlabelled-ignore',
                                'unlabelled-background'}
