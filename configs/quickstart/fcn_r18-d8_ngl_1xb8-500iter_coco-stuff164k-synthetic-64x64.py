# Quickstart (500 iterations): FCN R18-D8 with NGL on the synthetic COCO-Stuff164k that
# `tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-stuff` writes
# (171 classes predicted; the synthetic scenes use 24 of them).
_base_ = ['./_base_/fcn_r18-d8_ngl_cpu-1k.py', 'mmseg::_base_/datasets/coco-stuff164k.py']

num_classes = 171
data_root = 'data/synthetic/coco-stuff/coco_stuff164k'
model = dict(
    decode_head=dict(num_classes=num_classes), auxiliary_head=dict(num_classes=num_classes))
train_pipeline = {{_base_.synthetic_train_pipeline}}
test_pipeline = {{_base_.synthetic_test_pipeline}}
train_dataloader = dict(
    batch_size=8, num_workers=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# 171 output channels make an iteration ~2.5x dearer than on VOC: 500 are enough.
max_iters = 500
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 4)
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
