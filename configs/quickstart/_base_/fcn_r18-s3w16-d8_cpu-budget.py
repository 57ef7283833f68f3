# The studies' CPU budget model (docs/study-cost.md has the profile that chose it): the
# quickstart FCN R18-D8 without ResNet's last stage (62% of the quickstart's multiply-adds:
# 256 channels at 8x8) and at a quarter of ResNet-18's width (16 channels in the first stage),
# the data read in the training process (a study run has one core: worker processes only add
# copies). Names only, for the budget configs to put in place; a CPU budget, not a benchmark.
budget_backbone = dict(
    depth=18, stem_channels=16, base_channels=16, num_stages=3, strides=(1, 2, 1),
    dilations=(1, 1, 2), out_indices=(0, 1, 2))
budget_decode_head = dict(in_index=2, in_channels=64, channels=32)
budget_auxiliary_head = dict(in_index=1, in_channels=32, channels=16)
budget_loader = dict(num_workers=0, persistent_workers=False)
