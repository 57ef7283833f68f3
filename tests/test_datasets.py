"""The synthetic datasets' on-disk layouts, and the errors for broken dataset setups."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

import ngl_mmseg  # noqa: F401
from ngl_mmseg.datasets import check_dataset_paths, make_coco_stuff, make_voc
from ngl_mmseg.datasets.synthetic import coco_stuff_raw_ids
from ngl_mmseg.launch import prepare_config
from mmseg.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VOC_CFG = osp.join(REPO, 'configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py')
COCO_CFG = osp.join(REPO,
                    'configs/quickstart/fcn_r18-d8_ngl_1xb8-500iter_coco-stuff164k-synthetic-64x64.py')


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


def test_coco_stuff_layout_made_by_mmseg_converter(tmp_path):
    root = make_coco_stuff(str(tmp_path), num_train=4, num_val=3)
    raw_ids = coco_stuff_raw_ids()
    assert len(raw_ids) == 171 and raw_ids[0] == 0 and raw_ids[-1] == 181
    for split, count in (('train2017', 4), ('val2017', 3)):
        imgs = sorted(p for p in __import__('os').listdir(osp.join(root, 'images', split)))
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


def voc_cfg(root):
    cfg = Config.fromfile(VOC_CFG)
    for ds in cfg.train_dataloader.dataset.datasets:
        ds.data_root = root
    cfg.val_dataloader.dataset.data_root = root
    cfg.test_dataloader.dataset.data_root = root
    return cfg


def test_missing_data_root_names_the_path(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'VOC2012')
    with pytest.raises(FileNotFoundError, match='data_root does not exist: .*nowhere/VOC2012'):
        prepare_config(voc_cfg(missing), splits=('train', 'val'))


def test_missing_and_empty_split_files_name_the_path(tmp_path):
    root = make_voc(str(tmp_path), num_train=2, num_val=2)
    val_txt = osp.join(root, 'ImageSets', 'Segmentation', 'val.txt')
    open(val_txt, 'w').close()
    with pytest.raises(ValueError, match=f'split file is empty: {val_txt}'):
        check_dataset_paths(voc_cfg(root).val_dataloader.dataset)
    __import__('os').remove(val_txt)
    with pytest.raises(FileNotFoundError, match=f'split file does not exist: {val_txt}'):
        check_dataset_paths(voc_cfg(root).val_dataloader.dataset)


def test_missing_image_folder_names_the_path(tmp_path):
    root = make_voc(str(tmp_path), num_train=2, num_val=2)
    __import__('shutil').rmtree(osp.join(root, 'SegmentationClassAug'))
    with pytest.raises(FileNotFoundError, match='seg_map_path folder does not exist: .*Aug'):
        prepare_config(voc_cfg(root), splits=('train', ))


def test_label_png_with_values_outside_the_classes_names_the_file(tmp_path):
    root = make_voc(str(tmp_path), num_train=2, num_val=2)
    name = read_ids(osp.join(root, 'ImageSets', 'Segmentation', 'val.txt'))[0]
    path = osp.join(root, 'SegmentationClass', name + '.png')
    seg = Image.open(path)
    arr = np.array(seg)
    arr[:3, :3] = 42
    bad = Image.fromarray(arr, mode='P')
    bad.putpalette(seg.getpalette())
    bad.save(path)
    cfg = prepare_config(voc_cfg(root), splits=('val', ))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    with pytest.raises(ValueError, match=rf'label map {path} holds values \[42\] outside \[0, 21\)'):
        dataset[0]
    assert dataset[1]['data_samples'] is not None  # the good files still load


def test_prepare_config_leaves_cuda_runs_alone_and_adds_one_label_check(tmp_path):
    root = make_voc(str(tmp_path), num_train=2, num_val=2)
    cfg = voc_cfg(root)
    cfg.launcher = 'none'
    prepare_config(cfg, splits=('train', 'val'))
    prepare_config(cfg, splits=('train', 'val'))
    for ds in cfg.train_dataloader.dataset.datasets:
        assert [s['type'] for s in ds.pipeline].count('CheckSegLabels') == 1
    assert cfg.get('model_wrapper_cfg') is None
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
