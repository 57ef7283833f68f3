"""Small synthetic datasets in the exact on-disk layouts of VOC 2012 and COCO-Stuff164k.

Real data cannot be downloaded here, so tests, the demo and the quickstart
configs use scenes drawn by this module: a textured background of one class
with several shapes of other classes on it. Every class has its own look (a
colour and a stripe pattern), so a short training run learns it and beats
chance by far. The files are written the way the real datasets ship them, and
for COCO-Stuff the train-id labels follow mmseg's own converter's id table.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

VOC_CLASSES = 21
COCO_STUFF_CLASSES = 171
IGNORE = 255


def _class_looks(num_classes, seed=12345):
    """Per class: an RGB colour and a stripe (period, angle, amplitude)."""
    rng = np.random.RandomState(seed)
    # Spread colours over the cube: a greedy farthest-point sample.
    pool = rng.randint(0, 256, size=(4000, 3)).astype(np.float64)
    colours = [pool[0]]
    dist = np.linalg.norm(pool - pool[0], axis=1)
    for _ in range(num_classes - 1):
        colours.append(pool[int(dist.argmax())])
        dist = np.minimum(dist, np.linalg.norm(pool - colours[-1], axis=1))
    periods = rng.choice([4.0, 6.0, 9.0, 14.0], size=num_classes)
    angles = rng.uniform(0, np.pi, size=num_classes)
    return np.stack(colours), periods, angles


def long_tail_frequencies(num_classes, exponent=0.5):
    """Zipf frequencies ``1 / rank**exponent``, normalised: a long tail like the
    real datasets' (COCO-Stuff's commonest class is ~100x its rarest in pixels;
    0.5 gives 13x over 171 classes, so a CPU-sized dataset still shows each
    class a few times)."""
    freq = 1.0 / np.arange(1, num_classes + 1) ** exponent
    return freq / freq.sum()


def _pick_classes(rng, candidates, count, freq=None):
    """``count`` distinct classes of ``candidates``, uniformly or by ``freq``."""
    candidates = np.asarray(candidates)
    p = None if freq is None else freq[candidates] / freq[candidates].sum()
    return rng.choice(candidates, size=count, replace=False, p=p)


def _voc_palette():
    """The 256-entry palette of PASCAL VOC's SegmentationClass PNGs."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def _render(label, looks, rng):
    """An RGB image whose pixels of class c show class c's look, plus noise."""
    colours, periods, angles = looks
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), dtype=np.float64)
    for c in np.unique(label):
        mask = label == c
        phase = (xx * np.cos(angles[c]) + yy * np.sin(angles[c])) * 2 * np.pi / periods[c]
        texture = 28.0 * np.sign(np.sin(phase))[..., None]
        img[mask] = (colours[c] + texture)[mask]
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _scene(h, w, background, objects, rng):
    """A label map: ``background`` everywhere, then random ellipses/boxes/polygons."""
    canvas = Image.new('L', (w, h), int(background))
    draw = ImageDraw.Draw(canvas)
    for cls in objects:
        cx, cy = rng.randint(0, w), rng.randint(0, h)
        rx, ry = rng.randint(w // 8, w // 3), rng.randint(h // 8, h // 3)
        kind = rng.randint(3)
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        if kind == 0:
            draw.ellipse(box, fill=int(cls))
        elif kind == 1:
            draw.rectangle(box, fill=int(cls))
        else:
            pts = [(cx + rx * np.cos(t), cy + ry * np.sin(t))
                   for t in np.sort(rng.uniform(0, 2 * np.pi, size=5))]
            draw.polygon(pts, fill=int(cls))
    return np.array(canvas, dtype=np.uint8)


def _voc_borders(label, width=3):
    """VOC marks object outlines 255 ("void"): pixels where the class changes nearby."""
    img = Image.fromarray(label)
    grown = np.array(img.filter(ImageFilter.MaxFilter(width)))
    shrunk = np.array(img.filter(ImageFilter.MinFilter(width)))
    out = label.copy()
    out[grown != shrunk] = IGNORE
    return out


NOISE_KINDS = {
    'uniform': 'an object is given another class, drawn uniformly',
    'confusion': 'an object is given the class that looks most like its own (nearest colour)',
    'boundary': "an object's outline is moved by 2-4 pixels, outwards or inwards",
    'unlabelled-ignore': 'an object is left unlabelled: its pixels are 255 (ignored)',
    'unlabelled-background': "an object is left unlabelled: its pixels get the scene's "
                             'background class',
}


class LabelNoise:
    """Corrupts training label maps the way annotators do, object by object.

    An object is the visible region of one class other than the scene's
    background (the scenes never repeat a class). Each object is hit
    independently with probability ``rate``; ``kind`` (a key of
    ``NOISE_KINDS``) says what happens to it. The random stream is its own
    (``seed``), so a noisy dataset has exactly the images, clean labels and
    validation set of the noise-free one with the same seed: only training
    labels differ. ``counts`` tallies what was done, for the manifest.
    """

    def __init__(self, kind, rate, seed, classes, looks):
        if kind not in NOISE_KINDS:
            raise ValueError(f'unknown label-noise kind {kind!r}: use one of '
                             f'{sorted(NOISE_KINDS)}')
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or \
                not 0.0 <= rate <= 1.0:
            raise ValueError(f'label-noise rate must be a fraction in [0, 1], got {rate!r}')
        self.kind, self.rate, self.seed = kind, float(rate), seed
        self.rng = np.random.RandomState([seed, 7919])  # apart from the scenes' stream
        self.classes = np.asarray(classes)
        colours = looks[0][self.classes]
        dist = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
        np.fill_diagonal(dist, np.inf)
        self.lookalike = dict(zip(self.classes.tolist(),
                                  self.classes[dist.argmin(axis=1)].tolist()))
        self.counts = dict(objects=0, hit=0, labelled_pixels=0, changed_pixels=0)

    def __call__(self, label, background):
        """A noisy copy of ``label`` (uint8 class map; ``background``: its scene's
        background class)."""
        out = label.copy()
        for cls in np.unique(label):
            if cls == background or cls == IGNORE:
                continue
            self.counts['objects'] += 1
            if self.rng.uniform() >= self.rate:
                continue
            self.counts['hit'] += 1
            mask = label == cls
            if self.kind == 'uniform':
                others = self.classes[self.classes != cls]
                out[mask] = self.rng.choice(others)
            elif self.kind == 'confusion':
                out[mask] = self.lookalike[int(cls)]
            elif self.kind == 'unlabelled-ignore':
                out[mask] = IGNORE
            elif self.kind == 'unlabelled-background':
                out[mask] = background
            else:  # boundary: grow (over whatever is next to it) or shrink (to background)
                size = 2 * self.rng.randint(2, 5) + 1
                img = Image.fromarray(mask.astype(np.uint8) * 255)
                if self.rng.uniform() < 0.5:
                    out[np.array(img.filter(ImageFilter.MaxFilter(size))) > 0] = cls
                else:
                    shrunk = np.array(img.filter(ImageFilter.MinFilter(size))) > 0
                    out[mask & ~shrunk] = background
        valid = label != IGNORE
        self.counts['labelled_pixels'] += int(valid.sum())
        self.counts['changed_pixels'] += int((out != label)[valid].sum())
        return out

    def manifest(self):
        c = self.counts
        return dict(kind=self.kind, rate=self.rate, seed=self.seed, description=NOISE_KINDS[
            self.kind], objects=c['objects'], objects_hit=c['hit'],
            object_rate=c['hit'] / max(c['objects'], 1),
            pixel_rate=c['changed_pixels'] / max(c['labelled_pixels'], 1))


def _label_noise(noise_kind, noise_rate, seed, classes, looks):
    """A LabelNoise, or None without noise (rate 0 or no kind)."""
    if not noise_rate:
        return None
    if noise_kind is None:
        raise ValueError('a label-noise rate needs a noise kind: one of '
                         f'{sorted(NOISE_KINDS)}')
    return LabelNoise(noise_kind, noise_rate, seed, classes, looks)


def make_voc(out_dir, num_train=40, num_val=20, num_aug=0, size=(96, 128), seed=0,
             long_tail=False, overwrite=False, noise_kind=None, noise_rate=0.0, num_test=0):
    """Write ``out_dir/VOCdevkit/VOC2012`` as mmseg's VOC12 (aug) configs read it.

    - ``JPEGImages/<id>.jpg``;
    - ``SegmentationClass/<id>.png``: palette PNGs, 255 on object borders;
    - ``SegmentationClassAug/<id>.png``: grayscale PNGs without borders, as
      mmseg's voc_aug converter writes them (for the train and aug ids);
    - ``ImageSets/Segmentation/{train,val,aug}.txt``: aug lists the train
      ids plus ``num_aug`` extra ones, never a val id;
    - with ``num_test`` > 0, ``ImageSets/Segmentation/test.txt``: a second
      held-out split (the *report* split of a tuned study: ``val`` selects the
      learning rate, ``test`` scores it), drawn like ``val`` (clean labels,
      every class cycled) after every other scene, so the other splits are
      those of a dataset without it.

    Every one of the 20 object classes occurs (uniformly, or with
    ``long_tail`` with Zipf frequencies); validation cycles through all 21.
    A target that already holds files is refused unless ``overwrite``, and
    even then only files this function wrote before are replaced. With
    ``noise_rate`` > 0, the training labels (train and aug ids, both folders)
    carry label noise of ``noise_kind`` (see ``LabelNoise``); images and
    validation are those of the clean dataset with the same seed.

    Returns:
        str: The data root, ``out_dir/VOCdevkit/VOC2012``.
    """
    _check_counts(num_train=num_train, num_val=num_val, num_aug=num_aug, num_test=num_test)
    noise = _label_noise(noise_kind, noise_rate, seed, np.arange(1, VOC_CLASSES),
                         _class_looks(VOC_CLASSES))
    root = osp.join(out_dir, 'VOCdevkit', 'VOC2012')
    guard = _WriteGuard(root, overwrite)
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    rng = np.random.RandomState(seed)
    freq = long_tail_frequencies(VOC_CLASSES) if long_tail else None
    looks = _class_looks(VOC_CLASSES)
    palette = _voc_palette().flatten().tolist()
    h, w = size
    ids = {'train': [], 'val': [], 'aug_only': [], 'test': []}
    counts = (('train', num_train), ('val', num_val), ('aug_only', num_aug), ('test', num_test))
    index = 0
    for split, count in counts:
        for _ in range(count):
            name = f'2007_{index:06d}'
            index += 1
            objects = _pick_classes(rng, np.arange(1, VOC_CLASSES), rng.randint(2, 5), freq)
            # Held-out scenes cycle through every class, so each one is scored.
            held_out = split in ('val', 'test')
            if held_out:
                objects[0] = 1 + (len(ids[split]) % (VOC_CLASSES - 1))
            label = _scene(h, w, 0, objects, rng)
            Image.fromarray(_render(label, looks, rng)).save(
                guard.path('JPEGImages', name + '.jpg'), quality=95)
            if noise is not None and not held_out:
                label = noise(label, background=0)
            seg = Image.fromarray(_voc_borders(label), mode='P')
            seg.putpalette(palette)
            seg.save(guard.path('SegmentationClass', name + '.png'))
            if not held_out:
                Image.fromarray(label, mode='L').save(
                    guard.path('SegmentationClassAug', name + '.png'))
            ids[split].append(name)
    for split, names in (('train', ids['train']), ('val', ids['val']),
                         ('aug', ids['train'] + ids['aug_only'])) + (
                             (('test', ids['test']), ) if num_test else ()):
        with open(guard.path('ImageSets', 'Segmentation', split + '.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
    guard.save(label_noise=noise.manifest() if noise else None)
    return root


def _check_counts(**counts):
    for name, value in counts.items():
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f'{name} must be a non-negative integer, got {value!r}')
    if counts.get('num_train', 1) == 0 and counts.get('num_aug', 0) == 0:
        raise ValueError('num_train must be at least 1: a dataset needs training images')
    if counts.get('num_val', 1) == 0:
        raise ValueError('num_val must be at least 1: validation needs images')


MANIFEST = '.ngl_mmseg_synthetic.json'


class _WriteGuard:
    """Refuses to write into a folder that holds data this tool did not write.

    A dataset root that exists and holds files is refused, unless
    ``overwrite``, and then only if every file there is listed in the
    manifest of an earlier synthetic run (so a real dataset is never touched).
    The manifest records every file written.
    """

    def __init__(self, root, overwrite):
        self.root = root
        self.files = set()
        manifest = osp.join(root, MANIFEST)
        existing = [osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
                    for f in fs] if osp.isdir(root) else []
        if not existing:
            return
        if not overwrite:
            raise FileExistsError(
                f'{root} already holds {len(existing)} files; refusing to write a synthetic '
                'dataset over them (use a new folder, or --overwrite to replace an earlier '
                'synthetic dataset written by this tool)')
        owned = set()
        if osp.isfile(manifest):
            with open(manifest) as f:
                owned = set(json.load(f).get('files', []))
        foreign = sorted(set(existing) - owned - {MANIFEST})
        if foreign:
            shown = ', '.join(foreign[:5]) + (' ...' if len(foreign) > 5 else '')
            raise FileExistsError(
                f'{root} holds {len(foreign)} files this tool did not write ({shown}); '
                '--overwrite only replaces an earlier synthetic dataset: use a new folder')
        for rel in owned:  # the old synthetic dataset goes, so no stale ids stay behind
            if osp.isfile(osp.join(root, rel)):
                os.remove(osp.join(root, rel))

    def path(self, *parts):
        rel = osp.join(*parts)
        self.files.add(rel)
        os.makedirs(osp.dirname(osp.join(self.root, rel)), exist_ok=True)
        return osp.join(self.root, rel)

    def save(self, label_noise=None):
        """The manifest: every file written, and the label noise (None: clean)."""
        with open(osp.join(self.root, MANIFEST), 'w') as f:
            json.dump(dict(files=sorted(self.files), label_noise=label_noise), f, indent=1)


def read_manifest(root):
    """The manifest a synthetic dataset's root holds (``files``, ``label_noise``)."""
    with open(osp.join(root, MANIFEST)) as f:
        return json.load(f)


# COCO-Stuff's raw ids run 0-181; these 11 (COCO thing ids never annotated) are
# absent, and the other 171, in increasing order, are the train ids 0-170. This is
# the table of mmseg's tools/dataset_converters/coco_stuff164k.py (``clsID_to_trID``),
# written out here because that script is not an importable module; a test checks
# the two agree.
COCO_STUFF_UNUSED_RAW_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)


def coco_stuff_raw_ids():
    """Raw COCO-Stuff ids (0-181 with gaps) in train-id order."""
    return [raw for raw in range(182) if raw not in COCO_STUFF_UNUSED_RAW_IDS]


def coco_stuff_train_ids(raw):
    """Train-id label map (0-170, 255 ignored) of a raw COCO-Stuff map, as
    mmseg's converter writes ``*_labelTrainIds.png``."""
    lookup = np.full(256, IGNORE, dtype=np.uint8)
    lookup[coco_stuff_raw_ids()] = np.arange(171, dtype=np.uint8)
    return lookup[raw]


def make_coco_stuff(out_dir, num_train=40, num_val=24, num_used_classes=24, size=(96, 128),
                    seed=0, long_tail=False, overwrite=False, noise_kind=None, noise_rate=0.0,
                    num_test=0):
    """Write ``out_dir/coco_stuff164k`` as mmseg's COCO-Stuff164k configs read it.

    Raw annotations (COCO-Stuff ids, 255 unlabeled) are drawn first, then
    converted to ``annotations/{train2017,val2017}/*_labelTrainIds.png`` with
    the id table of mmseg's ``tools/dataset_converters/coco_stuff164k.py``, as
    that script does for the real download. Scenes use ``num_used_classes`` of
    the 171 classes, spread over things and stuff, so a few minutes of CPU training can learn them;
    the model still predicts all 171. ``num_used_classes=171`` with
    ``long_tail`` is the hard case: every class, Zipf frequencies. Validation
    cycles through the classes used, so each is scored. A target that already
    holds files is refused unless ``overwrite``, and even then only files
    this function wrote before are replaced. ``noise_kind``/``noise_rate``:
    label noise in ``train2017`` only, as in ``make_voc``. ``num_test``: a
    second held-out split, ``images/test2017`` and ``annotations/test2017``,
    drawn like ``val2017`` after it (the report split of a tuned study).

    Returns:
        str: The data root, ``out_dir/coco_stuff164k``.
    """
    if not 2 <= num_used_classes <= COCO_STUFF_CLASSES:
        raise ValueError(f'num_used_classes must be in [2, {COCO_STUFF_CLASSES}], '
                         f'got {num_used_classes}')
    _check_counts(num_train=num_train, num_val=num_val, num_test=num_test)
    root = osp.join(out_dir, 'coco_stuff164k')
    guard = _WriteGuard(root, overwrite)
    raw_ids = coco_stuff_raw_ids()
    assert len(raw_ids) == COCO_STUFF_CLASSES, len(raw_ids)
    rng = np.random.RandomState(seed)
    looks = _class_looks(COCO_STUFF_CLASSES)
    used = np.linspace(0, COCO_STUFF_CLASSES - 1, num_used_classes).round().astype(int)
    noise = _label_noise(noise_kind, noise_rate, seed, used, looks)
    # Ranks are shuffled so that frequent classes are spread over things and stuff.
    freq = None
    if long_tail:
        freq = np.zeros(COCO_STUFF_CLASSES)
        freq[rng.permutation(used)] = long_tail_frequencies(len(used))
    h, w = size
    index = 0
    splits = (('train2017', num_train), ('val2017', num_val)) + (
        (('test2017', num_test), ) if num_test else ())
    for split, count in splits:
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for k in range(count):
            name = f'{index:012d}'
            index += 1
            picks = _pick_classes(rng, used, rng.randint(3, 6), freq)
            if split != 'train2017':  # the background cycles through the classes used
                scored = used[k % len(used)]
                if scored in picks[1:]:
                    picks = picks[picks != scored]
                picks[0] = scored
            label = _scene(h, w, picks[0], picks[1:], rng)
            Image.fromarray(_render(label, looks, rng)).save(
                guard.path('images', split, name + '.jpg'), quality=95)
            if noise is not None and split == 'train2017':
                label = noise(label, background=picks[0])
            raw = np.asarray(raw_ids + [IGNORE] * (256 - len(raw_ids)), dtype=np.uint8)[label]
            raw[rng.uniform(size=raw.shape) < 0.002] = IGNORE  # COCO-Stuff's "unlabeled"
            Image.fromarray(raw, mode='L').save(guard.path('annotations', split, name + '.png'))
            Image.fromarray(coco_stuff_train_ids(raw), mode='L').save(
                guard.path('annotations', split, name + '_labelTrainIds.png'))
    guard.save(label_noise=noise.manifest() if noise else None)
    return root


def main():
    """``python -m ngl_mmseg.experiments.synthetic`` (``tools/make_synthetic_dataset.py``)."""
    parser = argparse.ArgumentParser(description='Make a synthetic VOC or COCO-Stuff dataset')
    parser.add_argument('dataset', choices=['voc', 'coco-stuff'])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, help='default: 20 (voc), 24 (coco-stuff), '
                        '171 (coco-stuff --all-classes): every class used appears in validation')
    parser.add_argument('--num-test', type=int, default=0,
                        help='a second held-out split with clean labels (test.txt for voc, '
                        'test2017 for coco-stuff): the report split of a tuned study, whose '
                        'learning rates are chosen on val; default 0 (none)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--all-classes', action='store_true',
                        help='every class occurs, long-tailed (Zipf) frequencies')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a synthetic dataset this tool wrote in OUT_DIR before')
    parser.add_argument('--label-noise', type=float, default=0.0, metavar='F',
                        help='corrupt the training labels of a fraction F of the objects '
                             '(validation stays clean); default 0')
    parser.add_argument('--noise-kind', choices=sorted(NOISE_KINDS),
                        help='what the noise does to an object: ' + '; '.join(
                            f'{k}: {v}' for k, v in NOISE_KINDS.items()))
    args = parser.parse_args()
    if args.label_noise and not args.noise_kind:
        parser.error('--label-noise needs --noise-kind')
    if args.noise_kind and not args.label_noise:
        parser.error('--noise-kind needs --label-noise F with F > 0')
    kwargs = dict(num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                  long_tail=args.all_classes,
                  overwrite=args.overwrite, noise_kind=args.noise_kind,
                  noise_rate=args.label_noise)
    if args.dataset == 'voc':
        if args.num_val is not None:
            kwargs['num_val'] = args.num_val
        make = make_voc
    else:
        make = make_coco_stuff
        if args.all_classes:
            kwargs['num_used_classes'] = COCO_STUFF_CLASSES
        kwargs['num_val'] = (args.num_val if args.num_val is not None else
                             kwargs.get('num_used_classes', 24))
    try:
        root = make(args.out_dir, **kwargs)
    except (FileExistsError, ValueError) as exc:
        sys.exit(f'make_synthetic_dataset: error: {exc}')
    print(f'{args.dataset}: synthetic dataset written to {root}')
    noise = read_manifest(root)['label_noise']
    if noise:
        print(f"label noise ({noise['kind']}, rate {noise['rate']:g}, seed {noise['seed']}): "
              f"{noise['objects_hit']} of {noise['objects']} training objects "
              f"({100 * noise['object_rate']:.1f}%), {100 * noise['pixel_rate']:.1f}% of "
              'the labelled training pixels changed; validation is clean')


if __name__ == '__main__':
    main()
