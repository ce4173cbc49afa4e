"""The job table and the experiment binder: gin names the job (`experiment.job`), this runs it.

A static table, as open_lth's runner_registry: the job modules do not import it.
"""

from absl import logging
import gin
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf import files
from lmc_tf.errors import ConfigError
from lmc_tf.experiments import common
from lmc_tf.experiments import evaluate
from lmc_tf.experiments import imp
from lmc_tf.experiments import inits
from lmc_tf.experiments import instability
from lmc_tf.experiments import report
from lmc_tf.experiments import train

JOBS = {
    "train": train.train,
    "instability": instability.instability,
    "imp": imp.imp,
    "inits": inits.inits,
    "evaluate": evaluate.evaluate,
    "report": report.report,
}
# Jobs that refuse a directory holding another config's experiment (report only reads).
CHECKED = ("train", "instability", "imp", "inits", "evaluate")
# Jobs that can hand out their steps (experiments/steps.py).
PLANNABLE = ("instability", "imp", "inits")


def job_names():
  return sorted(JOBS)


@gin.configurable("experiment",
                  denylist=["model_dir", "job_override", "plan_only", "strategy"])
def run(model_dir, job_override=None, job="train", deterministic=True, plan_only=False,
        strategy=None):
  """Runs the job that gin names (or `job_override`, from --job) in `model_dir`.

  Args:
    job: 'train', 'instability', 'imp', 'inits', 'evaluate' or 'report'.
    deterministic: enable TF op determinism, so equal seeds give bit-identical weights.
    plan_only: return the job's steps.Experiment without running it (instability, imp and inits).
    strategy: the tf.distribute strategy, if not the one gin names. A plan made only to be
      listed can take the default strategy: planning places nothing on devices.
  """
  name = job_override or job
  if name not in JOBS:
    raise ConfigError(f"experiment.job={name!r}: unknown job; known: {job_names()}")
  if plan_only and name not in PLANNABLE:
    raise ConfigError(f"job {name!r} is a single run, not a sweep; sweeps run the "
                      f"jobs {PLANNABLE}")
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = strategy or distribute.get_strategy()
  model_dir = files.absolute(model_dir)
  files.check_writable_dir(model_dir, "--model_dir")
  if name in CHECKED:
    common.check_directory(model_dir, name)
  if plan_only:
    return JOBS[name](model_dir, strategy, plan_only=True)
  logging.info(f"Job {name!r} in {model_dir} with {type(strategy).__name__} "
               f"({strategy.num_replicas_in_sync} replica(s))")
  return JOBS[name](model_dir, strategy)
