"""Small synthetic datasets in the exact on-disk layouts of VOC 2012 and COCO-Stuff164k.

Real data cannot be downloaded here, so tests, the demo and the quickstart
configs use scenes drawn by ``synthetic_scenes`` (a textured background of one
class with several shapes of other classes on it; label noise). This module
writes them the way the real datasets ship, and for COCO-Stuff the train-id
labels follow mmseg's own converter's id table. ``WriteGuard`` keeps every
write inside the dataset's folder and never touches files it did not write;
the command line: ``synthetic_cli`` (``tools/make_synthetic_dataset.py``).
"""
import json
import os
import os.path as osp
import shutil
import tempfile

import numpy as np
from PIL import Image

from .synthetic_scenes import (
    COCO_STUFF_CLASSES,
    IGNORE,
    NOISE_KINDS,
    VOC_CLASSES,
    LabelNoise,
    class_looks,
    draw_scene,
    long_tail_frequencies,
    make_label_noise,
    pick_classes,
    render_image,
    voc_borders,
    voc_palette,
)

# The public names, those of the scenes' module included: the tools and tests import them here.
__all__ = ['COCO_STUFF_CLASSES', 'COCO_STUFF_UNUSED_RAW_IDS', 'IDENTITY_ARGUMENTS', 'IGNORE',
           'MANIFEST', 'NOISE_KINDS', 'VOC_CLASSES', 'LabelNoise', 'WriteGuard',
           'coco_stuff_raw_ids', 'coco_stuff_train_ids', 'long_tail_frequencies',
           'make_coco_stuff', 'make_voc', 'manifest_identity', 'read_manifest']

MANIFEST = '.ngl_mmseg_synthetic.json'
MIN_SIZE = 8  # pixels of a side: the shapes are 1/8 to 1/3 of it


# The maker's arguments a manifest records (``arguments``) that its files do not tell, and
# that ``manifest_identity`` names the data by: its seed, long tail, image size and, for
# COCO-Stuff, the classes used (VOC's ``num_aug`` is recorded too, and told by its aug list).
IDENTITY_ARGUMENTS = ('seed', 'long_tail', 'size', 'num_used_classes')


def read_manifest(root):
    """The manifest a synthetic dataset's root holds (``files``, ``label_noise``,
    ``arguments``: the maker's, absent from manifests written before they were recorded)."""
    with open(osp.join(root, MANIFEST)) as f:
        return json.load(f)


def manifest_identity(root):
    """What a synthetic dataset is, read from the manifest in ``root``: its split
    sizes (``counts``: ``num_train``, ``num_val``, ``num_test``, and ``num_aug`` for
    VOC) and its label noise (``label_noise``: kind, rate and seed; None: clean),
    and the maker's arguments the manifest records (``IDENTITY_ARGUMENTS``:
    ``seed``, ``long_tail``, ``size``, and ``num_used_classes`` for COCO-Stuff;
    a manifest written before they were recorded gives none of them: unknown).
    None where ``root`` holds no manifest (data this tool did not write); a
    ValueError naming the manifest if it is not one this tool wrote.

    The manifest lists the files written; VOC's split sizes are the lengths of
    the image lists it names (``ImageSets/Segmentation/*.txt``), COCO-Stuff's the
    images of each split folder.
    """
    path = osp.join(root, MANIFEST)
    if not osp.isfile(path):
        return None
    try:
        manifest = read_manifest(root)
        files, noise = manifest['files'], manifest['label_noise']
        if 'ImageSets/Segmentation/train.txt' in files:
            counts = {f'num_{split}': _listed_ids(root, files, split)
                      for split in ('train', 'val', 'test', 'aug')}
            counts['num_aug'] -= counts['num_train']
        else:
            counts = {f'num_{split}': sum(
                rel.startswith(f'images/{split}2017/') for rel in files)
                for split in ('train', 'val', 'test')}
        if noise is not None:
            noise = dict(kind=noise['kind'], rate=noise['rate'], seed=noise['seed'])
        arguments = manifest.get('arguments', {})
        made_with = {key: arguments[key] for key in IDENTITY_ARGUMENTS if key in arguments}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f'{path} is not a manifest this tool wrote ({type(exc).__name__}: '
                         f'{exc})') from None
    return dict(counts=counts, label_noise=noise, **made_with)


def _listed_ids(root, files, split):
    rel = f'ImageSets/Segmentation/{split}.txt'
    if rel not in files:
        return 0
    with open(osp.join(root, rel)) as f:
        return sum(1 for line in f if line.strip())


def _inside(path, folder):
    """Whether ``path`` lies inside ``folder`` (both as they are: resolve links first)."""
    return path != folder and osp.commonpath([path, folder]) == folder


def _check_out_dir(out_dir, root):
    """Refuse an ``out_dir`` (or a folder above it, or below it on the way to the
    dataset's root) that exists and is not a folder."""
    path = osp.abspath(root)
    while not osp.isdir(path):
        if osp.lexists(path):
            raise ValueError(f'{path} is a file, not a folder, so the dataset cannot be written '
                             f'to {root}: give an out_dir that is a folder or does not exist yet '
                             f'(out_dir: {out_dir})')
        parent = osp.dirname(path)
        if parent == path:
            break
        path = parent


def _owned_files(root):
    """The files the manifest in ``root`` lists, checked: relative paths that stay
    inside ``root`` once links are resolved; a manifest of another shape is refused."""
    path = osp.join(root, MANIFEST)
    if not osp.lexists(path):
        return set()
    what = ('--overwrite cannot tell which files there are synthetic, so it deletes nothing: '
            'remove that folder yourself if it holds nothing you need, or use a new folder')
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} is not a manifest this tool wrote ({exc}); {what}') from None
    files = manifest.get('files') if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not all(isinstance(rel, str) for rel in files):
        raise ValueError(f'{path} is not a manifest this tool wrote (it must be a JSON object '
                         f'whose "files" is a list of paths); {what}')
    real_root = osp.realpath(root)
    for rel in files:
        if not rel or '\0' in rel or osp.isabs(rel) or \
                not _inside(osp.realpath(osp.join(real_root, rel)), real_root):
            raise ValueError(f'{path} lists {rel!r}, which is not a file inside {root} (an '
                             'absolute path, or one that leaves the folder, links resolved); '
                             f'{what}')
    return set(files)


class WriteGuard:
    """Writes a dataset's root without touching data this tool did not write.

    Checked when made, before anything is written: ``out_dir`` and the folders
    down to ``root`` are folders; a root that holds files is refused unless
    ``overwrite``, and then only if every file there is listed by the manifest
    of an earlier synthetic run (so a real dataset is never touched), whose
    entries must be paths inside the root (an edited manifest cannot make it
    delete files elsewhere). Linked folders inside the root are refused.

    Files are written into a staging folder beside the root (``path``); only
    ``save``, after the last one, deletes the old dataset's files and moves
    the new ones in, with the manifest (every file written, the label noise
    and the maker's arguments). A run that fails (an exception) removes the staging folder and
    leaves the old dataset as it was. Use it as a context manager.
    """

    def __init__(self, root, overwrite, out_dir=None):
        self.root = root
        self.files = set()
        self.staging = None
        _check_out_dir(out_dir or root, root)
        existing = []
        if osp.isdir(root):
            for folder, dirs, files in os.walk(root):
                existing += [osp.relpath(osp.join(folder, name), root) for name in files]
                existing += [osp.relpath(osp.join(folder, name), root) + '/' for name in dirs
                             if osp.islink(osp.join(folder, name))]  # never written by us
        self.old = set()
        if not existing:
            return
        if not overwrite:
            raise FileExistsError(
                f'{root} already holds {len(existing)} files; refusing to write a synthetic '
                'dataset over them (use a new folder, or --overwrite to replace an earlier '
                'synthetic dataset written by this tool)')
        owned = _owned_files(root)
        foreign = sorted(set(existing) - owned - {MANIFEST})
        if foreign:
            shown = ', '.join(foreign[:5]) + (' ...' if len(foreign) > 5 else '')
            raise FileExistsError(
                f'{root} holds {len(foreign)} files this tool did not write ({shown}); '
                '--overwrite only replaces an earlier synthetic dataset: use a new folder')
        self.old = owned & set(existing)

    def __enter__(self):
        parent = osp.dirname(osp.realpath(self.root))
        os.makedirs(parent, exist_ok=True)
        self.staging = tempfile.mkdtemp(prefix=f'.{osp.basename(self.root)}.partial-',
                                        dir=parent)
        return self

    def __exit__(self, *exc_info):
        if self.staging is not None:  # not saved: the old dataset stays as it was
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def path(self, *parts):
        """Where to write the file ``parts`` of the dataset (in the staging folder)."""
        rel = osp.join(*parts)
        self.files.add(rel)
        full = osp.join(self.staging, rel)
        os.makedirs(osp.dirname(full), exist_ok=True)
        return full

    def save(self, label_noise=None, arguments=None):
        """The manifest, then the old dataset's files out and the new ones in.

        Args:
            label_noise (dict | None): the label noise (``LabelNoise.manifest()``;
                None: clean).
            arguments (dict | None): the maker's arguments the files do not tell
                (``IDENTITY_ARGUMENTS``, and VOC's ``num_aug``).
        """
        with open(osp.join(self.staging, MANIFEST), 'w') as f:
            json.dump(dict(files=sorted(self.files), label_noise=label_noise,
                           arguments=arguments or {}), f, indent=1)
        for rel in self.old:  # the old synthetic dataset goes, so no stale ids stay behind
            if osp.isfile(osp.join(self.root, rel)):
                os.remove(osp.join(self.root, rel))
        for rel in sorted(self.files) + [MANIFEST]:
            target = osp.join(self.root, rel)
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.move(osp.join(self.staging, rel), target)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None


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
    even then only files this function wrote before are replaced; every
    argument is checked before the disk is touched, and a run that fails
    leaves an earlier dataset as it was (``WriteGuard``). With
    ``noise_rate`` > 0, the training labels (train and aug ids, both folders)
    carry label noise of ``noise_kind`` (see ``LabelNoise``); images and
    validation are those of the clean dataset with the same seed.

    Returns:
        str: The data root, ``out_dir/VOCdevkit/VOC2012``.
    """
    _check_counts(num_train=num_train, num_val=num_val, num_aug=num_aug, num_test=num_test)
    _check_seed_and_size(seed, size)
    noise = make_label_noise(noise_kind, noise_rate, seed, np.arange(1, VOC_CLASSES),
                             class_looks(VOC_CLASSES))
    root = osp.join(out_dir, 'VOCdevkit', 'VOC2012')
    with WriteGuard(root, overwrite, out_dir) as guard:  # arguments checked: now the disk
        _write_voc(guard, num_train, num_val, num_aug, num_test, size, seed, long_tail, noise)
    return root


def _write_voc(guard, num_train, num_val, num_aug, num_test, size, seed, long_tail, noise):
    rng = np.random.RandomState(seed)
    freq = long_tail_frequencies(VOC_CLASSES) if long_tail else None
    looks = class_looks(VOC_CLASSES)
    palette = voc_palette().flatten().tolist()
    h, w = size
    ids = {'train': [], 'val': [], 'aug_only': [], 'test': []}
    counts = (('train', num_train), ('val', num_val), ('aug_only', num_aug), ('test', num_test))
    index = 0
    for split, count in counts:
        for _ in range(count):
            name = f'2007_{index:06d}'
            index += 1
            objects = pick_classes(rng, np.arange(1, VOC_CLASSES), rng.randint(2, 5), freq)
            # Held-out scenes cycle through every class, so each one is scored.
            held_out = split in ('val', 'test')
            if held_out:
                objects[0] = 1 + (len(ids[split]) % (VOC_CLASSES - 1))
            label = draw_scene(h, w, 0, objects, rng)
            Image.fromarray(render_image(label, looks, rng)).save(
                guard.path('JPEGImages', name + '.jpg'), quality=95)
            if noise is not None and not held_out:
                label = noise(label, background=0)
            seg = Image.fromarray(voc_borders(label), mode='P')
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
    guard.save(label_noise=noise.manifest() if noise else None,
               arguments=dict(seed=int(seed), long_tail=bool(long_tail),
                              size=[int(s) for s in size], num_aug=int(num_aug)))


def _check_counts(**counts):
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f'{name} must be a non-negative integer, got {value!r}')
    if counts.get('num_train', 1) == 0 and counts.get('num_aug', 0) == 0:
        raise ValueError('num_train must be at least 1: a dataset needs training images')
    if counts.get('num_val', 1) == 0:
        raise ValueError('num_val must be at least 1: validation needs images')


def _check_seed_and_size(seed, size):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed < 2**32:
        raise ValueError(f'seed must be an integer in [0, 2**32 - 1] (a numpy RandomState '
                         f'seed), got {seed!r}')
    if not isinstance(size, (tuple, list)) or len(size) != 2 or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < MIN_SIZE
            for s in size):
        raise ValueError(f'size must be (height, width), two integers >= {MIN_SIZE}, '
                         f'got {size!r}')


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
    this function wrote before are replaced, as in ``make_voc`` (arguments
    checked first; a failed run changes nothing). ``noise_kind``/``noise_rate``:
    label noise in ``train2017`` only, as in ``make_voc``. ``num_test``: a
    second held-out split, ``images/test2017`` and ``annotations/test2017``,
    drawn like ``val2017`` after it (the report split of a tuned study).

    Returns:
        str: The data root, ``out_dir/coco_stuff164k``.
    """
    if isinstance(num_used_classes, bool) or not isinstance(num_used_classes, (int, np.integer)) \
            or not 2 <= num_used_classes <= COCO_STUFF_CLASSES:
        raise ValueError(f'num_used_classes must be an integer in [2, {COCO_STUFF_CLASSES}], '
                         f'got {num_used_classes!r}')
    _check_counts(num_train=num_train, num_val=num_val, num_test=num_test)
    _check_seed_and_size(seed, size)
    looks = class_looks(COCO_STUFF_CLASSES)
    used = np.linspace(0, COCO_STUFF_CLASSES - 1, num_used_classes).round().astype(int)
    noise = make_label_noise(noise_kind, noise_rate, seed, used, looks)
    root = osp.join(out_dir, 'coco_stuff164k')
    with WriteGuard(root, overwrite, out_dir) as guard:  # arguments checked: now the disk
        _write_coco_stuff(guard, num_train, num_val, num_test, size, seed, long_tail, noise,
                          looks, used)
    return root


def _write_coco_stuff(guard, num_train, num_val, num_test, size, seed, long_tail, noise, looks,
                      used):
    raw_ids = coco_stuff_raw_ids()
    assert len(raw_ids) == COCO_STUFF_CLASSES, len(raw_ids)
    rng = np.random.RandomState(seed)
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
        for k in range(count):
            name = f'{index:012d}'
            index += 1
            picks = pick_classes(rng, used, rng.randint(3, 6), freq)
            if split != 'train2017':  # the background cycles through the classes used
                scored = used[k % len(used)]
                if scored in picks[1:]:
                    picks = picks[picks != scored]
                picks[0] = scored
            label = draw_scene(h, w, picks[0], picks[1:], rng)
            Image.fromarray(render_image(label, looks, rng)).save(
                guard.path('images', split, name + '.jpg'), quality=95)
            if noise is not None and split == 'train2017':
                label = noise(label, background=picks[0])
            raw = np.asarray(raw_ids + [IGNORE] * (256 - len(raw_ids)), dtype=np.uint8)[label]
            raw[rng.uniform(size=raw.shape) < 0.002] = IGNORE  # COCO-Stuff's "unlabeled"
            Image.fromarray(raw, mode='L').save(guard.path('annotations', split, name + '.png'))
            Image.fromarray(coco_stuff_train_ids(raw), mode='L').save(
                guard.path('annotations', split, name + '_labelTrainIds.png'))
    guard.save(label_noise=noise.manifest() if noise else None,
               arguments=dict(seed=int(seed), long_tail=bool(long_tail),
                              size=[int(s) for s in size], num_used_classes=len(used)))


if __name__ == '__main__':
    # The writer has no command line of its own (the CLI imports the writer, not the reverse).
    raise SystemExit('the command line of the synthetic datasets is python -m '
                     'ngl_lab.synthetic_cli (tools/make_synthetic_dataset.py)')
