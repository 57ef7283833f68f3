# DeepLabV3+ R50-D8 on COCO-Stuff164k with cross entropy: mmseg ships no such
# config, so it is composed from mmseg's bases exactly as mmseg's
# deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py is. CE baseline of the
# NGL twin beside it.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    'mmseg::_base_/datasets/coco-stuff164k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=171),
    auxiliary_head=dict(num_classes=171))
