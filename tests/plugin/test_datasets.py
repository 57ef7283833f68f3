"""The errors for broken dataset setups: missing paths, empty splits, bad label files."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from helpers import VOC_CFG, make_dataset
from mmengine.config import Config
from mmseg.registry import DATASETS
from PIL import Image

import ngl_mmseg  # noqa: F401
from ngl_mmseg.datasets import check_dataset_paths
from ngl_mmseg.launch import prepare_config


def read_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope='module')
def voc_dataset(tmp_path_factory):
    """A small synthetic VOC (2 training, 9 validation images), written once by the lab's tool."""
    return make_dataset('voc', tmp_path_factory.mktemp('voc'), '--num-train', 2, '--num-val', 9)


@pytest.fixture
def voc_root(voc_dataset, tmp_path):
    """A copy of ``voc_dataset`` of the test's own, to damage."""
    root = str(tmp_path / 'VOCdevkit' / 'VOC2012')
    shutil.copytree(voc_dataset, root)
    return root


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


def test_missing_and_empty_split_files_name_the_path(voc_root):
    root = voc_root
    val_txt = osp.join(root, 'ImageSets', 'Segmentation', 'val.txt')
    open(val_txt, 'w').close()
    with pytest.raises(ValueError, match=f'split file is empty: {val_txt}'):
        check_dataset_paths(voc_cfg(root).val_dataloader.dataset)
    os.remove(val_txt)
    with pytest.raises(FileNotFoundError, match=f'split file does not exist: {val_txt}'):
        check_dataset_paths(voc_cfg(root).val_dataloader.dataset)


def test_missing_image_folder_names_the_path(voc_root):
    root = voc_root
    shutil.rmtree(osp.join(root, 'SegmentationClassAug'))
    with pytest.raises(FileNotFoundError, match='seg_map_path folder does not exist: .*Aug'):
        prepare_config(voc_cfg(root), splits=('train', ))


def test_label_png_with_values_outside_the_classes_names_the_file(voc_root):
    root = voc_root
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
    with pytest.raises(ValueError,
                       match=rf'label map {path} holds values \[42\] outside \[0, 21\)'):
        dataset[0]
    assert dataset[1]['data_samples'] is not None  # the good files still load


def test_prepare_config_leaves_cuda_runs_alone_and_adds_one_label_check(voc_root,
                                                                         monkeypatch):
    root = voc_root
    cfg = voc_cfg(root)
    cfg.launcher = 'pytorch'  # distributed, on a machine that has CUDA: nothing to change
    monkeypatch.setattr('torch.cuda.is_available', lambda: True)
    prepare_config(cfg, splits=('train', 'val'))
    prepare_config(cfg, splits=('train', 'val'))
    for ds in cfg.train_dataloader.dataset.datasets:
        assert [s['type'] for s in ds.pipeline].count('CheckSegLabels') == 1
    assert cfg.get('model_wrapper_cfg') is None
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'


@pytest.mark.parametrize('damage', ['values', 'truncated', 'garbage'])
def test_val_labels_are_checked_before_training_naming_the_file(voc_root, damage):
    from ngl_mmseg.launch import check_labels_before_training
    root = voc_root
    name = read_ids(osp.join(root, 'ImageSets', 'Segmentation', 'val.txt'))[1]
    path = osp.join(root, 'SegmentationClass', name + '.png')
    data = open(path, 'rb').read()
    if damage == 'values':
        seg = Image.open(path)
        arr = np.array(seg)
        arr[0, 0] = 42
        bad = Image.fromarray(arr, mode='P')
        bad.putpalette(seg.getpalette())  # without one, PIL renumbers the values
        bad.save(path)
        message = rf'label map {path} holds values \[42\]'
    else:
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2] if damage == 'truncated' else b'not a png at all')
        message = rf'label map {path} cannot be read'
    cfg = prepare_config(voc_cfg(root), splits=('train', 'val'))
    with pytest.raises(ValueError, match=message):
        check_labels_before_training(cfg, ('train', 'val'))


def test_label_check_samples_large_datasets_and_says_how_many(voc_root, capsys):
    from ngl_mmseg.datasets.checks import check_label_files
    root = voc_root
    cfg = prepare_config(voc_cfg(root), splits=('val', ))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert check_label_files(dataset, 21, max_files=3) == (3, 9)
    assert check_label_files(dataset, 21) == (9, 9)


@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_loading_a_broken_label_png_in_training_names_the_file(voc_root, damage):
    root = voc_root
    name = read_ids(osp.join(root, 'ImageSets', 'Segmentation', 'val.txt'))[0]
    path = osp.join(root, 'SegmentationClass', name + '.png')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2] if damage == 'truncated' else b'garbage, not a png')
    cfg = prepare_config(voc_cfg(root), splits=('val', ))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    with pytest.raises(ValueError, match=f'label map {path} cannot be read'):
        dataset[0]


