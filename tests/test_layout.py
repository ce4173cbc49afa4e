"""The on-disk contract: file names, run names by hash, and run directories on any
filesystem TensorFlow reaches (here TF's in-memory ram:// filesystem)."""

import os
import uuid

import gin
import pytest
import tensorflow as tf

from lmc_tf import config
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf import layout
from tests.conftest import REPO

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_instability_smoke.gin")
PINNED = "a55378e793d6"  # the smoke config's fingerprint (also pinned in test_instability)


def _hash(*bindings):
  gin.clear_config()
  config.parse([SMOKE], list(bindings))
  return layout.run_hash(layout.training_fingerprint())


@gin.configurable("added_after_the_pin")
def _added_after_the_pin(strength=0.0):
  """Stands for a configurable a new model, dataset or augmentation brings later."""
  return strength


def test_a_configurable_nobody_listed_changes_the_hash():
  assert _hash() == PINNED
  # Nobody added it to any list, yet binding it changes what a run computes.
  assert _hash("added_after_the_pin.strength = 0.5") != PINNED
  # Scoped bindings are values too.
  assert _hash("scoped/lenet.hidden = (8, 4)") != PINNED


@pytest.mark.parametrize("binding", [
    "experiment.job = 'evaluate'", "instability.num_pairs = 7", "evaluate.num_alphas = 9",
    "report.title = 'x'", "train.init_seed = 3", "imp.levels = 2",
    "strategy.name = 'mirrored'", "training.steps_per_loop = 7",
    "training.eval_batch_size = 50", "training.checkpoint_every = '10it'",
    "imagenet.data_dir = '/elsewhere'"])
def test_what_cannot_change_a_run_leaves_the_hash(binding):
  assert _hash(binding) == PINNED


def test_names_of_one_run():
  run = "ram://exp/runs/copy-abc"
  assert layout.checkpoint(run, 20) == "ram://exp/runs/copy-abc/checkpoints/ckpt-20"
  assert layout.checkpoint_step(layout.checkpoint(run, 20)) == 20
  assert layout.summary(run).endswith("/summary.json")
  assert layout.run_name("copy", {"a": 1}) == f"runs/copy-{layout.run_hash({'a': 1})}"
  # A sub-experiment's manifest names its parents relative to itself, across filesystems.
  sub = layout.SubExperiment("imp", 2, 0, 20)
  parent = files.relative(layout.run_dir("gs://b/exp", "runs/parent-x"),
                          sub.directory("gs://b/exp"))
  assert parent == "../../runs/parent-x"
  assert layout.run_dir(sub.directory("gs://b/exp"), parent) == "gs://b/exp/runs/parent-x"


def test_sub_experiment_names_round_trip():
  sub = layout.SubExperiment("random_reinit", 3, 10000, 500)
  assert sub.name == "random_reinit-level03-init10000-k500"
  assert layout.SubExperiment.parse(sub.name) == sub
  with pytest.raises(ValueError, match="not a sub-experiment"):
    layout.SubExperiment.parse("report")


def _ram_files(root):
  return sorted(files.relative(os.path.join(d, f), root)
                for d, _, names in tf.io.gfile.walk(root) for f in names)


@pytest.mark.slow
def test_instability_experiment_on_a_non_local_filesystem(tmp_path, monkeypatch):
  """train, evaluate and report with --model_dir on ram://: every result lands there."""
  monkeypatch.chdir(tmp_path)  # anything written locally by mistake would land here
  root = f"ram://lmc_tf_test_{uuid.uuid4().hex[:8]}/exp"
  for job in ("instability", "evaluate", "report"):
    gin.clear_config()
    config.parse([SMOKE], [])
    jobs.run(root, job_override=job)
  written = _ram_files(root)
  manifest = files.read_json(layout.manifest(root))
  for pair in manifest["pairs"]:
    for run in pair["copies"]:
      assert layout.is_finished(layout.run_dir(root, run))
      assert files.exists(layout.checkpoint(layout.run_dir(root, run), pair["end_step"]))
    assert files.exists(layout.metrics(root, pair["id"]))
    assert files.exists(layout.curve(root, pair["id"]))
  # The kept resume checkpoints were superseded and removed (gfile, not a local rmtree).
  assert not [f for f in written if f"/{layout.RESUME}/" in f]
  summary = files.read_json(layout.summary(root))
  assert summary["pairs_done"] == summary["pairs_total"] == 2
  for name in ("figure2_interpolation.png", "figure3_instability.png", "instability.md",
               "instability.csv"):
    assert files.exists(layout.report_file(root, name)), name
  assert any(f.startswith("tensorboard/") for f in written)
  assert os.listdir(tmp_path) == []


def test_bn_modes_other_than_the_papers_have_their_own_files(tmp_path):
  d = str(tmp_path)
  assert layout.curve(d, "p").endswith("pairs/p/curve.json")
  assert layout.metrics(d, "p").endswith("pairs/p/metrics.json")
  assert layout.curve(d, "p", mode="reset").endswith("pairs/p/curve_reset.json")
  assert layout.curve(d, "p", 100, mode="repair").endswith("pairs/p/curve_step100_repair.json")
  assert layout.metrics(d, "p", mode="repair").endswith("pairs/p/metrics_repair.json")
  assert layout.metrics_modes(d, "p") == []
  for mode in ("repair", "interpolate", "reset"):
    files.write_json_atomic(layout.metrics(d, "p", mode=mode), {})
  files.write_json_atomic(layout.curve(d, "p", mode="reset"), {})
  assert layout.metrics_modes(d, "p") == ["interpolate", "repair", "reset"]


def test_aligned_curves_have_their_own_files(tmp_path):
  d = str(tmp_path)
  assert layout.metrics(d, "p", align="weight_matching").endswith(
      "pairs/p/metrics_weight_matching.json")
  assert layout.curve(d, "p", 7, "reset", "activation_matching").endswith(
      "pairs/p/curve_step7_activation_matching_reset.json")
  for align, mode in ((None, "interpolate"), ("weight_matching", "repair"),
                      ("weight_matching", "interpolate"), (None, "reset")):
    files.write_json_atomic(layout.metrics(d, "p", mode, align), {})
  files.write_json_atomic(layout.permutation(d, "p", "weight_matching"), {})
  assert layout.metrics_keys(d, "p") == [
      (None, "interpolate"), (None, "reset"), ("weight_matching", "interpolate"),
      ("weight_matching", "repair")]
  assert layout.metrics_modes(d, "p") == ["interpolate", "reset"]
