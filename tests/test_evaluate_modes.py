"""The evaluator with BN modes, alpha beyond the endpoints and a refined peak, end to end on
the LeNet smoke experiment: the paper's files stay as they were, every mode has its own, and
a killed sweep resumes per mode and per alpha."""

import json
import os
import shutil

import gin
import pytest

from lmc_tf import config
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf import layout
from lmc_tf.evaluation import evaluator
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_instability_smoke.gin")
RESNET_SMOKE = os.path.join(REPO, "gin_configs", "smoke",
                            "resnet20_standard_instability_smoke.gin")
ALL = "evaluate.bn_modes = ('interpolate', 'reset', 'repair')"
EXTRAS = ("evaluate.alpha_range = (-0.25, 1.25)", "evaluate.refine_peak = True",
          "evaluate.bn_batches = 2", "evaluate.bn_batch_size = 50")


def _run(model_dir, job, *bindings, gin_file=SMOKE):
  gin.clear_config()
  config.parse([gin_file], list(bindings))
  try:
    return jobs.run(str(model_dir), job_override=job)
  finally:
    gin.clear_config()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("modes") / "exp"
  _run(model_dir, "instability")
  return model_dir


def _copy(src, tmp_path, name="exp"):
  shutil.copytree(src, tmp_path / name)
  return tmp_path / name


def _pairs(model_dir):
  return [p["id"] for p in files.read_json(layout.manifest(str(model_dir)))["pairs"]]


def _read(path):
  with open(path) as f:
    return json.load(f)


def test_plan_extends_the_grid_at_its_spacing():
  plan = evaluator.Plan(alphas=(0.0, 0.25, 0.5, 0.75, 1.0), splits=("test",),
                        alpha_range=(-0.5, 1.3))
  assert plan.extended_alphas == pytest.approx([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
  assert evaluator.Plan(alphas=(0.0, 1.0), splits=("test",)).settings() == {}


def test_every_mode_has_its_files_and_the_papers_are_unchanged(trained, tmp_path):
  plain = _copy(trained, tmp_path, "plain")
  _run(plain, "evaluate")
  modes = _copy(trained, tmp_path, "modes")
  summary = _run(modes, "evaluate", ALL, "evaluate.bn_batches = 2",
                 "evaluate.bn_batch_size = 50")
  for pair in _pairs(modes):
    d = layout.pair_dir(str(modes), pair)
    # The paper's curve and metrics are those of an evaluator run without modes.
    for name in (layout.CURVE, layout.METRICS):
      assert _read(os.path.join(d, name)) == _read(os.path.join(
          layout.pair_dir(str(plain), pair), name))
    assert layout.metrics_modes(str(modes), pair) == ["interpolate", "repair", "reset"]
    interp = _read(layout.metrics(str(modes), pair))
    repair = _read(layout.metrics(str(modes), pair, "repair"))
    reset = _read(layout.metrics(str(modes), pair, "reset"))
    assert repair["bn_mode"] == "repair" and reset["bn_mode"] == "reset"
    assert "bn_mode" not in interp
    for split in ("train", "test"):
      # LeNet has no BN: 'reset' is the paper's curve; REPAIR leaves the endpoints alone.
      assert reset[split]["errors"] == interp[split]["errors"]
      for end in (0, -1):
        assert repair[split]["errors"][end] == interp[split]["errors"][end]
        assert repair[split]["losses"][end] == interp[split]["losses"][end]
    assert repair["distances"] == interp["distances"]
  assert set(summary["bn_modes"]) == {"reset", "repair"}
  assert summary["bn_modes"]["reset"]["test"] == summary["test"]


def test_extended_curve_and_refined_peak(trained, tmp_path):
  model_dir = _copy(trained, tmp_path)
  _run(model_dir, "evaluate", "evaluate.bn_modes = ('interpolate', 'repair')", *EXTRAS)
  for pair in _pairs(model_dir):
    for mode in ("interpolate", "repair"):
      m = _read(layout.metrics(str(model_dir), pair, mode))
      assert m["alpha_range"] == [-0.25, 1.25] and m["refine_peak"] is True
      assert m["extended_alphas"] == pytest.approx(
          [-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
      for split in ("train", "test"):
        s = m[split]
        # the grid's points are the extended curve's at the same alphas
        assert s["extended_errors"][1:6] == s["errors"]
        assert 0.0 <= s["peak_alpha"] <= 1.0
        assert s["peak_error"] >= max(s["errors"])
        assert s["refined_instability"] == pytest.approx(
            s["peak_error"] - s["endpoint_error_mean"])
        assert s["refined_instability"] >= s["instability"]
      curve = _read(layout.curve(str(model_dir), pair, mode=mode))
      # 2 extended alphas + refinement: 4 halvings of 1/4 reach 1/64 > 1/240, so 6 rounds
      assert 2 < len(curve["extra"]) <= 2 + 2 * 2 * 6


def test_a_killed_sweep_resumes_per_mode_and_alpha(trained, tmp_path):
  model_dir = _copy(trained, tmp_path)
  bindings = (ALL, *EXTRAS)
  _run(model_dir, "evaluate", *bindings)
  pair = _pairs(model_dir)[0]
  before = {m: _read(layout.metrics(str(model_dir), pair, m)) for m in ("reset", "repair")}
  # As if killed during the repair sweep: its metrics not written, two points not measured.
  os.remove(layout.metrics(str(model_dir), pair, "repair"))
  curve_path = layout.curve(str(model_dir), pair, mode="repair")
  curve = _read(curve_path)
  del curve["points"]["2"]
  dropped = sorted(curve["extra"])[0]
  del curve["extra"][dropped]
  files.write_json_atomic(curve_path, curve)
  reset_mtime = os.path.getmtime(layout.metrics(str(model_dir), pair, "reset"))
  _run(model_dir, "evaluate", *bindings)
  assert os.path.getmtime(layout.metrics(str(model_dir), pair, "reset")) == reset_mtime
  after = _read(layout.metrics(str(model_dir), pair, "repair"))
  assert after == before["repair"]
  assert _read(curve_path)["extra"].keys() >= {dropped}


@pytest.mark.parametrize("binding, match", [
    ("evaluate.bn_modes = ('interpolate', 'renorm')", "evaluate.bn_modes"),
    ("evaluate.alpha_range = (0.2, 1.0)", "evaluate.alpha_range"),
    ("evaluate.refine_peak = 'yes'", "evaluate.refine_peak"),
    ("evaluate.bn_batches = 0", "evaluate.bn_batches"),
    ("evaluate.num_alphas = 'x'", "evaluate.num_alphas"),
    ("evaluate.num_alphas = 1", "evaluate.num_alphas"),
    ("evaluate.eval_examples = -1", "evaluate.eval_examples"),
    ("evaluate.batch_size = 0", "evaluate.batch_size"),
    ("evaluate.bn_augment = 'no'", "evaluate.bn_augment"),
])
def test_bad_evaluate_bindings_are_named(trained, tmp_path, binding, match):
  model_dir = _copy(trained, tmp_path)
  with pytest.raises(errors.ConfigError, match=match):
    _run(model_dir, "evaluate", binding, "evaluate.bn_modes = ('reset',)"
         if "bn_batches" in binding else "evaluate.splits = ('test',)")
  assert not os.path.exists(layout.metrics(str(model_dir), _pairs(model_dir)[0], "reset"))


@pytest.mark.slow
def test_resnet_modes_end_to_end(cifar10_sample, tmp_path):
  bindings = (f"cifar10.path = '{cifar10_sample.npz}'",)
  _run(tmp_path / "exp", "instability", *bindings, "instability.rewind_steps = [2]",
       "instability.reset_schedule = False", gin_file=RESNET_SMOKE)
  summary = _run(tmp_path / "exp", "evaluate", *bindings, ALL, "evaluate.bn_batches = 2",
                 gin_file=RESNET_SMOKE)
  assert set(summary["bn_modes"]) == {"reset", "repair"}
  pair = _pairs(tmp_path / "exp")[0]
  interp = _read(layout.metrics(str(tmp_path / "exp"), pair))
  repair = _read(layout.metrics(str(tmp_path / "exp"), pair, "repair"))
  for split in ("train", "test"):
    assert repair[split]["errors"][0] == interp[split]["errors"][0]


@pytest.mark.parametrize("method", ["weight_matching", "activation_matching"])
def test_aligned_curves_beside_the_naive_ones(trained, tmp_path, method):
  model_dir = _copy(trained, tmp_path)
  bindings = (f"evaluate.align = (None, '{method}')",
              "evaluate.bn_modes = ('interpolate', 'repair')", "evaluate.bn_batches = 2",
              "evaluate.bn_batch_size = 50", "evaluate.align_batches = 2")
  summary = _run(model_dir, "evaluate", *bindings)
  assert set(summary["aligned"][method]["bn_modes"]) == {"repair"}
  for pair in _pairs(model_dir):
    d = str(model_dir)
    assert layout.metrics_keys(d, pair) == [
        (None, "interpolate"), (None, "repair"), (method, "interpolate"), (method, "repair")]
    naive = _read(layout.metrics(d, pair))
    aligned = _read(layout.metrics(d, pair, align=method))
    assert aligned["align"] == method and aligned["alignment"]["method"] == method
    for split in ("train", "test"):
      # A is untouched; B permuted computes the same function
      assert aligned[split]["errors"][0] == naive[split]["errors"][0]
      assert aligned[split]["errors"][-1] == pytest.approx(naive[split]["errors"][-1])
      assert aligned[split]["losses"][-1] == pytest.approx(naive[split]["losses"][-1],
                                                           rel=1e-5)
    assert aligned["distances"]["disagreements"] == naive["distances"]["disagreements"]
    permutation = layout.permutation(d, pair, method)
    record = _read(permutation)
    assert record["units"] == 32 + 16 and sorted(record["perms"]["dense_0"]) == list(range(32))
    mtime = os.path.getmtime(permutation)
  # a rerun finds everything measured and searches for no permutation again
  os.remove(layout.metrics(str(model_dir), pair, "repair", method))
  _run(model_dir, "evaluate", *bindings)
  assert os.path.getmtime(permutation) == mtime
  assert os.path.exists(layout.metrics(str(model_dir), pair, "repair", method))


def test_a_bad_align_is_named(trained, tmp_path):
  with pytest.raises(errors.ConfigError, match="evaluate.align"):
    _run(_copy(trained, tmp_path), "evaluate", "evaluate.align = 'git_rebasin'")
