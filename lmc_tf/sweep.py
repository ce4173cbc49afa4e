r"""Fans one experiment's independent runs out over a Ray cluster (pip install .[cluster]).

  python -m lmc_tf.sweep --gin_file=gin_configs/lenet_mnist_instability.gin --model_dir=DIR
  python -m lmc_tf.sweep --gin_file=... --model_dir=gs://bucket/DIR --ray_address=auto \
      --gpus_per_run=1

The experiment (the `instability`, `imp` or `inits` job of the config) is expanded into its
steps (experiments/steps.py): parents, copies, IMP levels and baselines, the copies of the
sparse instability experiments, the networks from different inits, for every init, pair, rewind
step and level. Each step is one Ray task that asks for `--cpus_per_run`, `--gpus_per_run` or
`--tpus_per_run`; a step's inputs are task dependencies (the parent before its copies, level n
before level n + 1), so Ray runs everything else in parallel. A task parses the same config
(sent as text), finds its inputs on disk by their hash names and trains one run; a finished run
is never trained again, so a rerun of the sweep, or Ray retrying a task that died, redoes
nothing that was done. The driver then writes the experiment's summary, as the job would. Every
node must see --model_dir (a shared filesystem or gs://) and have lmc_tf installed.

Without --ray_address, ray.init() starts a local cluster on this machine's cores.
"""

import os
import socket
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

flags.DEFINE_multi_string("gin_file", [], "gin config file(s) of the experiment.")
flags.DEFINE_multi_string("gin_bindings", [], "gin bindings that override the files.")
flags.DEFINE_multi_string("gin_search_path", [], "extra directories to look up gin files in.")
flags.DEFINE_string("model_dir", None, "the experiment directory, seen by every node.")
flags.DEFINE_string("ray_address", None,
                    "an existing Ray cluster ('auto', 'ray://head:10001'); default: start a "
                    "local one on this machine.")
flags.DEFINE_integer("num_cpus", None, "CPUs of the local cluster (default: all cores).")
flags.DEFINE_float("cpus_per_run", 1, "CPUs each run asks Ray for.")
flags.DEFINE_float("gpus_per_run", 0, "GPUs each run asks Ray for.")
flags.DEFINE_float("tpus_per_run", 0, "TPU chips each run asks Ray for (Ray's 'TPU' resource).")
flags.DEFINE_bool("dry_run", False, "list the steps and their dependencies; run nothing.")
FLAGS = flags.FLAGS


def plan(config_text, model_dir, with_strategy=False):
  """The experiment of the config as a steps.Experiment, planned in this process.

  A plan to list or to summarise takes the default strategy; a task that trains plans under
  the strategy the config names (GPUs, a TPU), which its runs then train under.
  """
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from lmc_tf import config  # pylint: disable=g-import-not-at-top
  from lmc_tf import distribute  # pylint: disable=g-import-not-at-top
  from lmc_tf import jobs  # pylint: disable=g-import-not-at-top
  gin.clear_config()  # a Ray worker process runs many tasks
  config.parse([], config_text.splitlines())
  strategy = distribute.get_strategy() if with_strategy else tf.distribute.get_strategy()
  return jobs.run(model_dir, plan_only=True, strategy=strategy)


def run_step(config_text, model_dir, key, *unused_deps):
  """The body of one Ray task: plan the experiment here and run its step `key`.

  The dependencies arrive as (unused) arguments: that is how Ray orders the tasks.
  """
  from lmc_tf import config  # pylint: disable=g-import-not-at-top
  config.setup_logging(verbosity=logging.INFO)  # the worker's lines reach Ray's log stream
  started = time.time()
  trained = plan(config_text, model_dir, with_strategy=True).step(key).run()
  return {"key": key, "trained": bool(trained), "host": socket.gethostname(),
          "seconds": round(time.time() - started, 1)}


def sweep(config_text, model_dir, ray_address=None, num_cpus=None, cpus_per_run=1,
          gpus_per_run=0, tpus_per_run=0):
  """Runs every step of the experiment as a Ray task; returns (per-step results, summary)."""
  import ray  # pylint: disable=g-import-not-at-top  (optional: pip install .[cluster])
  experiment = plan(config_text, model_dir)
  # A session that is already connected (a notebook, the tests) is used and left open.
  own_session = not ray.is_initialized()
  if own_session:
    env = {"runtime_env": {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}}
    if ray_address:
      ray.init(address=ray_address, **env)
    else:
      ray.init(num_cpus=num_cpus, include_dashboard=False, **env)
  try:
    resources = {"TPU": tpus_per_run} if tpus_per_run else None
    task = ray.remote(run_step).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                        resources=resources)
    refs = {}
    for step in experiment.steps:
      refs[step.key] = task.remote(config_text, model_dir, step.key,
                                   *[refs[d] for d in step.deps])
    logging.info(f"Sweep: {len(refs)} runs submitted to Ray "
                 f"({ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
                 f"{ray.cluster_resources().get('GPU', 0):.0f} GPUs in the cluster)")
    results, pending = [], list(refs.values())
    while pending:
      done, pending = ray.wait(pending, num_returns=1)
      result = ray.get(done[0])
      results.append(result)
      logging.info(f"[{len(results)}/{len(refs)}] {result['key']}: "
                   f"{'trained' if result['trained'] else 'finished already'} on "
                   f"{result['host']} ({result['seconds']} s)")
  finally:
    if own_session:
      ray.shutdown()
  summary = experiment.finish() if experiment.finish else None
  return results, summary


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.gin_file or not FLAGS.model_dir:
    raise app.UsageError("--gin_file and --model_dir are required")
  import gin  # pylint: disable=g-import-not-at-top
  from lmc_tf import config  # pylint: disable=g-import-not-at-top
  from lmc_tf import files  # pylint: disable=g-import-not-at-top
  try:
    config.setup_logging(log_dir=FLAGS.log_dir)
    config.parse(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_path)
  except config.ConfigError as e:
    logging.error("%s", e)
    sys.exit(2)
  # The whole config as text, includes resolved: every task parses exactly this.
  config_text = gin.config_str()
  model_dir = files.absolute(FLAGS.model_dir)
  if FLAGS.dry_run:
    for step in plan(config_text, model_dir).steps:
      print(f"{step.key}" + (f"  <- {', '.join(step.deps)}" if step.deps else ""))
    return
  try:
    import ray  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    logging.error("the sweep launcher needs Ray: pip install -e '.[cluster]'")
    sys.exit(2)
  results, _ = sweep(config_text, model_dir, FLAGS.ray_address, FLAGS.num_cpus,
                     FLAGS.cpus_per_run, FLAGS.gpus_per_run, FLAGS.tpus_per_run)
  trained = sum(r["trained"] for r in results)
  print(f"\nSweep done: {trained} run(s) trained, {len(results) - trained} finished already. "
        f"Next: python -m lmc_tf.main --gin_file=... --model_dir={model_dir} --job=evaluate, "
        "then --job=report.")


if __name__ == "__main__":
  app.run(main)
