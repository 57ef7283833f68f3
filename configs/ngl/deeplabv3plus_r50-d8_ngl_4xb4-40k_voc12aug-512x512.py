# NGL as the trainability study says to train it, on
# deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py:
# NGLLoss's CE-matched weight (auto_weight: a fresh head gets CE's gradient, which
# under SGD is the difference between learning and not) and a CE-to-NGL warm-up over
# the first 10% of iterations. The strict twin differing only in the loss is
# deeplabv3plus_r50-d8_ngl-plain_4xb4-40k_voc12aug-512x512.py.
# See docs/training.md.
_base_ = ['./deeplabv3plus_r50-d8_ngl-plain_4xb4-40k_voc12aug-512x512.py']

model = dict(
    decode_head=dict(
        loss_decode=dict(type='NGLLoss', auto_weight=True, ce_warmup=0.1, loss_weight=1.0)),
    auxiliary_head=dict(
        loss_decode=dict(type='NGLLoss', auto_weight=True, ce_warmup=0.1, loss_weight=0.4)))
