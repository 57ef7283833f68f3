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
    # ResNet-18 at half width: a CPU budget, not a benchmark model.
    backbone=dict(depth=18, stem_channels=32, base_channels=32),
    decode_head=dict(
        in_channels=256,
        channels=64,
        loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=1.0)),
    auxiliary_head=dict(
        in_channels=128,
        channels=32,
        loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=0.4)))

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
