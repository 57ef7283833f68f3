# Shared by the quickstart configs: a small FCN with NGL and a 1k-iteration
# schedule that trains on 2 CPU cores in about two minutes.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py'
]
custom_imports = dict(imports=['ngl_mmseg'], allow_failed_imports=False)

max_iters = 1000
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),
    # ResNet-18 at half width: a CPU budget, not a benchmark model.
    backbone=dict(depth=18, stem_channels=32, base_channels=32),
    # NGL's recipe (docs/training.md): CE-matched weight, CE warm-up.
    decode_head=dict(
        in_channels=256,
        channels=64,
        loss_decode=dict(
            _delete_=True, type='NGLLoss', auto_weight=True, ce_warmup=0.1, loss_weight=1.0)),
    auxiliary_head=dict(
        in_channels=128,
        channels=32,
        loss_decode=dict(
            _delete_=True, type='NGLLoss', auto_weight=True, ce_warmup=0.1, loss_weight=0.4)))
custom_hooks = [dict(type='NGLMonitorHook')]

# AdamW normalises the gradient scale, which differs a lot between NGL (mean
# over classes, softmax Jacobian) and CE: one optimiser setting serves both.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 4)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2))
randomness = dict(seed=0)

# Pipelines for the synthetic datasets (images of 96x128), named apart from the
# dataset bases' own `train_pipeline`/`test_pipeline`. The synthetic classes
# differ by colour and texture: no photometric distortion.
synthetic_crop_size = (64, 64)
synthetic_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 96), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=synthetic_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
synthetic_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
