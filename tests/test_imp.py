"""IMP with rewinding and its baselines, end to end on the smoke config."""

import json
import os

import gin
import numpy as np
import pytest

from lmc_tf import config
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import interpolate
from lmc_tf import jobs
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import masks as masks_lib
from lmc_tf import files
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_imp_smoke.gin")
NO_INSTABILITY = ["imp.instability_levels = []"]


def _parse(*bindings):
  gin.clear_config()
  config.parse([SMOKE], list(bindings))


def _run(model_dir, job=None, *bindings):
  _parse(*bindings)
  return jobs.run(str(model_dir), job_override=job)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("imp") / "exp"
  _run(model_dir, None, *NO_INSTABILITY)
  gin.clear_config()
  return model_dir


def _model():
  _parse()
  data = data_base.get_dataset()
  return registry.build_model(input_shape=data.image_shape, num_classes=data.num_classes)


@pytest.mark.slow
def test_pruned_weights_are_zero_and_densities_follow_0_8_to_the_level(experiment):
  record = files.read_json(experiment / "imp.json")
  levels = record["inits"]["0"]["0"]
  assert [e["level"] for e in levels] == [0, 1, 2, 3]
  model = _model()
  total = record["prunable_weights"]
  for entry in levels:
    interpolate.read_variables(model, str(experiment / entry["runs"]["imp"] / "checkpoints"
                                          / "ckpt-60"))
    kept = 0
    for layer in layers.masked_layers(model):
      mask = layer.mask.numpy()
      assert not np.any(layer.kernel.numpy()[mask == 0]), (entry["level"], layer.name)
      if layer.name != "dense_out":
        kept += mask.sum()
      else:
        assert mask.all()  # LeNet's output layer is not pruned (SPEC §3)
    assert abs(kept - total * 0.8 ** entry["level"]) <= 1
    assert entry["density"] == pytest.approx(0.8 ** entry["level"], abs=1 / total)


@pytest.mark.slow
def test_baselines_keep_what_they_should(experiment):
  level = files.read_json(experiment / "imp.json")["inits"]["0"]["0"][2]
  model = _model()
  load = lambda variant: {  # noqa: E731
      k: v for k, v in np.load(experiment / level["mask_files"][variant]).items()}
  imp_masks, rand, snip = load("imp"), load("random_pruning"), load("snip")
  for name in ("dense_0", "dense_1"):
    assert rand[name].sum() == imp_masks[name].sum()  # same per-layer density
    assert not np.array_equal(rand[name], imp_masks[name])  # other positions
  assert sum(snip[n].sum() for n in ("dense_0", "dense_1")) == sum(
      imp_masks[n].sum() for n in ("dense_0", "dense_1"))
  # Random reinit: the IMP mask, not the IMP weights.
  start = lambda variant: interpolate.read_variables(  # noqa: E731
      model, str(experiment / level["runs"][variant] / "checkpoints" / "ckpt-0"))
  imp_start, reinit_start = start("imp"), start("random_reinit")
  masks_now = layers.get_masks(model)
  for name in ("dense_0", "dense_1"):
    np.testing.assert_array_equal(masks_now[name], imp_masks[name])
  assert not np.array_equal(imp_start[0], reinit_start[0])


@pytest.mark.slow
def test_summary_lists_levels_with_every_variant(experiment):
  summary = json.loads((experiment / "summary.json").read_text())
  assert [l["level"] for l in summary["levels"]] == [0, 1, 2, 3]
  for level in summary["levels"][1:]:
    assert set(level["test_accuracy"]) == {"imp", "random_pruning", "random_reinit", "snip"}
    assert 0 < level["density"] < 1
    assert level["stability_to_pruning"]["l2"] > 0
  assert summary["full_network_accuracy"] == summary["levels"][0]["test_accuracy"]["imp"]


@pytest.mark.slow
def test_rerun_skips_finished_levels(experiment, tmp_path, console):
  import shutil  # pylint: disable=g-import-not-at-top
  exp = tmp_path / "exp"
  shutil.copytree(experiment, exp)
  console()
  _run(exp, None, *NO_INSTABILITY)
  out = console()
  assert "training in" not in out
  assert out.count("finished already") >= 13  # parent(s), 4 IMP levels, 3 x 3 baselines


@pytest.mark.parametrize("binding,message", [
    ("imp.pruning_fraction = 1.0", r"\[0, 1\)"),
    ("imp.pruning_fraction = -0.2", r"\[0, 1\)"),
    ("imp.density = 1.5", "density"),
    ("imp.layers_to_ignore = ['dense_9']", "does not have"),
    ("imp.rewind_steps = [0, 500]", "beyond T"),
    ("imp.baselines_to_run = ['lottery']", "unknown"),
    ("imp.instability_rewind_steps = [20]", "not in imp.rewind_steps"),
])
def test_bad_input_is_refused_before_training(tmp_path, binding, message):
  with pytest.raises(ValueError, match=message):
    _run(tmp_path, None, binding)
  assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_instability_of_the_last_level_through_evaluate_and_report(tmp_path):
  _run(tmp_path, None, "imp.levels = 1", "imp.instability_levels = [1]",
       "imp.baselines_to_run = ['random_pruning']")
  _run(tmp_path, "evaluate", "imp.levels = 1")
  result = _run(tmp_path, "report", "imp.levels = 1")
  level = result["summary"]["levels"][1]
  assert set(level["instability"]) == {"imp", "random_pruning"}
  assert all(k == "0" for v in level["instability"].values() for k in v)
  assert (tmp_path / "report" / "imp_levels.md").exists()
  assert (tmp_path / "report" / "accuracy_vs_density.png").exists()
  for figure in ("figure5_interpolation", "figure6_instability", "figure7_test_error",
                 "figure8_train_error"):
    assert (tmp_path / "report" / f"{figure}_level01.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_several_rewind_steps_give_the_extreme_sparsity(tmp_path):
  summary = _run(tmp_path, None, "imp.levels = 2", "imp.rewind_steps = [0, 20]",
                 "imp.instability_levels = []", "imp.baselines_to_run = []")
  for level in summary["levels"]:
    assert set(level["imp_by_rewind_step"]) == {"0", "20"}
    assert level["best_rewind_step"] in (0, 20)
  extreme = summary["extreme_sparsity"]
  full = summary["full_network_accuracy"]
  matching = [l for l in summary["levels"]
              if max(l["imp_by_rewind_step"].values()) >= full - 0.2]
  assert extreme["density"] == min(l["density"] for l in matching)
  result = _run(tmp_path, "report", "imp.levels = 2", "imp.rewind_steps = [0, 20]")
  assert any(f.endswith("accuracy_vs_density.png") for f in result["files"])


@pytest.mark.slow
def test_subnetworks_rewound_to_k_are_the_ones_imp_found_rewinding_to_k(tmp_path):
  """Algorithm 2 gives (W_k, m) per k: the instability from k uses IMP's mask for k, and
  random pruning redraws that mask's per-layer densities."""
  bindings = ["imp.levels = 1", "imp.rewind_steps = [0, 20]", "imp.instability_levels = [1]",
              "imp.instability_rewind_steps = [0, 20]",
              "imp.baselines_to_run = ['random_pruning', 'random_reinit']"]
  _run(tmp_path, None, *bindings)
  record = files.read_json(tmp_path / "imp.json")
  imp_mask = {k: masks_lib.load(str(tmp_path / record["inits"]["0"][k][1]["mask_files"]["imp"]))
              for k in ("0", "20")}
  assert masks_lib.digest(imp_mask["0"]) != masks_lib.digest(imp_mask["20"])
  names = sorted(p.name for p in (tmp_path / "instability").iterdir())
  assert names == sorted(f"{v}-level01-init{s}-k{k}" for v, s in
                         (("imp", 0), ("random_pruning", 0), ("random_reinit", 10000))
                         for k in (0, 20))
  for k in ("0", "20"):
    for variant in ("imp", "random_reinit"):
      seed = 10000 if variant == "random_reinit" else 0
      manifest = files.read_json(
          tmp_path / "instability" / f"{variant}-level01-init{seed}-k{k}" / "instability.json")
      assert manifest["mask"] == masks_lib.digest(imp_mask[k])
      assert manifest["rewind_steps"] == [int(k)]
      # The copies start from the W_k of IMP's own parent run, not from a parent trained anew.
      parent = manifest["parents"][str(seed)]["run"]
      assert parent.startswith("../../runs/parent-")
      sub = tmp_path / "instability" / f"{variant}-level01-init{seed}-k{k}"
      assert (sub / parent / "checkpoints" / f"ckpt-{k}.index").exists()
      assert not list(sub.glob("runs/parent-*"))
  random = files.read_json(
      tmp_path / "instability" / "random_pruning-level01-init0-k20" / "instability.json")
  random_mask = masks_lib.load(str(tmp_path / "masks" / "init0-k20"
                                   / "random_pruning_level01.npz"))
  assert random["mask"] == masks_lib.digest(random_mask)
  for name, mask in imp_mask["20"].items():
    assert random_mask[name].sum() == mask.sum()
