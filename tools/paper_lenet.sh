#!/usr/bin/env bash
# Reruns the LeNet results quoted in the README: the full instability analysis
# (Figures 2 and 3) and IMP with its baselines (Table 2's LeNet row), each as its three jobs.
# Finished runs are skipped, so an interrupted call picks up where it stopped.
#   bash tools/paper_lenet.sh [ROOT] [extra lmc_tf.main flags, e.g. --gin_bindings=imp.num_inits=1]
# On a 2-core CPU: about 45 minutes for the instability analysis, and about 40 minutes per init
# for IMP (the config has 3 inits; the README's figures used one).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
root="${1:-runs}"
shift || true
for experiment in lenet_mnist_instability lenet_mnist_imp; do
  for job in "" evaluate report; do
    echo "=== ${experiment} ${job:-train} ==="
    .venv/bin/python -m lmc_tf.main --gin_file="gin_configs/${experiment}.gin" \
        --model_dir="${root}/${experiment}" ${job:+--job=$job} "$@"
  done
done
