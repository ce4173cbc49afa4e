"""The experiment binder: gin names the job (`experiment.job`), this runs it."""

import gin
import tensorflow as tf

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.experiments import rundirs

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


PLANNABLE = ("instability", "imp")  # jobs that can hand out their steps (experiments/steps.py)


@gin.configurable("experiment",
                  denylist=["model_dir", "job_override", "plan_only", "strategy"])
def run(model_dir, job_override=None, job="train", deterministic=True, plan_only=False,
        strategy=None):
  """Runs the job that gin names (or `job_override`, from --job) in `model_dir`.

  Args:
    job: 'train', 'instability', 'imp', 'evaluate' or 'report'.
    deterministic: enable TF op determinism, so equal seeds give bit-identical weights.
    plan_only: return the job's steps.Experiment without running it (instability and imp).
    strategy: the tf.distribute strategy, if not the one gin names. A plan made only to be
      listed can take the default strategy: planning places nothing on devices.
  """
  _import_jobs()
  name = job_override or job
  if name not in _JOBS:
    raise config.ConfigError(f"experiment.job={name!r}: unknown job; known: {job_names()}")
  if plan_only and name not in PLANNABLE:
    raise config.ConfigError(f"job {name!r} is a single run, not a sweep; sweeps run the "
                             f"jobs {PLANNABLE}")
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = strategy or distribute.get_strategy()
  if plan_only:
    return _JOBS[name](rundirs.absolute(model_dir), strategy, plan_only=True)
  print(f"Job {name!r} in {rundirs.absolute(model_dir)} with {type(strategy).__name__} "
        f"({strategy.num_replicas_in_sync} replica(s))", flush=True)
  return _JOBS[name](rundirs.absolute(model_dir), strategy)
