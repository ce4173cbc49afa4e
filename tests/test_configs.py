"""Every gin config of the repo parses, names only known configurables, and picks a job."""

import glob
import os

import gin
import pytest

from lmc_tf import config
from lmc_tf import jobs
from tests.conftest import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "gin_configs", "**", "*.gin"), recursive=True))


# Shared overlays that experiment configs include; they pick no job of their own.
OVERLAYS = {os.path.join(REPO, "gin_configs", "smoke", name)
            for name in ("cifar10_smoke.gin", "imagenet_smoke.gin")} | {
                os.path.join(REPO, "gin_configs", "bn_modes.gin")}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_config_parses_and_names_a_job(path):
  config.parse([path])
  if path not in OVERLAYS:
    assert gin.query_parameter("experiment.job") in jobs.job_names()


def test_paper_instability_config_follows_the_paper():
  config.parse([os.path.join(REPO, "gin_configs", "lenet_mnist_instability.gin")])
  assert gin.query_parameter("training.steps") == "24000it"
  assert gin.query_parameter("training.batch_size") == 60
  assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(1.2e-3)
  assert list(gin.query_parameter("instability.rewind_steps")) == [0, 25, 100, 500, 2000]
  assert gin.query_parameter("instability.num_inits") == 3
  assert gin.query_parameter("instability.num_pairs") == 3
  assert gin.query_parameter("evaluate.num_alphas") == 30


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_inits_configs_follow_git_re_basin_width_study(width):
  """ResNet-20 on CIFAR-10 from different inits, trained as resnet20_standard.gin, at the
  widths of Git Re-Basin's width study; each smoke variant at 1/4 of its width."""
  name = "resnet20_standard" if width == 1 else f"resnet20x{width}_standard"
  config.parse([os.path.join(REPO, "gin_configs", f"{name}_inits.gin")])
  assert gin.query_parameter("experiment.job") == "inits"
  assert gin.query_parameter("model.name") == "resnet20"
  assert gin.query_parameter("resnet_cifar.width_multiplier") == width
  assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(0.1)
  assert gin.query_parameter("training.steps") == "63000it"
  assert gin.query_parameter("inits.num_inits") == 3
  assert gin.query_parameter("inits.init_seed") == 0
  assert tuple(gin.query_parameter("evaluate.bn_modes")) == ("interpolate", "reset", "repair")
  assert tuple(gin.query_parameter("evaluate.splits")) == ("train", "test")
  gin.clear_config()
  config.parse([os.path.join(REPO, "gin_configs", "smoke", f"{name}_inits_smoke.gin")])
  assert gin.query_parameter("resnet_cifar.width_multiplier") == 0.25 * width
  assert gin.query_parameter("inits.num_inits") == 2


def test_lenet_inits_config_trains_as_table_1():
  config.parse([os.path.join(REPO, "gin_configs", "lenet_mnist_inits.gin")])
  assert gin.query_parameter("experiment.job") == "inits"
  assert gin.query_parameter("model.name") == "lenet_300_100"
  assert gin.query_parameter("training.steps") == "24000it"
  assert gin.query_parameter("training.batch_size") == 60
  assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(1.2e-3)
  assert gin.query_parameter("inits.num_inits") == 3
  assert tuple(gin.query_parameter("evaluate.bn_modes")) == ("interpolate", "reset", "repair")
  assert gin.query_parameter("evaluate.num_alphas") == 30


NUM_TRAIN = {"mnist": 60000, "cifar10": 50000, "imagenet2012": 1281167}


@pytest.mark.parametrize("path", [p for p in CONFIGS if p not in OVERLAYS],
                         ids=lambda p: os.path.relpath(p, REPO))
def test_config_logs_a_curve_not_a_point(path):
  """TensorBoard shows a training curve for every run: at least 10 points over T (2 for the
  smoke configs, whose T is a few dozen iterations)."""
  from lmc_tf.training import runner  # pylint: disable=g-import-not-at-top
  config.parse([path])
  try:
    gin.query_parameter("training.steps")
  except ValueError:
    pytest.skip("an overlay: binds no T")
  hparams = runner.TrainingHParams()
  try:
    num_train = gin.query_parameter("dataset.max_train_examples")
  except ValueError:
    num_train = None
  num_train = num_train or NUM_TRAIN[gin.query_parameter("dataset.name")]
  schedule = runner.Schedule.resolve(hparams, num_train)
  points = schedule.total // schedule.log_every
  assert points >= (2 if "smoke" in path else 10), (schedule.total, schedule.log_every)
