#!/usr/bin/env bash
# Set up the pinned stack in .venv at the repository root; later runs reuse what is there.
# CPU by default. For GPUs, see docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f requirements/cpu.txt ]; then
  echo "setup_env.sh sets up a checkout of the ngl-mmseg repository (it reads requirements/);" >&2
  echo "installed from a wheel, ngl-mmseg is already set up: see docs/install.md for its stack." >&2
  exit 1
fi
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.ngl_mmseg_stack"
STACK_ID="$(cat requirements/cpu.txt requirements/tests.txt | cksum | cut -d" " -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  # A stamp left without its interpreter (a half-copied or pruned .venv) says nothing about
  # what is installed: drop it, so the stack below is installed again.
  rm -f "$STAMP"
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
pip_q() { python -m pip install --disable-pip-version-check -q "$@"; }

if [ "$(cat "$STAMP" 2>/dev/null)" != "$STACK_ID" ]; then
  # The pins live in requirements/cpu.txt; torch and mmcv go first, each its own way.
  echo "[setup] installing torch 2.13.0 (CPU build)"
  pip_q "$(grep '^torch==' requirements/cpu.txt)"
  # mmcv 2.1.0's setup.py imports pkg_resources (gone in setuptools 81); torch needs >= 77.
  pip_q "setuptools>=77.0.3,<81" wheel ninja numpy
  if ! python -c "import mmcv, mmcv._ext" 2>/dev/null; then
    echo "[setup] building mmcv 2.1.0 with its ops from source (about 13 min on 2 cores the first time; pip caches the wheel)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} python -m pip install --disable-pip-version-check \
      --no-build-isolation "$(grep '^mmcv==' requirements/cpu.txt)"
  fi
  # Triton is optional (its kernels run in tests through its interpreter): without a wheel
  # for this platform, the rest is installed and the Triton tests skip.
  pip_q -r requirements/cpu.txt -r requirements/tests.txt \
    || pip_q $(grep -v -e '^#' -e '^triton' requirements/cpu.txt) -r requirements/tests.txt
  echo "$STACK_ID" > "$STAMP"
fi
# The plugin and the lab (lab/: the comparison, the studies, the benchmark, the synthetic data),
# editable, every time (cheap; keeps .venv pointing at this checkout).
pip_q --no-build-isolation --no-deps -e . -e lab
python -c "import mmcv._ext, mmseg.models, ngl_mmseg, ngl_lab" >/dev/null
echo "[setup] ready: $VENV ($(python -c 'import torch, mmcv, mmseg; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmseg {mmseg.__version__}")'))"
