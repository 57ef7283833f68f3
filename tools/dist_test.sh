#!/usr/bin/env bash
# mmseg's tools/dist_test.sh, launched by torchrun (`python -m torch.distributed.run`, so the
# interpreter is $PYTHON or the `python` on PATH) instead of the deprecated torch.distributed.launch.
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Env: NNODES, NODE_RANK, PORT, MASTER_ADDR as in mmseg. Without CUDA the GPUS
# processes run on CPU with gloo (see ngl_mmseg/compat.py).
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]" >&2
  echo "error: GPUS must be a positive integer (processes on this node, one per GPU), got '$GPUS'" >&2
  exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    $(dirname "$0")/test.py \
    $CONFIG \
    $CHECKPOINT \
    --launcher pytorch \
    ${@:4}
