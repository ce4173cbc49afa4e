"""The distributed path on a CPU: 2 or 4 logical devices under MirroredStrategy compute what
one device computes (SPEC §1: the global batch is the configured one, whatever the replicas)."""

import json
import os

import gin
import numpy as np
import pytest

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import evaluator
from lmc_tf.evaluation import interpolate
from lmc_tf import jobs
from lmc_tf.models import layers
from lmc_tf.training import runner
from lmc_tf import files
from lmc_tf import layout
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

FOUR = ["strategy.name = 'mirrored'", "strategy.num_cpu_devices = 4"]
# ResNet-50 on two: BatchNorm's statistics summed across replicas either way, at half the
# tracing of four (each replica's step is traced on its own).
TWO = ["strategy.name = 'mirrored'", "strategy.num_cpu_devices = 2"]
# ResNet-50 at 1/16 width on 28x28 MNIST: every layer of the real network, in seconds.
RESNET50 = ["model.name = 'resnet50'", "resnet_imagenet.width_multiplier = 0.0625",
            "optimizer.name = 'sgd'", "optimizer.learning_rate = 0.1",
            "optimizer.momentum = 0.9", "optimizer.weight_decay = 1e-4",
            "training.batch_size = 8", "training.steps = '1it'", "training.log_every = '1it'",
            "training.checkpoint_every = '1it'", "training.eval_batch_size = 100",
            "dataset.max_test_examples = 100"]


def _train(model_dir, bind, *bindings):
  bind(*bindings)
  trainer = runner.Trainer(str(model_dir), init_seed=1, data_order_seed=2,
                           augmentation_seed=3)
  trainer.begin()
  start = [v.numpy() for v in trainer.model.variables]  # init 1's
  results = trainer.train()
  return trainer, results, start


@pytest.mark.slow
def test_resnet50_on_two_replicas_matches_one_device(tmp_path, bind):
  one, one_results, start = _train(tmp_path / "one", bind, *RESNET50)
  two, two_results, two_start = _train(tmp_path / "two", bind, *RESNET50, *TWO)
  assert one.strategy.num_replicas_in_sync == 1 and two.strategy.num_replicas_in_sync == 2
  # Per-replica batch x replicas = the configured global batch.
  recorded = json.load(open(tmp_path / "two" / layout.RUN_CONFIG))
  assert (recorded["per_replica_batch"], recorded["replicas"], recorded["global_batch"]) == (
      4, 2, 8)
  # Every variable, BatchNorm moving statistics included, moves as on one device: BatchNorm
  # normalises by the global batch's statistics. One step: the sums run in another order,
  # and at 1/16 width (4-channel stages, channels dead after ReLU, so BatchNorm divides by
  # sqrt(eps)) later steps amplify that rounding chaotically. Updates agree to 1%.
  for w0, w0_two in zip(start, two_start):
    np.testing.assert_array_equal(w0, w0_two)
  assert len(start) == len(one.model.variables) == len(two.model.variables)
  for w0, a, b in zip(start, one.model.variables, two.model.variables):
    update = a.numpy() - w0
    np.testing.assert_allclose(b.numpy() - w0, update,
                               atol=0.01 * np.abs(update).max() + 1e-6, err_msg=a.path)
  assert one_results["train_loss"] == pytest.approx(two_results["train_loss"], rel=1e-4)
  assert one_results["test_loss"] == pytest.approx(two_results["test_loss"], rel=1e-3)


SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_imp_smoke.gin")
IMP = ["imp.levels = 2", "imp.baselines_to_run = ()", "imp.instability_levels = []",
       "evaluate.eval_examples = 300"]


def _imp(model_dir, *bindings):
  gin.clear_config()
  config.parse([SMOKE], IMP + list(bindings))
  jobs.run(str(model_dir))
  return files.read_json(os.path.join(model_dir, "imp.json"))["inits"]["0"]["0"]


@pytest.mark.slow
def test_pruning_masks_and_interpolation_do_not_depend_on_the_replica_count(tmp_path):
  one = _imp(tmp_path / "one")
  four = _imp(tmp_path / "four", *FOUR)
  strategy = distribute.get_strategy()  # the 4-replica one, still bound
  assert strategy.num_replicas_in_sync == 4
  data = data_base.get_dataset()
  for a, b in zip(one, four):
    assert a["density"] == b["density"]
    masks_a = np.load(tmp_path / "one" / a["mask_files"]["imp"])
    masks_b = np.load(tmp_path / "four" / b["mask_files"]["imp"])
    for name in masks_a.files:
      # The same kept count in every layer. Positions agree but for weights whose trained
      # magnitudes tie with the threshold to float rounding (the sums run in another order).
      assert masks_a[name].sum() == masks_b[name].sum()
      assert np.mean(masks_a[name] != masks_b[name]) < 1e-3, name

  # The last level's two trained networks interpolated, measured under 1 and 4 replicas.
  def endpoints(root, entry):
    sweeper = evaluator.Sweeper(distribute.get_strategy(), data, ("train", "test"), 300, 100)
    final = sweeper.load(str(root / entry["runs"]["imp"] / "checkpoints" / "ckpt-60"))
    return sweeper, final

  four_sweeper, four_end = endpoints(tmp_path / "four", four[-1])
  _, one_end = endpoints(tmp_path / "one", one[-1])
  halfway = interpolate.interpolate(one_end, four_end, 0.5)
  on_four = four_sweeper.measure(halfway)
  gin.clear_config()
  config.parse([SMOKE], IMP)
  one_sweeper, _ = endpoints(tmp_path / "one", one[-1])
  assert distribute.get_strategy().num_replicas_in_sync == 1
  on_one = one_sweeper.measure(halfway)
  for split in ("train", "test"):
    assert on_one[split]["error"] == pytest.approx(on_four[split]["error"], abs=1e-9)
    assert on_one[split]["loss"] == pytest.approx(on_four[split]["loss"], rel=1e-5)
  # Masks are variables like any other: pruned weights stay zero along the path.
  for layer in layers.masked_layers(four_sweeper.model):
    assert not np.any(layer.kernel.numpy()[layer.mask.numpy() == 0])
