# The studies' CPU budget model (_base_/fcn_r18-s3w16-d8_cpu-budget.py) on the synthetic
# Pascal VOC 2012 (aug layout), 2000 iterations validated every 250: a step several times
# cheaper than the quickstart's it inherits, and still 96 mIoU on clean labels
# (docs/study-cost.md).
_base_ = ['./fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py',
          './_base_/fcn_r18-s3w16-d8_cpu-budget.py']

model = dict(
    backbone={{_base_.budget_backbone}},
    decode_head={{_base_.budget_decode_head}},
    auxiliary_head={{_base_.budget_auxiliary_head}})
max_iters = 2000
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 8)
study_validations = 8  # what the lab's studies keep when they rescale the schedule
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=100))
train_dataloader = {{_base_.budget_loader}}
val_dataloader = {{_base_.budget_loader}}
test_dataloader = val_dataloader
