"""The `train` job: one run from init_seed to T, then `summary.json`."""

from absl import logging
import gin

from lmc_tf import distribute
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.experiments import common
from lmc_tf.training import runner


@gin.configurable("train", denylist=["model_dir", "strategy"])
def train(model_dir, strategy, init_seed=0, data_order_seed=0, augmentation_seed=0):
  """Trains the configured model once (Table 1) and writes DIR/summary.json (its wall_time_s
  sums every process that trained the run: runner.Trainer keeps it across kills).

  The job table has already refused a DIR that holds another config's run.
  """
  for name, seed in (("init_seed", init_seed), ("data_order_seed", data_order_seed),
                     ("augmentation_seed", augmentation_seed)):
    errors.non_negative_int(seed, f"train.{name}")
  chief = distribute.is_chief(strategy)
  with common.owned(model_dir, chief):
    if layout.is_finished(model_dir):
      # summary.json is written once: a rerun of a finished run reads it, changes nothing.
      logging.info(f"{model_dir} holds a finished run: nothing to do")
      return files.read_json(layout.summary(model_dir))
    trainer = runner.Trainer(model_dir, init_seed=init_seed, data_order_seed=data_order_seed,
                             augmentation_seed=augmentation_seed, strategy=strategy)
    if chief:
      common.record_experiment(model_dir, "train")
      common.write_operative_config(model_dir, summary_writer=trainer.summary_writer)
    trainer.begin()
    results = trainer.train()
    if chief:
      files.write_json_atomic(layout.summary(model_dir), results)
  return results
