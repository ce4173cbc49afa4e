"""The `train` job: one run from init_seed to T, then `summary.json`."""

import os
import time

import gin
import tensorflow as tf

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.experiments import jobs
from lmc_tf.experiments import rundirs
from lmc_tf.training import runner

SUMMARY = "summary.json"


def check_same_config(model_dir, text):
  """A run dir holds one config: refuse to resume someone else's run."""
  path = os.path.join(model_dir, config.OPERATIVE_CONFIG)
  if not tf.io.gfile.exists(path):
    return
  with tf.io.gfile.GFile(path) as f:
    old = f.read()
  if old != text:
    differ = sorted(set(old.splitlines()) ^ set(text.splitlines()))
    raise config.ConfigError(
        f"{model_dir} already holds a run of a different config (differs in: "
        f"{'; '.join(l.strip() for l in differ[:6])}). Use a fresh --model_dir.")


@jobs.register("train")
@gin.configurable("train", denylist=["model_dir", "strategy"])
def train(model_dir, strategy, init_seed=0, data_order_seed=0, augmentation_seed=0):
  """Trains the configured model once (Table 1) and writes DIR/summary.json."""
  started = time.time()
  trainer = runner.Trainer(model_dir, init_seed=init_seed, data_order_seed=data_order_seed,
                           augmentation_seed=augmentation_seed, strategy=strategy)
  chief = distribute.is_chief(strategy)
  if chief:
    check_same_config(model_dir, config.operative_config())
    config.record_operative_config(model_dir, trainer.summary_writer)
  trainer.begin()
  results = trainer.train()
  results["wall_time_s"] = round(time.time() - started, 1)
  if chief:
    rundirs.write_json_atomic(os.path.join(model_dir, SUMMARY), results)
  return results
