"""An endpoint's error with its own running BN statistics and with them reset on training
batches ('reset' mode), for several bn_batches and with and without augmentation. The
README's "Augment the re-estimation batches" figures come from it:

  .venv/bin/python tools/bn_reset_endpoints.py CONFIG.gin STEP RUN [RUN ...] -- [BINDING ...]
  e.g. tools/bn_reset_endpoints.py gin_configs/resnet20_standard.gin 1500 runs/a runs/b -- \
           "cifar10.path='data/cifar10_sample.npz'"
"""

import os
import sys

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf import layout
from lmc_tf.data import base
from lmc_tf.evaluation import bn_modes
from lmc_tf.evaluation import evaluator


def main(argv):
  args, bindings = (argv[1:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
      else (argv[1:], [])
  gin_file, step, runs = args[0], int(args[1]), args[2:]
  config.parse([gin_file], bindings)
  strategy = distribute.get_strategy()
  data = base.get_dataset()
  sweeper = evaluator.Sweeper(strategy, data, ("train", "test"), None, 1000)
  for num_batches, augment in ((50, True), (50, False), (10, True), (200, True)):
    bn = bn_modes.BNModes(strategy, sweeper.model, data, ("reset",), num_batches, 128, 0,
                          augment)
    for run in runs:
      weights = sweeper.load(layout.checkpoint(run, step))
      running, reset = sweeper.measure(weights), sweeper.measure(bn.reset(weights))
      print(f"bn_batches={num_batches} augment={augment} {os.path.basename(run)}: " + ", ".join(
          f"{s} {running[s]['error']:.2f} -> {reset[s]['error']:.2f} "
          f"({reset[s]['error'] - running[s]['error']:+.2f})" for s in ("train", "test")),
          flush=True)


if __name__ == "__main__":
  main(sys.argv)
