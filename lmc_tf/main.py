r"""lmc_tf entry point.

  python -m lmc_tf.main --gin_file=gin_configs/lenet_mnist.gin --model_dir=runs/lenet \
      [--gin_bindings='training.steps="2ep"'] [--job=evaluate]

Progress and warnings go through absl logging, to stderr: --verbosity=-1 keeps warnings only,
--verbosity=1 adds other libraries' INFO lines (TF's checkpoint saves), and --log_dir=DIR
writes every line to DIR/lmc_tf.INFO as well (warnings still on the terminal; everything with
--alsologtostderr). The results, the TensorBoard command and the report's tables go to stdout.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter

from absl import app
from absl import flags
from absl import logging

flags.DEFINE_multi_string("gin_file", [], "gin config file(s), parsed in order.")
flags.DEFINE_multi_string("gin_bindings", [], "gin bindings that override the files.")
flags.DEFINE_multi_string("gin_search_path", [], "extra directories to look up gin files in.")
flags.DEFINE_string("model_dir", None, "run directory: checkpoints, events, results.")
flags.DEFINE_string("job", None, "run this job instead of the config's experiment.job.")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.gin_file:
    raise app.UsageError("--gin_file is required, e.g. --gin_file=gin_configs/lenet_mnist.gin")
  if not FLAGS.model_dir:
    raise app.UsageError("--model_dir is required")
  from lmc_tf import config  # pylint: disable=g-import-not-at-top  (TF import is slow)
  from lmc_tf import files  # pylint: disable=g-import-not-at-top
  from lmc_tf import jobs  # pylint: disable=g-import-not-at-top
  from lmc_tf import layout  # pylint: disable=g-import-not-at-top
  from lmc_tf.training import runner  # pylint: disable=g-import-not-at-top
  try:
    config.setup_logging(log_dir=FLAGS.log_dir)
    config.parse(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_path)
    results = jobs.run(FLAGS.model_dir, job_override=FLAGS.job)
  except (config.ConfigError, ValueError, FileNotFoundError) as e:
    logging.error("%s", e)
    sys.exit(2)
  except runner.NonFiniteLossError as e:
    logging.error("%s", e)
    sys.exit(3)
  model_dir = files.absolute(FLAGS.model_dir)
  if layout.is_finished(model_dir):
    print(f"\nResults: {layout.summary(model_dir)}")
  if isinstance(results, dict) and "test_accuracy" in results:
    print(f"Test accuracy: {results['test_accuracy']:.2f}% after {results['final_step']} steps")
  board = layout.tensorboard_home(model_dir)[0]
  print(f"TensorBoard: tensorboard --logdir {board if files.exists(board) else model_dir}")
  if files.exists(board):
    # TensorBoard's default smoothing (0.6) bends a series of a few points, as instability
    # against k is; the URL parameter turns it off for the session.
    print("  then open http://localhost:6006/?smoothing=0 (unsmoothed)")

def run():
  app.run(main)


if __name__ == "__main__":
  run()
