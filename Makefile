# The README's commands. `make demo`: the main job; `make test`: the test suite.
# Both set up the pinned stack in .venv first (reused when already there).
PY := .venv/bin/python
# Tools started from here (torchrun, python in the shell scripts) come from the venv.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
VOC_DEMO_CONFIG := configs/quickstart/fcn_r18-d8_ngl_1xb8-1k_voc12aug-synthetic-64x64.py
VOC_DATA := data/synthetic/voc

.PHONY: install demo test test-fast test-plugin test-lab lint benchmark figures study

install:
	bash tools/setup_env.sh

$(VOC_DATA)/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt:
	$(PY) tools/make_synthetic_dataset.py voc $(VOC_DATA)

demo: install
	@$(MAKE) --no-print-directory $(VOC_DATA)/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt
	$(PY) tools/compare_losses.py $(VOC_DEMO_CONFIG) --losses ce ngl --work-dir work_dirs/demo

# Both parts of the suite: tests/plugin (the loss, hook, configs and tools a user installs with
# ngl-mmseg; they import nothing of the lab) and tests/lab (the comparison, studies, benchmark,
# synthetic data and the docs' figures). CI runs this (.ci/run).
test: install lint
	$(PY) -m pytest tests

# The suite less the tests marked slow (end to end, packaging, every config, the Triton
# interpreter's larger cases): under 2 minutes on 2 cores. `make test` runs everything, and CI.
test-fast: install
	$(PY) -m pytest tests -m "not slow"

# One part, every test of it (add PYTEST_ARGS='-m "not slow"' for its fast ones).
PYTEST_ARGS ?=
test-plugin: install
	$(PY) -m pytest tests/plugin $(PYTEST_ARGS)

test-lab: install
	$(PY) -m pytest tests/lab $(PYTEST_ARGS)

# ruff (pyflakes, pycodestyle, isort, bugbear, pyupgrade rules; configured in pyproject.toml).
lint: install
	$(PY) -m ruff check .

benchmark: install
	$(PY) tools/benchmark_loss.py --out-dir work_dirs/benchmark

figures: install
	$(PY) tools/plot_ngl_terms.py --out docs/ngl_terms.png

# Studies: each is a spec file in configs/studies/ (datasets, runs, merges, where the report
# goes; format in docs/tools.md), run by tools/study_ngl.py --spec, resumable: an interrupted
# study picks up from its finished runs. `make study SPEC=configs/studies/regimes.json JOBS=2`;
# ONLY='STUDY ...' runs those studies of the spec (in the spec's order) and no others.
# WITH_PUBLISHED=1 (any value turns it on) adds the studies the merges it writes have published:
# on a work dir seeded from the records they have finished, so they train nothing.
SPEC ?= configs/studies/tuned.json
JOBS ?= 1
study: install
	$(PY) tools/study_ngl.py --spec $(SPEC) --jobs $(JOBS)$(if $(ONLY), --only $(ONLY))$(if $(WITH_PUBLISHED), --with-published)
