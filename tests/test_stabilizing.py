"""The Stabilizing paper's configs follow its Figure 2 table (with Frankle & Carbin's values where
our copy is garbled), every experiment has a smoke variant, and the LeNet stability smoke runs
end to end with its distances re-derived from the checkpoints. The CIFAR smokes run in
test_stabilizing_smoke_resnet.py and test_stabilizing_smoke_vgg.py."""

import glob
import os

import gin
import numpy as np
import pytest

from lmc_tf import config
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import distances
from lmc_tf.evaluation import interpolate
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import masks as masks_lib
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

CONFIGS = os.path.join(REPO, "gin_configs", "stabilizing")
SMOKES = os.path.join(REPO, "gin_configs", "smoke", "stabilizing")
GRID = [0, 25, 50, 100, 250, 500, 1000, 2000, 4000]

# Figure 2: model, iterations, batch, lr, warmup, drops (Frankle & Carbin 2019's values).
FIGURE_2 = {
    "resnet20_standard": ("resnet20", "30000it", 128, 0.1, "0it", ["20000it", "25000it"]),
    "resnet20_low": ("resnet20", "30000it", 128, 0.01, "0it", ["20000it", "25000it"]),
    "resnet20_warmup": ("resnet20", "30000it", 128, 0.03, "20000it", ["20000it", "25000it"]),
    "vgg19_standard": ("vgg19", "112000it", 64, 0.1, "0it", ["56000it", "84000it"]),
    "vgg19_low": ("vgg19", "112000it", 64, 0.01, "0it", ["56000it", "84000it"]),
    "vgg19_warmup": ("vgg19", "112000it", 64, 0.1, "10000it", ["56000it", "84000it"]),
}
# Figure 3's representative sparsities (% of weights remaining) and the levels that give them.
SPARSITY = {"lenet_mnist": (10.7, 10), "resnet20": (16.7, 8), "vgg19": (2.2, 17)}


def _parse(path, *bindings):
  gin.clear_config()
  config.parse([path], list(bindings))


def _query(name, default=None):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


def _experiments(row):
  return glob.glob(os.path.join(CONFIGS, f"{row}_*.gin"))


@pytest.mark.parametrize("row", sorted(FIGURE_2))
def test_cifar_rows_follow_figure_2(row):
  model, steps, batch, lr, warmup, drops = FIGURE_2[row]
  paths = [os.path.join(CONFIGS, f"{row}.gin")] + _experiments(row)
  assert len(paths) >= 2  # the row and its stability experiment at least
  for path in paths:
    _parse(path)
    assert gin.query_parameter("model.name") == model, path
    assert gin.query_parameter("training.steps") == steps
    assert gin.query_parameter("training.batch_size") == batch
    assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(lr)
    assert _query("lr_schedule.warmup", "0it") == warmup
    assert list(gin.query_parameter("lr_schedule.drops")) == drops
    assert gin.query_parameter("lr_schedule.drop_factor") == 0.1
    assert gin.query_parameter("optimizer.name") == "sgd"
    assert gin.query_parameter("optimizer.momentum") == 0.9
    assert gin.query_parameter("optimizer.weight_decay") == 1e-4
    assert gin.query_parameter("cifar10.augment") is True


def test_lenet_row_follows_figure_2():
  for path in [os.path.join(CONFIGS, "lenet_mnist.gin")] + _experiments("lenet_mnist"):
    _parse(path)
    assert gin.query_parameter("model.name") == "lenet_300_100"
    assert gin.query_parameter("training.steps") == "50000it"
    assert gin.query_parameter("training.batch_size") == 60
    assert gin.query_parameter("optimizer.name") == "adam"
    assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(1.2e-3)
    assert _query("lr_schedule.drops", []) == []
    assert _query("lr_schedule.warmup", "0it") == "0it"


def _counts(name):
  """(every weight but the masks, the kernels alone) of the CIFAR / MNIST network."""
  shape = (28, 28, 1) if name.startswith("lenet") else (32, 32, 3)
  model = registry.build_model(name=name, input_shape=shape, num_classes=10)
  weights = sum(int(np.prod(v.shape)) for v in model.weights if not v.path.endswith("/mask"))
  kernels = sum(int(np.prod(l.kernel.shape)) for l in layers.masked_layers(model))
  return weights, kernels


def test_the_networks_have_figure_2s_parameter_counts():
  """Lenet 266K; Resnet-18 274K counting BN statistics (the issue's reading of the table);
  VGG-19 20.0M in its kernels (20.05M with biases and BN)."""
  assert _counts("lenet_300_100")[0] == 266_610
  assert _counts("resnet20")[0] == 274_042
  weights, kernels = _counts("vgg19")
  assert round(kernels / 1e6, 1) == 20.0 and weights == 20_051_530


@pytest.mark.parametrize("row", ["lenet_mnist", *sorted(FIGURE_2)])
def test_stability_experiments_prune_to_figure_3s_sparsity(row):
  _parse(os.path.join(CONFIGS, f"{row}_stability.gin"))
  sparsity, levels = SPARSITY[row.split("_")[0] if row != "lenet_mnist" else row]
  assert gin.query_parameter("experiment.job") == "imp"
  assert gin.query_parameter("imp.levels") == levels
  assert 100 * 0.8 ** levels == pytest.approx(sparsity, abs=0.1)
  assert list(gin.query_parameter("imp.instability_levels")) == [levels]
  assert list(gin.query_parameter("imp.rewind_steps")) == GRID
  assert list(gin.query_parameter("imp.instability_rewind_steps")) == GRID
  assert tuple(gin.query_parameter("imp.baselines_to_run")) == ("random_pruning",)
  assert gin.query_parameter("imp.stability_baselines") is True
  # 3 inits x 6 pairs: Figure 3's 18 data-order samples.
  assert gin.query_parameter("imp.num_inits") * gin.query_parameter("imp.instability_pairs") == 18
  assert gin.query_parameter("report.stabilizing_row") == (
      "lenet" if row == "lenet_mnist" else row)


@pytest.mark.parametrize("model,k", [("resnet20", 500), ("vgg19", 100)])
def test_figure_5_and_9_experiments(model, k):
  _parse(os.path.join(CONFIGS, f"{model}_standard_rewinding.gin"))
  assert list(gin.query_parameter("imp.rewind_steps")) == [0, k]
  assert tuple(gin.query_parameter("imp.baselines_to_run")) == ()
  _parse(os.path.join(CONFIGS, f"{model}_warmup_baselines.gin"))
  assert list(gin.query_parameter("imp.rewind_steps")) == [0]
  assert set(gin.query_parameter("imp.baselines_to_run")) == {"random_reinit", "snip"}
  assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(FIGURE_2[
      f"{model}_warmup"][3])


@pytest.mark.parametrize("net,density,model", [("resnet50", 0.3, "resnet50"),
                                               ("inception_v3", 0.3, "inception_v3"),
                                               ("squeezenet", 0.5, "squeezenet")])
def test_imagenet_stability_experiments_follow_figure_6(net, density, model):
  """Figures 7 and 12: one-shot IMP at Figure 6's sparsity, random pruning beside it at
  every rewind epoch."""
  _parse(os.path.join(CONFIGS, f"{net}_imagenet_stability.gin"))
  assert gin.query_parameter("model.name") == model
  assert gin.query_parameter("imp.density") == density
  assert gin.query_parameter("imp.stability_baselines") is True
  assert tuple(gin.query_parameter("imp.baselines_to_run")) == ("random_pruning",)
  steps = list(gin.query_parameter("imp.rewind_steps"))
  assert steps[0] == "0ep" and all(s.endswith("ep") for s in steps)
  assert list(gin.query_parameter("imp.instability_rewind_steps")) == steps
  assert gin.query_parameter("report.stabilizing_row") == f"{net}_imagenet"


def test_every_stabilizing_experiment_has_a_smoke_variant():
  experiments = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(CONFIGS, "*_*.gin"))
                       if os.path.basename(p)[:-4].endswith(("_stability", "_rewinding",
                                                             "_baselines")))
  assert len(experiments) == 7 + 2 + 2 + 3  # and the ImageNet stability configs
  smokes = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SMOKES, "*_smoke.gin")))
  assert smokes == [f"{e}_smoke.gin" for e in experiments]


def test_stability_baselines_need_instability_levels(tmp_path):
  _parse(os.path.join(SMOKES, "lenet_mnist_stability_smoke.gin"),
         "imp.instability_levels = []")
  with pytest.raises(errors.ConfigError, match="stability_baselines"):
    jobs.run(str(tmp_path / "exp"))
  assert not (tmp_path / "exp" / "runs").exists()


def test_a_misspelled_stabilizing_row_fails_before_training(tmp_path):
  _parse(os.path.join(SMOKES, "lenet_mnist_stability_smoke.gin"),
         "report.stabilizing_row = 'lenet5'")
  with pytest.raises(ValueError, match="stabilizing_row='lenet5'"):
    jobs.run(str(tmp_path / "exp"))
  assert not (tmp_path / "exp" / "runs").exists()


def _masked_final(model, run_dir, step, mask_path=None):
  interpolate.read_variables(model, layout.checkpoint(run_dir, step))
  if mask_path is not None:
    layers.set_masks(model, masks_lib.load(mask_path))
  return distances.masked_trainable(model)


@pytest.mark.slow
def test_lenet_stability_smoke_end_to_end_and_its_distances(tmp_path):
  smoke = os.path.join(SMOKES, "lenet_mnist_stability_smoke.gin")
  for job in (None, "evaluate", "report"):
    _parse(smoke, *([f"experiment.job = '{job}'"] if job else []))
    jobs.run(str(tmp_path))
  summary = files.read_json(tmp_path / "summary.json")
  assert summary["stabilizing_row"] == "lenet"  # recorded by the report
  entries = {e["rewind_step"]: e for e in summary["stability"]}
  assert sorted(entries) == [0, 20]
  for entry in entries.values():
    assert entry["level"] == 1 and entry["density"] == pytest.approx(0.8, abs=1e-3)
    assert sorted(entry["variants"]) == ["imp", "random_pruning"]
    for measured in entry["variants"].values():
      for kind in ("data_order", "pruning"):
        for metric in ("l2", "angle_deg"):
          stats = measured[kind][metric]
          assert stats["n"] == 1 and stats["min"] == stats["mean"] == stats["max"] > 0
      assert measured["test_accuracy"]["n"] == 1

  # Re-derive both distances at k = 20 from the checkpoints.
  _parse(smoke)
  data = data_base.get_dataset()
  model = registry.build_model(input_shape=data.image_shape, num_classes=data.num_classes)
  record = files.read_json(tmp_path / "imp.json")["inits"]["0"]["20"]
  full, level = record[0], record[1]
  for variant in ("imp", "random_pruning"):
    mask_path = str(tmp_path / level["mask_files"][variant])
    sub = _masked_final(model, str(tmp_path / level["runs"][variant]), 60)
    through_mask = _masked_final(model, str(tmp_path / full["runs"]["imp"]), 60, mask_path)
    assert entries[20]["variants"][variant]["pruning"]["l2"]["mean"] == pytest.approx(
        distances.l2(sub, through_mask), rel=1e-6)
    assert entries[20]["variants"][variant]["pruning"]["angle_deg"]["mean"] == pytest.approx(
        distances.cosine(sub, through_mask)[1], rel=1e-5)
    sub_dir = tmp_path / "instability" / f"{variant}-level01-init0-k20"
    pair = files.read_json(sub_dir / "instability.json")["pairs"][0]
    a, b = (_masked_final(model, str(sub_dir / c), 60) for c in pair["copies"])
    assert entries[20]["variants"][variant]["data_order"]["l2"]["mean"] == pytest.approx(
        distances.l2(a, b), rel=1e-6)
  # The random subnetwork keeps IMP's per-layer densities at other positions.
  imp_mask = masks_lib.load(str(tmp_path / level["mask_files"]["imp"]))
  random_mask = masks_lib.load(str(tmp_path / level["mask_files"]["random_pruning"]))
  for name in imp_mask:
    assert imp_mask[name].sum() == random_mask[name].sum()
  report = sorted(p.name for p in (tmp_path / "report").iterdir())
  assert {"stabilizing_figure3.md", "stabilizing_figure4_l2_vs_k.png",
          "stabilizing_figure11_angle_vs_k.png"} <= set(report)
  table = (tmp_path / "report" / "stabilizing_figure3.md").read_text()
  assert "20.7" in table and "58.6" in table  # the paper's Lenet data-order distances


def check_cifar_smoke(path, tmp_path, cifar10_sample):
  """A CIFAR smoke config of the Stabilizing paper: experiment, evaluate (when it has
  subnetwork instability experiments) and report, and what each must produce."""
  name = os.path.basename(path)
  jobs_to_run = (None, "evaluate", "report") if "_stability" in name else (None, "report")
  for job in jobs_to_run:
    _parse(path, f"cifar10.path = '{cifar10_sample.npz}'",
           *([f"experiment.job = '{job}'"] if job else []))
    jobs.run(str(tmp_path))
  summary = files.read_json(tmp_path / "summary.json")
  report = {p.name for p in (tmp_path / "report").iterdir()}
  levels = gin.query_parameter("imp.levels")
  assert [l["level"] for l in summary["levels"]] == list(range(levels + 1))
  if "_stability" in name:
    entries = {e["rewind_step"]: e for e in summary["stability"]}
    assert sorted(entries) == list(gin.query_parameter("imp.instability_rewind_steps"))
    for entry in entries.values():
      assert sorted(entry["variants"]) == ["imp", "random_pruning"]
      for measured in entry["variants"].values():
        assert {"data_order", "pruning", "test_accuracy"} <= set(measured)
        assert measured["data_order"]["l2"]["mean"] > 0 and measured["pruning"]["l2"]["mean"] > 0
    assert {"stabilizing_figure3.md", "stabilizing_figure3.csv",
            "stabilizing_figure4_l2_vs_k.png", "stabilizing_figure11_angle_vs_k.png"} <= report
  elif "_rewinding" in name:
    assert all(sorted(l["imp_by_rewind_step"]) == ["0", "2"] for l in summary["levels"])
    assert "stabilizing_figure5_reset_vs_rewound.png" in report
  else:
    for level in summary["levels"][1:]:
      assert {"imp", "random_reinit", "snip"} <= set(level["test_accuracy"])
    assert "stabilizing_figure9_imp_reinit_snip.png" in report
