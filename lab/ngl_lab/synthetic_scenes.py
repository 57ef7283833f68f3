"""The scenes of the synthetic datasets: label maps, their images, label noise.

A scene is a textured background of one class with several shapes of other
classes on it. Every class has its own look (a colour and a stripe pattern),
so a short training run learns it and beats chance by far. ``LabelNoise``
corrupts training label maps object by object, the way annotators do. The
writers that lay scenes out as VOC 2012 or COCO-Stuff164k on disk:
``synthetic.py``.
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

VOC_CLASSES = 21
COCO_STUFF_CLASSES = 171
IGNORE = 255


def class_looks(num_classes, seed=12345):
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


def pick_classes(rng, candidates, count, freq=None):
    """``count`` distinct classes of ``candidates``, uniformly or by ``freq``."""
    candidates = np.asarray(candidates)
    p = None if freq is None else freq[candidates] / freq[candidates].sum()
    return rng.choice(candidates, size=count, replace=False, p=p)


def voc_palette():
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


def render_image(label, looks, rng):
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


def draw_scene(h, w, background, objects, rng):
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


def voc_borders(label, width=3):
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


def make_label_noise(noise_kind, noise_rate, seed, classes, looks):
    """A LabelNoise, or None without noise (rate 0 or no kind)."""
    if not noise_rate:
        return None
    if noise_kind is None:
        raise ValueError('a label-noise rate needs a noise kind: one of '
                         f'{sorted(NOISE_KINDS)}')
    return LabelNoise(noise_kind, noise_rate, seed, classes, looks)
