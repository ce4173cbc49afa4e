"""Barriers between two trained runs: naive and aligned (weight and activation matching), in
each BN mode. The README's "Networks from different inits, aligned" figures come from it:

  .venv/bin/python tools/align_pair.py CONFIG.gin RUN_A RUN_B STEP [MODES] [BINDING ...]
  e.g. tools/align_pair.py gin_configs/lenet_mnist.gin runs/lenet_init0 runs/lenet_init1 24000
       tools/align_pair.py gin_configs/resnet20_standard.gin runs/r20_a runs/r20_b 1500 \
           interpolate,reset,repair "cifar10.path='data/cifar10_sample.npz'"

RUN_A and RUN_B are train-job run directories (for example two `train` runs with different
train.init_seed and train.data_order_seed); STEP is the checkpoint to compare (T).
"""

import os
import sys
import tempfile
import time

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf import layout
from lmc_tf.data import base
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import bn_modes
from lmc_tf.evaluation import evaluator
from lmc_tf.evaluation import pair_alignment


def main(argv):
  gin_file, run_a, run_b, step = argv[1], argv[2], argv[3], int(argv[4])
  modes = tuple(argv[5].split(",")) if len(argv) > 5 else ("interpolate",)
  config.parse([gin_file], argv[6:])
  strategy = distribute.get_strategy()
  data = base.get_dataset()
  sweeper = evaluator.Sweeper(strategy, data, ("train", "test"), None, 1000)
  weights_a = sweeper.load(layout.checkpoint(run_a, step))
  weights_b = sweeper.load(layout.checkpoint(run_b, step))
  bn = None
  if modes != ("interpolate",):
    bn = bn_modes.BNModes(strategy, sweeper.model, data, modes, 50, 128, 0, True)
  aligner = pair_alignment.Aligner(sweeper.model, data, 10, 128, 0)
  scratch = tempfile.mkdtemp()
  for method in (None, "weight_matching", "activation_matching"):
    b, found = weights_b, ""
    if method:
      tic = time.time()
      b, record = aligner.aligned(scratch, "pair", method, weights_a, weights_b)
      found = (f" (matching {time.time() - tic:.1f} s, {record['changed_units']}/"
               f"{record['units']} units moved)")
    if bn:
      bn.begin_pair(weights_a, b)
    for mode in modes:
      transform = None if mode == "interpolate" else (
          lambda alpha, w, mode=mode: bn.weights(mode, alpha, w))
      points = sweeper.sweep(weights_a, b, barrier.alphas(30),
                             os.path.join(scratch, f"{method}_{mode}.json"), None, transform)
      parts = []
      for split in ("train", "test"):
        m = barrier.curve_metrics([p[split]["error"] for p in points],
                                  [p[split]["loss"] for p in points])
        parts.append(f"{split}: error barrier {m['instability']:.2f} pp, loss barrier "
                     f"{m['loss_barrier']:.4f}, endpoints {m['endpoint_error_mean']:.2f}%")
      print(f"{method or 'naive'} / {mode}{found}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
  main(sys.argv)
