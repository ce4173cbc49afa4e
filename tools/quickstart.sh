#!/usr/bin/env bash
# The README's first command: install into .venv if needed, then run the main job
# (LeNet-300-100 on the bundled MNIST, Table 1) and print where its results are.
#   bash tools/quickstart.sh [MODEL_DIR] [extra lmc_tf.main flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
model_dir="${1:-runs/lenet_mnist}"
shift || true
exec .venv/bin/python -m lmc_tf.main --gin_file=gin_configs/lenet_mnist.gin \
    --model_dir="$model_dir" "$@"
