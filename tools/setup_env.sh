#!/usr/bin/env bash
# Set up the pinned stack in .venv at the repository root; later runs reuse what is there.
# CPU by default. For GPUs, see README.md ("Installing on GPU machines").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.ngl_mmseg_stack"
STACK_ID="torch2.13.0-mmcv2.1.0-mmengine0.10.7-mmseg1.2.2-v1"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
pip_q() { python -m pip install --disable-pip-version-check -q "$@"; }

if [ "$(cat "$STAMP" 2>/dev/null)" != "$STACK_ID" ]; then
  echo "[setup] installing torch 2.13.0 (CPU build)"
  pip_q "torch==2.13.0"
  # mmcv 2.1.0's setup.py imports pkg_resources (gone in setuptools 81); torch needs >= 77.
  pip_q "setuptools>=77.0.3,<81" wheel ninja numpy
  if ! python -c "import mmcv, mmcv._ext" 2>/dev/null; then
    echo "[setup] building mmcv 2.1.0 with its ops from source (about 13 min on 2 cores the first time; pip caches the wheel)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} python -m pip install --disable-pip-version-check \
      --no-build-isolation "mmcv==2.1.0"
  fi
  pip_q "mmengine==0.10.7" "mmsegmentation==1.2.2" ftfy regex opencv-python-headless \
    matplotlib pytest "triton==3.9.0" || pip_q "mmengine==0.10.7" "mmsegmentation==1.2.2" ftfy regex \
    opencv-python-headless matplotlib pytest
  echo "$STACK_ID" > "$STAMP"
fi
# The package itself, editable, every time (cheap; keeps .venv pointing at this checkout).
pip_q --no-build-isolation --no-deps -e .
python -c "import mmcv._ext, mmseg.models, ngl_mmseg" >/dev/null
echo "[setup] ready: $VENV ($(python -c 'import torch, mmcv, mmseg; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmseg {mmseg.__version__}")'))"
