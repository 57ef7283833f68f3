# Strict NGL twin of segformer_mit-b2_8xb2-80k_coco-stuff164k-512x512.py:
# only the losses differ (NGLMonitorHook only logs). The A/B against CE; the
# recipe that trains is the *_ngl_* config beside this one.
_base_ = ['./segformer_mit-b2_8xb2-80k_coco-stuff164k-512x512.py']

custom_imports = dict(imports=['ngl_mmseg'], allow_failed_imports=False)
# _delete_ drops the CE keys (use_sigmoid, avg_non_ignore, ...) of the base.
model = dict(decode_head=dict(loss_decode=dict(_delete_=True, type='NGLLoss', loss_weight=1.0)))
custom_hooks = [dict(type='NGLMonitorHook')]
