# Quickstart: FCN R18-D8 with NGL on the synthetic Pascal VOC 2012 (aug layout)
# that `tools/make_synthetic_dataset.py voc data/synthetic/voc` writes.
# Small enough for a CPU: 64x64 crops, no pretrained weights, ~3 minutes.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_20k.py'
]
custom_imports = dict(imports=['ngl_mmseg'], allow_failed_imports=False)

num_classes = 21
max_iters = 1000
data_root = 'data/synthetic/voc/VOCdevkit/VOC2012'
crop_size = (64, 64)
scale = (128, 96)

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18),
    decode_head=dict(
        in_channels=512,
        channels=128,
        num_classes=num_classes,
        loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=1.0)),
    auxiliary_head=dict(
        in_channels=256,
        channels=64,
        num_classes=num_classes,
        loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=0.4)))

# The synthetic classes differ by colour and texture, so no photometric
# distortion (it would blur what the classes are).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
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
    batch_size=1,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 4)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2))
randomness = dict(seed=0)
