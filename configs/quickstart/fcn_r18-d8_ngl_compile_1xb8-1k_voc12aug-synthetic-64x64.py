# The VOC quickstart with mmengine's `compile = True`: the Runner wraps `train_step` in
# `torch.compile` (inductor). NGLLoss traces into the graph: its torch math is fused with the
# model's ops ('auto', 'compile' and 'torch' all mean that inside a graph); the warm-ups read
# the iteration outside the graph (one graph break). See docs/usage.md ("torch.compile").
_base_ = ['./fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py']

compile = True
