#!/usr/bin/env bash
# The README's "Stability of LeNet's subnetworks" figures: the Stabilizing paper's LeNet
# stability experiment (stabilizing/lenet_mnist_stability.gin) on the bundled MNIST, shortened
# to fit a 2-core CPU: T = 3,000 iterations instead of 50K, k in {0, 100, 500}, 1 init x 3 pairs,
# the paper's 10.7% of weights (10 levels), IMP against random pruning. About 10 minutes.
#   bash tools/stabilizing_lenet_short.sh [DIR]     (default runs/stabilizing_lenet_short)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
DIR=${1:-runs/stabilizing_lenet_short}
CFG=gin_configs/stabilizing/lenet_mnist_stability.gin
B=(--gin_bindings="training.steps='3000it'" --gin_bindings="imp.rewind_steps=[0, 100, 500]"
   --gin_bindings="imp.instability_rewind_steps=[0, 100, 500]" --gin_bindings="imp.num_inits=1"
   --gin_bindings="imp.instability_pairs=3" --gin_bindings="evaluate.num_alphas=5"
   --gin_bindings="training.log_every='500it'"
   --gin_bindings="report.title='Lenet, T = 3K (shortened)'")
for job in imp evaluate report; do
  .venv/bin/python -m lmc_tf.main --gin_file=$CFG "${B[@]}" --model_dir="$DIR" --job=$job
done
