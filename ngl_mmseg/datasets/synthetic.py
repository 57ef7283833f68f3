"""Small synthetic datasets in the exact on-disk layouts of VOC 2012 and COCO-Stuff164k.

Real data cannot be downloaded here, so tests, the demo and the quickstart
configs use scenes drawn by this module: a textured background of one class
with several shapes of other classes on it. Every class has its own look (a
colour and a stripe pattern), so a short training run learns it and beats
chance by far. The files are written the way the real datasets ship them, and
for COCO-Stuff the train-id labels are made by mmseg's own converter.
"""
import glob
import importlib.util
import os
import os.path as osp

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


def make_voc(out_dir, num_train=40, num_val=20, num_aug=0, size=(96, 128), seed=0):
    """Write ``out_dir/VOCdevkit/VOC2012`` as mmseg's VOC12 (aug) configs read it.

    - ``JPEGImages/<id>.jpg``;
    - ``SegmentationClass/<id>.png``: palette PNGs, 255 on object borders;
    - ``SegmentationClassAug/<id>.png``: grayscale PNGs without borders, as
      mmseg's voc_aug converter writes them (for the train and aug ids);
    - ``ImageSets/Segmentation/{train,val,aug}.txt``: aug lists the train
      ids plus ``num_aug`` extra ones, never a val id.

    Returns:
        str: The data root, ``out_dir/VOCdevkit/VOC2012``.
    """
    root = osp.join(out_dir, 'VOCdevkit', 'VOC2012')
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    rng = np.random.RandomState(seed)
    looks = _class_looks(VOC_CLASSES)
    palette = _voc_palette().flatten().tolist()
    h, w = size
    ids = {'train': [], 'val': [], 'aug_only': []}
    counts = (('train', num_train), ('val', num_val), ('aug_only', num_aug))
    index = 0
    for split, count in counts:
        for _ in range(count):
            name = f'2007_{index:06d}'
            index += 1
            objects = rng.choice(np.arange(1, VOC_CLASSES), size=rng.randint(2, 5), replace=False)
            # Val scenes cycle through every class, so each one is scored.
            if split == 'val':
                objects[0] = 1 + (len(ids['val']) % (VOC_CLASSES - 1))
            label = _scene(h, w, 0, objects, rng)
            Image.fromarray(_render(label, looks, rng)).save(
                osp.join(root, 'JPEGImages', name + '.jpg'), quality=95)
            seg = Image.fromarray(_voc_borders(label), mode='P')
            seg.putpalette(palette)
            seg.save(osp.join(root, 'SegmentationClass', name + '.png'))
            if split != 'val':
                Image.fromarray(label, mode='L').save(
                    osp.join(root, 'SegmentationClassAug', name + '.png'))
            ids[split].append(name)
    split_dir = osp.join(root, 'ImageSets', 'Segmentation')
    for split, names in (('train', ids['train']), ('val', ids['val']),
                         ('aug', ids['train'] + ids['aug_only'])):
        with open(osp.join(split_dir, split + '.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
    return root


def _coco_stuff_converter():
    """mmseg's ``tools/dataset_converters/coco_stuff164k.py``, imported as a module.

    Its ``main()`` asserts the real dataset's 123287 files, so the per-file
    function ``convert_to_trainID`` and the id table are used directly.
    """
    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'dataset_converters',
                    'coco_stuff164k.py')
    if not osp.isfile(path):
        raise FileNotFoundError(f"mmseg's COCO-Stuff converter is missing: {path}")
    spec = importlib.util.spec_from_file_location('mmseg_coco_stuff164k_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def coco_stuff_raw_ids():
    """Raw COCO-Stuff ids (0-181 with gaps) in train-id order, from mmseg's converter."""
    mapping = _coco_stuff_converter().clsID_to_trID
    return [raw for raw, tr in sorted(mapping.items(), key=lambda kv: kv[1]) if raw != IGNORE]


def make_coco_stuff(out_dir, num_train=40, num_val=24, num_used_classes=24, size=(96, 128),
                    seed=0):
    """Write ``out_dir/coco_stuff164k`` as mmseg's COCO-Stuff164k configs read it.

    Raw annotations (COCO-Stuff ids, 255 unlabeled) are drawn first, then
    mmseg's ``tools/dataset_converters/coco_stuff164k.py`` converts them to
    ``annotations/{train2017,val2017}/*_labelTrainIds.png`` as it does for the
    real download. Scenes use ``num_used_classes`` of the 171 classes, spread
    over things and stuff, so a few minutes of CPU training can learn them;
    the model still predicts all 171.

    Returns:
        str: The data root, ``out_dir/coco_stuff164k``.
    """
    if not 2 <= num_used_classes <= COCO_STUFF_CLASSES:
        raise ValueError(f'num_used_classes must be in [2, {COCO_STUFF_CLASSES}], '
                         f'got {num_used_classes}')
    root = osp.join(out_dir, 'coco_stuff164k')
    raw_ids = coco_stuff_raw_ids()
    assert len(raw_ids) == COCO_STUFF_CLASSES, len(raw_ids)
    rng = np.random.RandomState(seed)
    looks = _class_looks(COCO_STUFF_CLASSES)
    used = np.linspace(0, COCO_STUFF_CLASSES - 1, num_used_classes).round().astype(int)
    h, w = size
    index = 0
    for split, count in (('train2017', num_train), ('val2017', num_val)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for k in range(count):
            name = f'{index:012d}'
            index += 1
            picks = rng.choice(used, size=rng.randint(3, 6), replace=False)
            if split == 'val2017':
                picks[0] = used[k % len(used)]
            label = _scene(h, w, picks[0], picks[1:], rng)
            Image.fromarray(_render(label, looks, rng)).save(
                osp.join(root, 'images', split, name + '.jpg'), quality=95)
            raw = np.asarray(raw_ids, dtype=np.uint8)[label]
            raw[rng.uniform(size=raw.shape) < 0.002] = IGNORE  # COCO-Stuff's "unlabeled"
            Image.fromarray(raw, mode='L').save(osp.join(root, 'annotations', split,
                                                         name + '.png'))
    converter = _coco_stuff_converter()
    out_mask_dir = osp.join(root, 'annotations')
    for split in ('train2017', 'val2017'):
        for raw_png in sorted(glob.glob(osp.join(out_mask_dir, split, '*.png'))):
            if '_labelTrainIds' not in raw_png:
                converter.convert_to_trainID(raw_png, out_mask_dir,
                                             is_train=split == 'train2017')
    return root
