"""The synthetic datasets' on-disk layouts (as mmseg's dataset classes and converters read
them), and the writer's refusals."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

from ngl_lab.synthetic import (
    MANIFEST,
    coco_stuff_raw_ids,
    make_coco_stuff,
    make_voc,
    manifest_identity,
    read_manifest,
)


def read_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def test_voc_layout(tmp_path):
    root = make_voc(str(tmp_path), num_train=6, num_val=4, num_aug=2)
    assert root == osp.join(str(tmp_path), 'VOCdevkit', 'VOC2012')
    sets = osp.join(root, 'ImageSets', 'Segmentation')
    train, val, aug = (read_ids(osp.join(sets, f'{s}.txt')) for s in ('train', 'val', 'aug'))
    assert len(train) == 6 and len(val) == 4 and len(aug) == 8
    assert set(train) < set(aug) and not set(val) & set(aug)
    for name in train + val:
        assert osp.isfile(osp.join(root, 'JPEGImages', name + '.jpg'))
        seg = Image.open(osp.join(root, 'SegmentationClass', name + '.png'))
        assert seg.mode == 'P'  # palette PNG, as VOC ships
        values = np.unique(np.array(seg))
        assert 255 in values and values.max() == 255 and (values[values != 255] < 21).all()
        assert seg.getpalette()[3:6] == [128, 0, 0]  # VOC's colour of class 1
    for name in aug:
        seg_aug = np.array(Image.open(osp.join(root, 'SegmentationClassAug', name + '.png')))
        assert 255 not in seg_aug and seg_aug.max() < 21  # no borders in the aug labels


def mmseg_coco_stuff_converter():
    """mmseg's tools/dataset_converters/coco_stuff164k.py (shipped in its wheel)."""
    import importlib.util

    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'dataset_converters',
                    'coco_stuff164k.py')
    spec = importlib.util.spec_from_file_location('mmseg_coco_stuff164k_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_coco_stuff_layout_matches_mmseg_converter(tmp_path):
    root = make_coco_stuff(str(tmp_path), num_train=4, num_val=3)
    raw_ids = coco_stuff_raw_ids()
    assert len(raw_ids) == 171 and raw_ids[0] == 0 and raw_ids[-1] == 181
    converter = mmseg_coco_stuff_converter()
    assert raw_ids == [raw for raw, tr in sorted(converter.clsID_to_trID.items(),
                                                 key=lambda kv: kv[1]) if raw != 255]
    # mmseg's converter, run on one of our raw maps, writes our train-id map.
    stem = sorted(os.listdir(osp.join(root, 'images', 'val2017')))[0][:-4]
    out = tmp_path / 'converted'
    (out / 'val2017').mkdir(parents=True)
    converter.convert_to_trainID(osp.join(root, 'annotations', 'val2017', stem + '.png'),
                                 str(out), is_train=False)
    assert np.array_equal(
        np.array(Image.open(out / 'val2017' / (stem + '_labelTrainIds.png'))),
        np.array(Image.open(osp.join(root, 'annotations', 'val2017',
                                     stem + '_labelTrainIds.png'))))
    for split, count in (('train2017', 4), ('val2017', 3)):
        imgs = sorted(os.listdir(osp.join(root, 'images', split)))
        assert len(imgs) == count and all(p.endswith('.jpg') for p in imgs)
        for img in imgs:
            stem = img[:-4]
            raw = np.array(Image.open(osp.join(root, 'annotations', split, stem + '.png')))
            train_ids = np.array(
                Image.open(osp.join(root, 'annotations', split, stem + '_labelTrainIds.png')))
            lookup = np.full(256, 255, dtype=np.uint8)
            lookup[raw_ids] = np.arange(171)
            assert np.array_equal(train_ids, lookup[raw])
            assert set(np.unique(train_ids)) <= set(range(171)) | {255}


def test_all_classes_long_tailed_datasets_hold_every_class(tmp_path):
    root = make_coco_stuff(str(tmp_path / 'coco'), num_train=60, num_val=171,
                           num_used_classes=171, long_tail=True)
    counts = {}
    for split in ('train2017', 'val2017'):
        hist = np.zeros(256)
        for path in glob.glob(osp.join(root, 'annotations', split, '*_labelTrainIds.png')):
            hist += np.bincount(np.array(Image.open(path)).ravel(), minlength=256)
        counts[split] = hist[:171]
    assert (counts['val2017'] > 0).all()  # validation scores every class
    train = np.sort(counts['train2017'][counts['train2017'] > 0])
    assert train[-1] > 10 * train[len(train) // 2]  # a long tail: the head dominates
    voc = make_voc(str(tmp_path / 'voc'), num_train=60, num_val=21, long_tail=True)
    hist = np.zeros(256)
    for name in read_ids(osp.join(voc, 'ImageSets', 'Segmentation', 'val.txt')):
        hist += np.bincount(np.array(Image.open(osp.join(voc, 'SegmentationClass',
                                                         name + '.png'))).ravel(), minlength=256)
    assert (hist[:21] > 0).all()


def test_synthetic_writer_never_overwrites_data_it_did_not_write(tmp_path):
    root = make_voc(str(tmp_path), num_train=3, num_val=2)
    with pytest.raises(FileExistsError, match='already holds'):
        make_voc(str(tmp_path), num_train=3, num_val=2)
    # --overwrite replaces an earlier synthetic dataset...
    make_voc(str(tmp_path), num_train=2, num_val=2, overwrite=True)
    assert len(read_ids(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt'))) == 2
    # ...but never a folder holding files it did not write (a real dataset)
    real = osp.join(root, 'JPEGImages', '2008_000123.jpg')
    with open(real, 'wb') as f:
        f.write(b'real image')
    with pytest.raises(FileExistsError, match='did not write'):
        make_voc(str(tmp_path), num_train=2, num_val=2, overwrite=True)
    with open(real, 'rb') as f:
        assert f.read() == b'real image'
    real_root = tmp_path / 'real' / 'coco_stuff164k' / 'images' / 'train2017'
    real_root.mkdir(parents=True)
    (real_root / '000000000001.jpg').write_bytes(b'real')
    for overwrite in (False, True):
        with pytest.raises(FileExistsError):
            make_coco_stuff(str(tmp_path / 'real'), num_train=2, num_val=2, overwrite=overwrite)
    assert (real_root / '000000000001.jpg').read_bytes() == b'real'


@pytest.mark.parametrize('kwargs', [dict(num_train=-1), dict(num_val=-3), dict(num_val=0),
                                    dict(num_train=0)])
def test_synthetic_writer_refuses_bad_counts(tmp_path, kwargs):
    with pytest.raises(ValueError, match='num_'):
        make_voc(str(tmp_path), **kwargs)
    with pytest.raises(ValueError, match='num_'):
        make_coco_stuff(str(tmp_path / 'c'), **kwargs)
    assert not any(tmp_path.iterdir()) or not any((tmp_path / 'VOCdevkit').rglob('*.jpg'))


@pytest.mark.slow
def test_make_synthetic_dataset_tool_writes_then_refuses_to_write_over(tmp_path):
    tool = [sys.executable, osp.join(REPO, 'tools', 'make_synthetic_dataset.py'), 'voc',
            str(tmp_path / 'voc'), '--num-train', '3', '--num-val', '2']
    first = subprocess.run(tool, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    assert 'synthetic dataset written to' in first.stdout
    assert len(read_ids(tmp_path / 'voc/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt')) == 2
    again = subprocess.run(tool, capture_output=True, text=True)
    assert again.returncode == 1
    assert 'make_synthetic_dataset: error:' in again.stderr and 'refusing' in again.stderr


def test_the_manifest_records_the_makers_arguments(tmp_path):
    """A dataset is what it was made with: seed, long tail, size (and num_aug, num_used_classes)
    are in its manifest and its identity, so a spec changed in them does not reuse it."""
    voc = make_voc(str(tmp_path / 'voc'), num_train=2, num_val=2, num_aug=1, size=(16, 24),
                   seed=7, long_tail=True)
    assert read_manifest(voc)['arguments'] == dict(seed=7, long_tail=True, size=[16, 24],
                                                   num_aug=1)
    assert manifest_identity(voc) == dict(
        counts=dict(num_train=2, num_val=2, num_test=0, num_aug=1), label_noise=None, seed=7,
        long_tail=True, size=[16, 24])
    coco = make_coco_stuff(str(tmp_path / 'coco'), num_train=2, num_val=2, num_used_classes=5,
                           size=(16, 16))
    assert read_manifest(coco)['arguments'] == dict(seed=0, long_tail=False, size=[16, 16],
                                                    num_used_classes=5)
    assert manifest_identity(coco)['num_used_classes'] == 5


def test_a_manifest_written_without_the_arguments_is_still_read(tmp_path):
    """Datasets made before the manifest held the maker's arguments: those are unknown."""
    voc = make_voc(str(tmp_path / 'voc'), num_train=2, num_val=2)
    path = osp.join(voc, MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    del manifest['arguments']
    with open(path, 'w') as f:
        json.dump(manifest, f)
    assert manifest_identity(voc) == dict(
        counts=dict(num_train=2, num_val=2, num_test=0, num_aug=0), label_noise=None)
