# The README's commands. `make demo`: the main job; `make test`: the test suite.
# Both set up the pinned stack in .venv first (reused when already there).
PY := .venv/bin/python
# Tools started from here (torchrun, python in the shell scripts) come from the venv.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
VOC_DEMO_CONFIG := configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py
VOC_DATA := data/synthetic/voc

.PHONY: install demo test benchmark figures study

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

# The trainability study of README.md, "Training with NGL" (CPU, synthetic data with every
# class present and long-tailed frequencies): about 45 min on 2 cores. Each line writes one
# table (study.md), its curves (study.png) and every number (study.json) under work_dirs/study/.
STUDY := $(PY) tools/study_ngl.py
VOC_ALL := data/synthetic/voc-all/VOCdevkit/VOC2012
COCO_ALL := data/synthetic/coco-all/coco_stuff164k
COCO_DEMO_CONFIG := configs/quickstart/fcn_r18-d8_ngl_1xb8-500iter_coco-stuff164k-synthetic-64x64.py
study: install
	@test -d $(VOC_ALL) || $(PY) tools/make_synthetic_dataset.py voc data/synthetic/voc-all --all-classes --num-train 200 --num-val 42
	@test -d $(COCO_ALL) || $(PY) tools/make_synthetic_dataset.py coco-stuff data/synthetic/coco-all --all-classes --num-train 600
	$(STUDY) $(VOC_DEMO_CONFIG) --data-root $(VOC_ALL) --iters 500 --variants ce ngl --optimizers sgd --seeds 0 1 2 --work-dir work_dirs/study/voc-main --title "21 classes, all present, long-tailed (synthetic VOC, CPU)"
	$(STUDY) $(COCO_DEMO_CONFIG) --data-root $(COCO_ALL) --iters 1000 --variants ce ngl --optimizers adamw --seeds 0 1 2 --work-dir work_dirs/study/coco-main --title "171 classes (synthetic COCO-Stuff, CPU)"
	$(STUDY) $(COCO_DEMO_CONFIG) --data-root $(COCO_ALL) --iters 1000 --variants ce ngl-plain ngl --optimizers sgd --work-dir work_dirs/study/coco-sgd --title "171 classes, SGD (seed 0)"
	$(STUDY) $(COCO_DEMO_CONFIG) --data-root $(COCO_ALL) --iters 1000 --variants ngl-plain ngl+ce --optimizers adamw --work-dir work_dirs/study/coco-adamw-more --title "171 classes, AdamW, more variants (seed 0)"
	$(STUDY) $(VOC_DEMO_CONFIG) --data-root $(VOC_ALL) --iters 500 --variants ce ngl-plain ngl-auto ngl ngl-scaling-auto ngl+ce --optimizers sgd --work-dir work_dirs/study/voc-ablation-sgd --title "21 classes, SGD, every variant (seed 0)"
	$(STUDY) $(VOC_DEMO_CONFIG) --data-root $(VOC_ALL) --iters 500 --variants ce ngl-plain ngl ngl-scaling --optimizers adamw --work-dir work_dirs/study/voc-ablation-adamw --title "21 classes, AdamW (seed 0)"
