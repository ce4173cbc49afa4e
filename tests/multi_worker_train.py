"""One worker of a MultiWorkerMirroredStrategy run (TF_CONFIG names the cluster).

  python tests/multi_worker_train.py MODEL_DIR OUT.npz BINDING...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lmc_tf import config  # noqa: E402
from lmc_tf import distribute  # noqa: E402
from lmc_tf.training import runner  # noqa: E402


def main(model_dir, out, *bindings):
  config.parse([], bindings)
  strategy = distribute.get_strategy()  # before any other TF op
  tf.config.experimental.enable_op_determinism()
  assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
  trainer = runner.Trainer(model_dir, init_seed=1, data_order_seed=2, strategy=strategy)
  trainer.train()
  np.savez(out, *trainer.model.get_weights())


if __name__ == "__main__":
  main(*sys.argv[1:])
