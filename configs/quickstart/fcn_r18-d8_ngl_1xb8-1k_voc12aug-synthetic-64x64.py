# Quickstart: FCN R18-D8 with NGL on the synthetic Pascal VOC 2012 (aug layout)
# that `tools/make_synthetic_dataset.py voc data/synthetic/voc` writes.
_base_ = ['./_base_/fcn_r18-d8_ngl_cpu-1k.py', 'mmseg::_base_/datasets/pascal_voc12_aug.py']

num_classes = 21
data_root = 'data/synthetic/voc/VOCdevkit/VOC2012'
model = dict(
    decode_head=dict(num_classes=num_classes), auxiliary_head=dict(num_classes=num_classes))
train_pipeline = {{_base_.synthetic_train_pipeline}}
test_pipeline = {{_base_.synthetic_test_pipeline}}
dataset_train = dict(
    type='PascalVOCDataset',
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=train_pipeline)
dataset_aug = dict(
    type='PascalVOCDataset',
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(_delete_=True, type='ConcatDataset', datasets=[dataset_train, dataset_aug]))
val_dataloader = dict(
    batch_size=1, num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
