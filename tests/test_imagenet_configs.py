"""The ImageNet configs follow Table 1, and every ImageNet smoke config runs end to end: its
job (train, instability or imp), then --job=evaluate and --job=report, on the tiny
imagenet2012 of tests/conftest.py (`imagenet_sample`).

One smoke run costs seconds (ResNet-50 about 6, Inception-v3 about 10, SqueezeNet about 3 on one
CPU core), nearly
all of it building, tracing and optimizing the network's train and eval functions, so the smoke
configs train as few runs as they can.
"""

import glob
import math
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import config
from lmc_tf.data import base
from lmc_tf.data import pipeline
from lmc_tf.evaluation import interpolate
from lmc_tf.experiments import imp_settings
from lmc_tf import jobs
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import masks as masks_lib
from lmc_tf.training import runner
from lmc_tf.training import schedules
from lmc_tf import files
from lmc_tf import layout
from tests.conftest import REPO

CONFIGS = os.path.join(REPO, "gin_configs")
NETWORKS = ("resnet50_imagenet", "inception_v3_imagenet", "squeezenet_imagenet")
EXPERIMENTS = ("", "_instability", "_imp")

# Table 1's ImageNet rows and the Stabilizing paper's Figure 6 SqueezeNet row: model,
# preprocessing, optimizer, lr, warmup, drops, T, weight decay, decay_to, decay, IMP density.
TABLE_1 = {
    "resnet50_imagenet": ("resnet50", "resnet", "sgd", 0.4, "5ep", ["30ep", "60ep", "80ep"],
                          "90ep", 1e-4, None, "linear", 0.3),
    "inception_v3_imagenet": ("inception_v3", "inception", "sgd", 0.03, "0it", [], "171ep",
                              0.0, 0.005, "linear", 0.3),
    "squeezenet_imagenet": ("squeezenet", "resnet", "rmsprop", 0.66, "0it", [], "150ep", 0.0,
                            6.6e-5, "exponential", 0.5),
}
STEPS_PER_EPOCH = 1251  # 1,281,167 training images in batches of 1024


@pytest.fixture(autouse=True, scope="module")
def no_graph_optimizer():
  """Grappler optimizes every new tf.function graph on its first call (1-2 s for these
  networks), and every smoke run builds new ones; switched off here, it saves ~15% of the
  module's time. It changes how TF executes the graphs, not the code under test."""
  before = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  yield
  tf.config.optimizer.set_experimental_options(before)


def _query(name, default=None):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


def _parse(path, bindings=()):
  gin.clear_config()
  config.parse([path], list(bindings))


@pytest.mark.parametrize("network", NETWORKS)
def test_imagenet_configs_follow_table_1(network):
  (model, preprocessing, optimizer, lr, warmup, drops, steps, weight_decay, decay_to, decay,
   density) = TABLE_1[network]
  for experiment in EXPERIMENTS:
    _parse(os.path.join(CONFIGS, f"{network}{experiment}.gin"))
    assert gin.query_parameter("experiment.job") == {
        "": "train", "_instability": "instability", "_imp": "imp"}[experiment]
    assert gin.query_parameter("dataset.name") == "imagenet2012"
    assert gin.query_parameter("model.name") == model
    assert gin.query_parameter("imagenet.preprocessing") == preprocessing
    assert _query("imagenet.image_size") is None  # the preprocessing's own: 224 or 299
    assert gin.query_parameter("optimizer.name") == optimizer
    assert gin.query_parameter("optimizer.momentum") == 0.9
    assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(lr)
    assert _query("optimizer.weight_decay", 0.0) == weight_decay
    assert gin.query_parameter("training.batch_size") == 1024
    assert gin.query_parameter("training.steps") == steps
    assert _query("lr_schedule.warmup", "0it") == warmup
    assert list(_query("lr_schedule.drops", [])) == drops
    assert _query("lr_schedule.decay_to") == decay_to
    assert _query("lr_schedule.decay", "linear") == decay
    if experiment == "_imp":
      assert gin.query_parameter("imp.density") == density
      assert gin.query_parameter("imp.num_inits") == 3
      assert tuple(gin.query_parameter("imp.baselines_to_run")) == imp_settings.BASELINES
    if experiment == "_instability":
      assert (gin.query_parameter("instability.num_inits"),
              gin.query_parameter("instability.num_pairs")) == (3, 3)
      assert gin.query_parameter("evaluate.num_alphas") == 30
  if model == "inception_v3":
    assert gin.query_parameter("inception_v3.aux_logits") is True
    assert gin.query_parameter("inception_v3.aux_loss_weight") == 0.4
  if model == "squeezenet":  # the TPU reference's TF1 RMSPropOptimizer
    assert (gin.query_parameter("optimizer.rho"), gin.query_parameter("optimizer.epsilon"),
            gin.query_parameter("squeezenet.dropout_rate")) == (0.9, 1.0, 0.5)
    # Rewinding in epochs, past the paper's epoch 10 of 150.
    for name in ("imp.rewind_steps", "imp.instability_rewind_steps",
                 "instability.rewind_steps"):
      _parse(os.path.join(CONFIGS, f"{network}_{name.split('.')[0]}.gin"))
      assert list(gin.query_parameter(name)) == [f"{k}ep" for k in (0, 1, 2, 4, 6, 8, 10, 12)]


def _learning_rates(network, steps):
  """The learning rate of the network's config at each of `steps`."""
  _parse(os.path.join(CONFIGS, f"{network}.gin"))
  hparams = runner.TrainingHParams()
  total = schedules.parse_steps(hparams.steps, STEPS_PER_EPOCH)
  schedule = schedules.make_schedule(gin.query_parameter("optimizer.learning_rate"),
                                     STEPS_PER_EPOCH, total)  # the lr_schedule bindings
  return [float(schedule(s)) for s in steps]


def test_imagenet_learning_rate_schedules():
  assert pipeline.steps_per_epoch(1_281_167, 1024) == STEPS_PER_EPOCH
  epoch = STEPS_PER_EPOCH
  # ResNet-50: linear warmup to 0.4 over 5 epochs, x0.1 at epochs 30, 60 and 80 of 90.
  steps = [0, epoch, 5 * epoch, 30 * epoch - 1, 30 * epoch, 60 * epoch - 1, 60 * epoch,
           80 * epoch, 90 * epoch]
  expected = [0, 0.08, 0.4, 0.4, 0.04, 0.04, 0.004, 0.0004, 0.0004]
  np.testing.assert_allclose(_learning_rates("resnet50_imagenet", steps), expected, rtol=1e-5)
  # Inception-v3: 0.03 decaying linearly to 0.005 over 171 epochs.
  total = 171 * epoch
  np.testing.assert_allclose(
      _learning_rates("inception_v3_imagenet", [0, total // 2, total - 1, total]),
      [0.03, 0.03 - 0.025 * (total // 2) / total, 0.005 + 0.025 / total, 0.005], rtol=1e-5)
  # SqueezeNet: 0.66 decaying exponentially to 6.6e-5 over 150 epochs, x0.1 every 37.5.
  total = 150 * epoch
  np.testing.assert_allclose(
      _learning_rates("squeezenet_imagenet", [0, total // 4, total // 2, total]),
      [0.66, 0.066, 0.0066, 6.6e-5], rtol=1e-4)


def _smoke(name):
  return os.path.join(CONFIGS, "smoke", f"{name}_smoke.gin")


def test_every_imagenet_experiment_has_a_smoke_variant():
  experiments = sorted(os.path.basename(p)[:-4] for n in NETWORKS
                       for p in glob.glob(os.path.join(CONFIGS, f"{n}*.gin")))
  assert experiments == sorted(n + e for n in NETWORKS for e in EXPERIMENTS)
  smokes = sorted(os.path.basename(p)[:-len("_smoke.gin")] for n in NETWORKS
                  for p in glob.glob(os.path.join(CONFIGS, "smoke", f"{n}*_smoke.gin")))
  assert smokes == experiments


def _run(name, model_dir, data_dir, job=None):
  bindings = [f"imagenet.data_dir = '{data_dir}'"]
  if job:
    bindings.append(f"experiment.job = '{job}'")
  _parse(_smoke(name), bindings)
  return jobs.run(str(model_dir))


def _check_run(run_dir, steps):
  """A finished smoke run: summary.json with a test accuracy, and the run config of a
  streamed dataset."""
  summary = files.read_json(os.path.join(run_dir, "summary.json"))
  assert summary["final_step"] == steps
  assert 0 <= summary["test_accuracy"] <= 100 and math.isfinite(summary["test_loss"])
  run_config = files.read_json(os.path.join(run_dir, layout.RUN_CONFIG))
  assert run_config["data_order_depends_on_input_pipelines"] is True
  assert run_config["global_batch"] == 8
  return summary


def _kernels(model, checkpoint, prefix):
  interpolate.read_variables(model, checkpoint)
  return {l.name: l.kernel.numpy() for l in layers.masked_layers(model)
          if l.name.startswith(prefix)}


@pytest.mark.slow
@pytest.mark.parametrize("network", NETWORKS)
def test_train_smoke_runs_end_to_end(network, tmp_path, imagenet_sample):
  result = _run(network, tmp_path, imagenet_sample)
  summary = _check_run(str(tmp_path), 6)
  assert summary["test_accuracy"] == result["test_accuracy"]
  assert os.path.exists(tmp_path / layout.OPERATIVE_CONFIG)
  if network != "inception_v3_imagenet":
    return
  # The auxiliary classifier trains (its kernels move from W_0)...
  data = base.get_dataset()
  assert data.image_shape == (75, 75, 3)
  model = registry.build_model(input_shape=data.image_shape, num_classes=data.num_classes)
  start = _kernels(model, str(tmp_path / "checkpoints" / "ckpt-0"), "aux_")
  end = _kernels(model, str(tmp_path / "checkpoints" / "ckpt-6"), "aux_")
  assert sorted(start) == ["aux_conv0", "aux_conv1", "aux_dense_out"]
  for name in start:
    assert not np.allclose(start[name], end[name]), name
  # ...but the test loss is the main head's alone (the model now holds W_T).
  losses, count = {"main": 0.0, "aux": 0.0}, 0.0
  for images, labels, weights in data.eval_batches("test", 32):
    for head, logits in zip(losses, registry.split_outputs(model(images, training=False))):
      losses[head] += float(tf.reduce_sum(
          weights * tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))
    count += float(tf.reduce_sum(weights))
  assert count == 32
  assert summary["test_loss"] == pytest.approx(losses["main"] / count, rel=1e-4)
  assert abs(losses["aux"] - losses["main"]) / count > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("network", NETWORKS)
def test_instability_smoke_runs_end_to_end(network, tmp_path, imagenet_sample):
  name = f"{network}_instability"
  result = _run(name, tmp_path, imagenet_sample)
  assert result["pairs"] == 1
  manifest = files.read_json(tmp_path / "instability.json")
  (k,) = manifest["rewind_steps"]
  (pair,) = manifest["pairs"]
  for run in pair["copies"]:
    _check_run(str(tmp_path / run), 6)
  splits = tuple(gin.query_parameter("evaluate.splits"))
  summary = _run(name, tmp_path, imagenet_sample, job="evaluate")
  assert summary["pairs_done"] == summary["pairs_total"] == 1
  assert summary == files.read_json(tmp_path / "summary.json")
  for split in splits:
    assert list(summary[split]) == [str(k)]
    assert math.isfinite(summary[split][str(k)]["instability_mean"])
  metrics = files.read_json(tmp_path / "pairs" / pair["id"] / "metrics.json")
  assert len(metrics["alphas"]) == 3
  _run(name, tmp_path, imagenet_sample, job="report")
  report = sorted(p.name for p in (tmp_path / "report").iterdir())
  assert {"figure2_interpolation.png", "figure3_instability.png", "instability.md",
          "instability.csv"} <= set(report)


@pytest.mark.slow
@pytest.mark.parametrize("network", NETWORKS)
def test_imp_smoke_runs_end_to_end(network, tmp_path, imagenet_sample):
  name = f"{network}_imp"
  summary = _run(name, tmp_path, imagenet_sample)
  baselines = tuple(gin.query_parameter("imp.baselines_to_run"))
  assert summary == files.read_json(tmp_path / "summary.json")
  record = files.read_json(tmp_path / layout.IMP_RECORD)
  (k,) = record["rewind_steps"]
  full, pruned = record["inits"]["0"][str(k)]
  assert (full["level"], full["density"]) == (0, 1.0)
  density = gin.query_parameter("imp.density")
  assert pruned["level"] == 1 and pruned["density"] == pytest.approx(density, abs=1e-4)
  assert sorted(pruned["runs"]) == sorted(("imp",) + baselines)
  for run in list(full["runs"].values()) + list(pruned["runs"].values()):
    _check_run(str(tmp_path / run), 6)
  assert math.isfinite(pruned["stability_to_pruning"]["l2"])
  for level in summary["levels"]:
    assert all(0 <= a <= 100 for a in level["test_accuracy"].values())
  masks = masks_lib.load(str(tmp_path / pruned["mask_files"]["imp"]))
  assert masks_lib.density(masks, record["layers_to_ignore"]) == pytest.approx(density,
                                                                               abs=1e-4)
  if network == "inception_v3_imagenet":  # the auxiliary classifier is pruned like the rest
    assert {"aux_conv0", "aux_conv1", "aux_dense_out"} <= set(masks)
    assert masks["aux_dense_out"].mean() < 1
    assert not record["layers_to_ignore"]
  # Without instability experiments of its subnetworks, there is nothing to interpolate.
  with pytest.raises(FileNotFoundError, match="instability_levels"):
    _run(name, tmp_path, imagenet_sample, job="evaluate")
  _run(name, tmp_path, imagenet_sample, job="report")
  report = sorted(p.name for p in (tmp_path / "report").iterdir())
  assert {"accuracy_vs_density.png", "imp_levels.md", "imp_levels.csv"} <= set(report)
