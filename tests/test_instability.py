"""Instability analysis end to end on the smoke config, and its pure parts on hand-made data."""

import json
import os
import shutil
import signal
import subprocess
import time

import gin
import numpy as np
import pytest

from lmc_tf import config
from lmc_tf.data import base as data_base
from lmc_tf.data import pipeline
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import interpolate
from lmc_tf.experiments import instability
from lmc_tf import jobs
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf import files
from lmc_tf import layout
from tests.conftest import PYTHON, REPO, python_env

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_instability_smoke.gin")


def _parse(*bindings):
  gin.clear_config()
  config.parse([SMOKE], list(bindings))


def _run(model_dir, job, *bindings):
  _parse(*bindings)
  return jobs.run(str(model_dir), job_override=job)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
  """The smoke experiment, trained and evaluated once: 1 init, k in {0, 20}, 1 pair."""
  model_dir = tmp_path_factory.mktemp("smoke") / "exp"
  _run(model_dir, "instability")
  _run(model_dir, "evaluate")
  gin.clear_config()
  return model_dir


def _copy(experiment, tmp_path):
  target = tmp_path / "exp"
  shutil.copytree(experiment, target)
  return target


# -- pure parts ------------------------------------------------------------------------------


def test_barrier_on_hand_made_curves():
  assert barrier.barrier([1.0, 2.0, 5.0, 1.5]) == pytest.approx(3.75)
  assert barrier.barrier([3.0, 3.0, 3.0]) == 0.0
  # A curve that only rises: the barrier is measured against the mean of the endpoints.
  assert barrier.barrier([1.0, 2.0, 3.0]) == pytest.approx(1.0)
  metrics = barrier.curve_metrics([2.0, 3.9, 2.0], [0.1, 0.3, 0.2])
  assert metrics["instability"] == pytest.approx(1.9) and metrics["stable"]
  assert metrics["loss_barrier"] == pytest.approx(0.15)
  assert metrics["endpoint_error_mean"] == 2.0
  assert not barrier.curve_metrics([2.0, 4.0, 2.0], [0, 0, 0])["stable"]  # 2 pp: unstable
  with pytest.raises(ValueError):
    barrier.barrier([1.0])


def test_alphas_are_evenly_spaced_with_both_endpoints():
  a = barrier.alphas(30)
  assert len(a) == 30 and a[0] == 0.0 and a[-1] == 1.0
  np.testing.assert_allclose(np.diff(a), 1 / 29)


def test_interpolation_endpoints_are_exact():
  rng = np.random.default_rng(0)
  a = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
  b = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
  for x, y in zip(interpolate.interpolate(a, b, 0.0), a):
    np.testing.assert_array_equal(x, y)
  for x, y in zip(interpolate.interpolate(a, b, 1.0), b):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_allclose(interpolate.interpolate(a, b, 0.5)[1], (a[1] + b[1]) / 2,
                             rtol=1e-6)


def test_run_names_are_pinned():
  """Hash names are how finished runs are found again: they must not drift."""
  manifest = instability.plan({"model": {"name": "lenet_300_100"}}, [0, 25], 100, 10,
                              num_inits=1, num_pairs=1)
  assert manifest["parents"]["0"]["run"] == "runs/parent-d031aebc8cd3"
  assert [p["id"] for p in manifest["pairs"]] == ["standard-k0-init0-pair0-b8321474",
                                                   "standard-k25-init0-pair0-57e8f971"]
  assert manifest["pairs"][1]["copies"] == ["runs/copy-9e95e3c4b737",
                                            "runs/copy-3bef13c5d002"]
  # The gin values of the smoke config hash to a pinned name too.
  _parse()
  assert layout.run_hash(layout.training_fingerprint()) == "a55378e793d6"
  # Cadence and XLA do not change what a run computes, so they do not change its name.
  _parse("training.log_every = '10it'", "training.jit_compile = True")
  assert layout.run_hash(layout.training_fingerprint()) == "a55378e793d6"
  _parse("optimizer.learning_rate = 0.5")
  assert layout.run_hash(layout.training_fingerprint()) != "a55378e793d6"


def test_plan_samples_seeds_and_variants():
  manifest = instability.plan({}, [10, 0], 100, 10, num_inits=3, num_pairs=3, init_seed=4,
                              reset_schedule="both")
  assert manifest["rewind_steps"] == [0, 10]
  assert len(manifest["pairs"]) == 3 * 3 * 2 * 2
  assert sorted(manifest["parents"]) == ["4", "5", "6"]
  seeds = {(p["init_seed"], s["data_order_seed"]) for p in manifest["pairs"] for s in p["seeds"]}
  assert len(seeds) == 3 * 6  # every copy of an init has its own data order
  reset = [p for p in manifest["pairs"] if p["variant"] == "reset" and p["rewind_step"] == 10]
  assert reset and all(p["end_step"] == 110 for p in reset)
  # Every copy is its own run, except that from k = 0 the reset pairs are the standard ones
  # (restarting the schedule at 0 changes nothing), so they are trained once.
  runs = {r for p in manifest["pairs"] for r in p["copies"]}
  assert len(runs) == 2 * len(manifest["pairs"]) - 2 * 3 * 3
  at_zero = {p["variant"]: p["copies"] for p in manifest["pairs"]
             if p["rewind_step"] == 0 and p["init_seed"] == 4 and p["pair"] == 0}
  assert at_zero["reset"] == at_zero["standard"]


@pytest.mark.parametrize("kwargs,message", [
    (dict(rewind_steps=[0, 200]), r"outside \[0, T=100\]"),
    (dict(rewind_steps=[0], reset_schedule="sometimes"), "reset_schedule"),
    (dict(rewind_steps=[0], num_pairs=0), "at least 1"),
])
def test_plan_rejects_bad_input(kwargs, message):
  with pytest.raises(ValueError, match=message):
    instability.plan({}, total_steps=100, steps_per_epoch=10, **kwargs)


def test_rewind_step_beyond_training_is_refused_before_training(tmp_path):
  with pytest.raises(ValueError, match="outside"):
    _run(tmp_path, "instability", "instability.rewind_steps = [0, 500]")
  assert not (tmp_path / "runs").exists()


# -- the smoke experiment --------------------------------------------------------------------


@pytest.mark.slow
def test_copies_share_w_k_and_differ_in_sgd_noise(experiment):
  manifest = files.read_json(experiment / "instability.json")
  pair = next(p for p in manifest["pairs"] if p["rewind_step"] == 20)
  _parse()
  data = data_base.get_dataset()
  model = registry.build_model(init_seed=0, input_shape=data.image_shape,
                               num_classes=data.num_classes)
  w_k = interpolate.read_variables(model, str(experiment / pair["parent"] / "checkpoints"
                                              / "ckpt-20"))
  finals = []
  for run in pair["copies"]:
    start = interpolate.read_variables(model, str(experiment / run / "checkpoints" / "ckpt-20"))
    for x, y in zip(start, w_k):
      np.testing.assert_array_equal(x, y)
    finals.append(interpolate.read_variables(model, str(experiment / run / "checkpoints"
                                                        / "ckpt-60")))
  assert not np.array_equal(finals[0][0], finals[1][0])
  # Different data orders and augmentation seeds: the copies' batches differ.
  a, b = pair["seeds"]
  assert a["data_order_seed"] != b["data_order_seed"]
  assert a["augmentation_seed"] != b["augmentation_seed"]
  batch = lambda s: next(iter(pipeline.train_dataset(  # noqa: E731
      data, 20, s["data_order_seed"], s["augmentation_seed"], 20, 1)))[1].numpy()
  assert not np.array_equal(batch(a), batch(b))


@pytest.mark.slow
def test_evaluator_endpoints_are_the_copies_own_errors(experiment):
  manifest = files.read_json(experiment / "instability.json")
  for pair in manifest["pairs"]:
    metrics = files.read_json(experiment / "pairs" / pair["id"] / "metrics.json")
    ends = [files.read_json(experiment / run / "summary.json") for run in pair["copies"]]
    assert metrics["test"]["errors"][0] == 100.0 - ends[0]["test_accuracy"]
    assert metrics["test"]["errors"][-1] == 100.0 - ends[1]["test_accuracy"]
    assert metrics["test"]["losses"][0] == pytest.approx(ends[0]["test_loss"], rel=1e-6)
    assert metrics["test"]["losses"][-1] == pytest.approx(ends[1]["test_loss"], rel=1e-6)
    assert len(metrics["train"]["errors"]) == 5
    assert metrics["test"]["instability"] == pytest.approx(
        barrier.barrier(metrics["test"]["errors"]))
    d = metrics["distances"]
    assert d["l2"] > 0 and 0 < d["cosine"] < 1 and 0 < d["angle_deg"] < 90
    assert 0 < d["disagreements"] <= 300 and d["loss_l2"] > 0
    assert len(d["l2_k_to_T"]) == 2 and all(x > 0 for x in d["l2_k_to_T"])
    if pair["rewind_step"] == 0:
      assert d["l2_init_to_k"] == 0.0  # W_0 is W_k
    else:
      assert d["l2_init_to_k"] > 0


@pytest.mark.slow
def test_summary_holds_statistics_per_split_and_rewind_step(experiment):
  summary = json.loads((experiment / "summary.json").read_text())
  assert summary["pairs_done"] == summary["pairs_total"] == 2
  for split in ("train", "test"):
    assert sorted(summary[split]) == ["0", "20"]
    stats = summary[split]["20"]
    for key in ("instability_mean", "instability_sd", "instability_median", "stable",
                "endpoint_error_mean"):
      assert key in stats
    assert stats["samples"] == 1 and stats["instability_sd"] == 0.0


@pytest.mark.slow
def test_rerun_skips_finished_work(experiment, tmp_path, console):
  exp = _copy(experiment, tmp_path)
  before = {p: os.path.getmtime(p) for p in map(str, exp.rglob("*"))}
  console()
  _run(exp, "instability")
  _run(exp, "evaluate")
  out = console()
  assert out.count("finished already") == 5  # the parent and four copies
  assert "Evaluated 2/2" in out
  changed = [p for p, t in before.items()
             if os.path.exists(p) and os.path.getmtime(p) != t and "events" not in p
             and "/tensorboard/" not in p
             and not p.endswith(".gin") and not p.endswith("instability.json")
             and not p.endswith("summary.json")]
  assert not changed, changed


@pytest.mark.slow
def test_reset_schedule_and_every_epoch_through_to_the_report(tmp_path):
  bindings = ["instability.rewind_steps = [20]", "instability.reset_schedule = 'both'",
              "instability.every_epoch = True"]
  _run(tmp_path, "instability", *bindings)
  _run(tmp_path, "evaluate", *bindings)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert sorted(summary["test"]) == ["20"] and sorted(summary["reset"]["test"]) == ["20"]
  manifest = files.read_json(tmp_path / "instability.json")
  reset = next(p for p in manifest["pairs"] if p["variant"] == "reset")
  assert reset["end_step"] == 80  # T = 60 steps after k = 20, schedule restarted
  assert (tmp_path / reset["copies"][0] / "checkpoints" / "ckpt-80.index").exists()
  metrics = files.read_json(tmp_path / "pairs" / reset["id"] / "metrics.json")
  # 600 examples / batch 20: an epoch is 30 steps; the copies pass 30 and 60 on the way.
  assert [e["step"] for e in metrics["per_epoch"]] == [30, 60]
  result = _run(tmp_path, "report", *bindings)
  names = sorted(os.path.basename(f) for f in result["files"])
  assert "figure4_reset.png" in names and "appendix_c_per_epoch.png" in names


def test_evaluate_without_an_experiment_says_what_to_run(tmp_path):
  with pytest.raises(FileNotFoundError, match="run the instability job"):
    _run(tmp_path, "evaluate")


# -- the evaluator as a separate process ------------------------------------------------------


def _main(model_dir, job, *bindings, wait=True):
  cmd = [PYTHON, "-m", "lmc_tf.main", f"--gin_file={SMOKE}", f"--model_dir={model_dir}",
         f"--job={job}"] + [f"--gin_bindings={b}" for b in bindings]
  if not wait:
    return subprocess.Popen(cmd, env=python_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
  return subprocess.run(cmd, env=python_env(), cwd=REPO, capture_output=True, text=True,
                        timeout=300)


@pytest.mark.slow
def test_evaluator_started_before_training_picks_up_pairs(tmp_path):
  watcher = _main(tmp_path, "evaluate", "evaluate.watch = True", "evaluate.timeout_s = 240",
                  wait=False)
  time.sleep(1.0)
  trained = _main(tmp_path, "instability")
  assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
  out, _ = watcher.communicate(timeout=300)
  assert watcher.returncode == 0, out[-3000:]
  assert "Evaluated 2/2" in out
  assert json.loads((tmp_path / "summary.json").read_text())["pairs_done"] == 2


@pytest.mark.slow
def test_evaluator_killed_mid_sweep_resumes_without_redoing_points(experiment, tmp_path):
  many = ["evaluate.num_alphas = 120"]
  killed, reference = tmp_path / "killed", tmp_path / "reference"
  for target in (killed, reference):
    shutil.copytree(experiment, target)
    shutil.rmtree(target / "pairs")
  done = _main(reference, "evaluate", *many)
  assert done.returncode == 0, done.stdout[-2000:]

  proc = _main(killed, "evaluate", *many, wait=False)
  deadline = time.time() + 240
  curves = []
  while time.time() < deadline and proc.poll() is None:
    curves = list((killed / "pairs").glob("*/curve.json")) if (killed / "pairs").exists() else []
    if curves:
      try:
        if len(json.loads(curves[0].read_text())["points"]) >= 10:
          break
      except (json.JSONDecodeError, FileNotFoundError):
        pass
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert curves, "the evaluator finished no alpha point before the deadline"
  first = curves[0]
  measured = json.loads(first.read_text())["points"]
  assert 10 <= len(measured) < 120, "the sweep finished before the kill"

  rerun = _main(killed, "evaluate", *many)
  assert rerun.returncode == 0, rerun.stdout[-2000:]
  assert f"{len(measured)}/120 alpha points already measured" in rerun.stderr  # absl logging
  for path in reference.glob("pairs/*/metrics.json"):
    want = json.loads(path.read_text())
    got = json.loads((killed / path.relative_to(reference)).read_text())
    assert got["test"] == want["test"] and got["train"] == want["train"]
  resumed = json.loads(first.read_text())["points"]
  assert all(resumed[i] == measured[i] for i in measured)


def test_a_mask_that_does_not_fit_is_refused_before_training(tmp_path):
  np.savez(tmp_path / "mask.npz", dense_0=np.ones((3, 3)))
  with pytest.raises(ValueError, match="does not fit layer 'dense_0'"):
    _run(tmp_path / "exp", "instability", f"instability.mask_file = '{tmp_path}/mask.npz'")
  assert not (tmp_path / "exp" / "runs").exists()


def test_a_mask_is_applied_to_w_k_before_the_copies_start(tmp_path):
  _parse()
  data = data_base.get_dataset()
  model = registry.build_model(input_shape=data.image_shape, num_classes=data.num_classes)
  rng = np.random.default_rng(0)
  masks = {l.name: (rng.random(l.kernel.shape) < 0.5).astype(np.float32)
           for l in layers.masked_layers(model)}
  np.savez(tmp_path / "mask.npz", **masks)
  exp = tmp_path / "exp"
  _run(exp, "instability", f"instability.mask_file = '{tmp_path}/mask.npz'",
       "instability.rewind_steps = [20]")
  manifest = files.read_json(exp / "instability.json")
  assert manifest["mask"]
  for run in manifest["pairs"][0]["copies"]:
    for step in (20, 60):
      interpolate.read_variables(model, str(exp / run / "checkpoints" / f"ckpt-{step}"))
      for layer in layers.masked_layers(model):
        np.testing.assert_array_equal(layer.mask.numpy(), masks[layer.name])
        assert not np.any(layer.kernel.numpy()[masks[layer.name] == 0])


def _events(path):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(str(path), size_guidance={"tensors": 0})
  acc.Reload()
  return acc


@pytest.mark.slow
def test_curves_go_to_tensorboard_as_scalars_and_an_image(experiment):
  acc = _events(experiment / "tensorboard" / "k=00" / "init=0" / "pair=0" / "interpolation")
  tags = set(acc.Tags()["tensors"])
  assert {"interpolation/test_error", "interpolation/train_loss", "interpolation_curve",
          "instability/test", "_hparams_/session_start_info"} <= tags
  # Step is 1000 alpha, so the x axis reads as the position on the path.
  assert [e.step for e in acc.Tensors("interpolation/test_error")] == [0, 250, 500, 750, 1000]
  assert "1000 alpha" in acc.SummaryMetadata("interpolation/test_error").summary_description
  # A pair's instability sits at its rewind step, so the pairs' dots spread over k.
  late = _events(experiment / "tensorboard" / "k=20" / "init=0" / "pair=0" / "interpolation")
  assert [e.step for e in late.Tensors("instability/test")] == [20]
  description = late.SummaryMetadata("instability/test").summary_description
  assert "step is the rewind step k" in description


@pytest.mark.slow
def test_tensorboard_runs_are_named_by_what_they_are_and_runs_record_lineage(experiment):
  board = experiment / "tensorboard"
  names = sorted(os.path.relpath(root, board) for root, _, names in os.walk(board)
                 if any(n.startswith("events.out") for n in names))
  assert names == ["experiment", "k=00/init=0/pair=0/copy=A", "k=00/init=0/pair=0/copy=B",
                   "k=00/init=0/pair=0/interpolation", "k=20/init=0/pair=0/copy=A",
                   "k=20/init=0/pair=0/copy=B", "k=20/init=0/pair=0/interpolation",
                   "parent/init=0"]
  manifest = json.loads((experiment / "instability.json").read_text())
  for pair in manifest["pairs"]:
    for c, run in enumerate(pair["copies"]):
      lineage = json.loads((experiment / run / "lineage.json").read_text())
      assert lineage["role"] == "copy" and lineage["copy"] == "AB"[c]
      assert lineage["rewind_step"] == pair["rewind_step"] and lineage["pair"] == pair["pair"]
      assert lineage["seeds"] == {"init_seed": pair["init_seed"], **pair["seeds"][c]}
      assert lineage["parent"] == pair["parent"] and lineage["run"] == run
      assert (experiment / run / lineage["tensorboard_dir"]).resolve() == (
          board / lineage["tensorboard"]).resolve()
      acc = _events(board / lineage["tensorboard"])
      # A curve, not a point: T = 60 logged every 30 iterations.
      assert [e.step for e in acc.Tensors("train/loss")] == [30, 60]
      assert [e.step for e in acc.Tensors("test/accuracy")] == [60]
      assert "_hparams_/session_start_info" in acc.Tags()["tensors"]
  parent = json.loads((experiment / manifest["parents"]["0"]["run"] / "lineage.json").read_text())
  assert parent["role"] == "parent" and parent["tensorboard"] == "parent/init=0"


@pytest.mark.slow
def test_tensorboard_has_instability_against_k_and_mean_curves(experiment):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  acc = _events(experiment / "tensorboard" / "experiment")
  summary = json.loads((experiment / "summary.json").read_text())
  for split in ("train", "test"):
    series = acc.Tensors(f"instability_vs_k/{split}")
    assert [e.step for e in series] == [0, 20]
    for event in series:
      assert float(tf.make_ndarray(event.tensor_proto)) == pytest.approx(
          summary[split][str(event.step)]["instability_mean"], abs=1e-5)
    # One pair per k: no spread, so the margin collapses onto the mean.
    lower = acc.Tensors(f"instability_vs_k/{split}_lower")
    assert [float(tf.make_ndarray(e.tensor_proto)) for e in lower] == pytest.approx(
        [float(tf.make_ndarray(e.tensor_proto)) for e in series])
    assert [e.step for e in acc.Tensors(f"interpolation/k=20/{split}_error")] == [
        0, 250, 500, 750, 1000]
  assert "custom_scalars__config__" in acc.Tags()["tensors"]


