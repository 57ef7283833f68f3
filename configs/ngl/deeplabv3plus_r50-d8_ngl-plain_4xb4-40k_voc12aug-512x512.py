# Strict NGL twin of mmseg's deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py:
# only the losses differ (NGLMonitorHook only logs). The A/B against CE; the
# recipe that trains is the *_ngl_* config beside this one.
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py']

custom_imports = dict(imports=['ngl_mmseg'], allow_failed_imports=False)
# _delete_ drops the CE keys (use_sigmoid, avg_non_ignore, ...) of the base.
model = dict(
    decode_head=dict(
        loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=1.0)),
    auxiliary_head=dict(
        loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=0.4)))
custom_hooks = [dict(type='NGLMonitorHook')]
