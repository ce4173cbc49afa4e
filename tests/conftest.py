"""Shared fixtures. TF is set up here, before any test touches it: two logical CPU devices
(for MirroredStrategy on a CPU) and op determinism."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
tf.config.experimental.enable_op_determinism()

from lmc_tf import config  # noqa: E402

# Small, fast defaults every runner test starts from; tests add bindings on top.
TINY = [
    "dataset.name = 'mnist'",
    "dataset.max_train_examples = 600",
    "dataset.max_test_examples = 300",
    "model.name = 'lenet_300_100'",
    "lenet.hidden = (32, 16)",
    "optimizer.name = 'adam'",
    "optimizer.learning_rate = 1e-3",
    "training.batch_size = 20",
    "training.steps = '60it'",
    "training.log_every = '30it'",
    "training.checkpoint_every = '30it'",
    "training.eval_batch_size = 100",
]


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture
def bind():
  """bind(*bindings): parse the TINY config plus `bindings` into gin."""
  def _bind(*bindings):
    gin.clear_config()
    config.parse([], TINY + list(bindings))
  return _bind


@pytest.fixture
def shared_data():
  """The one way tests reach ../shared/data; skips cleanly where it is absent."""
  if not os.path.isdir(SHARED_DATA):
    pytest.skip("../shared/data is not present beside the repo")
  return SHARED_DATA


def python_env():
  """Environment for subprocesses that run lmc_tf from this checkout."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env.pop("TF_CONFIG", None)
  return env


PYTHON = sys.executable
