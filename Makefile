# The README's commands. `make demo`: the main job; `make test`: the test suite.
# Both set up the pinned stack in .venv first (reused when already there).
PY := .venv/bin/python
# Tools started from here (torchrun, python in the shell scripts) come from the venv.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
VOC_DEMO_CONFIG := configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py
VOC_DATA := data/synthetic/voc

.PHONY: install demo test benchmark figures

install:
	bash tools/setup_env.sh

$(VOC_DATA)/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt:
	$(PY) tools/make_synthetic_dataset.py voc $(VOC_DATA)

demo: install
	@$(MAKE) --no-print-directory $(VOC_DATA)/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt
	$(PY) tools/compare_losses.py $(VOC_DEMO_CONFIG) --losses ce ngl --work-dir work_dirs/demo

test: install
	$(PY) -m pytest tests

benchmark: install
	$(PY) tools/benchmark_loss.py --out-dir work_dirs/benchmark

figures: install
	$(PY) tools/plot_ngl_terms.py --out docs/ngl_terms.png
