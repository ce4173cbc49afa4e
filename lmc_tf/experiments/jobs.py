"""The experiment binder: gin names the job (`experiment.job`), this runs it."""

import os

import gin
import tensorflow as tf

from lmc_tf import config
from lmc_tf import distribute

_JOBS = {}


def register(name):
  def wrap(fn):
    _JOBS[name] = fn
    return fn
  return wrap


def job_names():
  _import_jobs()
  return sorted(_JOBS)


def _import_jobs():
  # pylint: disable=g-import-not-at-top,unused-import
  from lmc_tf.evaluation import evaluator  # noqa: F401
  from lmc_tf.experiments import imp  # noqa: F401
  from lmc_tf.experiments import instability  # noqa: F401
  from lmc_tf.experiments import report  # noqa: F401
  from lmc_tf.experiments import train  # noqa: F401


@gin.configurable("experiment", denylist=["model_dir", "job_override"])
def run(model_dir, job_override=None, job="train", deterministic=True):
  """Runs the job that gin names (or `job_override`, from --job) in `model_dir`.

  Args:
    job: 'train', 'instability', 'imp', 'evaluate' or 'report'.
    deterministic: enable TF op determinism, so equal seeds give bit-identical weights.
  """
  _import_jobs()
  name = job_override or job
  if name not in _JOBS:
    raise config.ConfigError(f"experiment.job={name!r}: unknown job; known: {job_names()}")
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = distribute.get_strategy()
  print(f"Job {name!r} in {os.path.abspath(model_dir)} with {type(strategy).__name__} "
        f"({strategy.num_replicas_in_sync} replica(s))", flush=True)
  return _JOBS[name](os.path.abspath(model_dir), strategy)
