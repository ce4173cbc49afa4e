#!/usr/bin/env bash
# The README's first command: install into .venv if needed, then run the main job, a LeNet /
# MNIST instability analysis small enough for two CPU cores (a few minutes): train the parent
# and the copies, interpolate them (the separate evaluator job), and draw the figures.
#   bash tools/quickstart.sh [MODEL_DIR] [extra lmc_tf.main flags...]
# Rerunning it skips the work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
model_dir="${1:-runs/lenet_mnist_instability_quick}"
shift || true
for job in instability evaluate report; do
  echo "=== lmc_tf: ${job} ==="
  .venv/bin/python -m lmc_tf.main --gin_file=gin_configs/lenet_mnist_instability_quick.gin \
      --model_dir="$model_dir" --job="$job" "$@"
done
