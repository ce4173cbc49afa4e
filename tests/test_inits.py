"""Networks from different inits (the `inits` job): its pure plan, and the smoke configs end to
end through the evaluator and the report, which read its manifest as an instability one's."""

import glob
import os
import shutil

import gin
import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import config
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.experiments import common
from lmc_tf.experiments import inits
from lmc_tf.experiments import steps as steps_lib
from lmc_tf.models import registry
from lmc_tf.training import checkpoints
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_inits_smoke.gin")
T = 60  # the smoke config's training.steps


def _parse(*bindings, path=SMOKE):
  gin.clear_config()
  config.parse([path], list(bindings))


def _run(model_dir, job=None, *bindings):
  _parse(*bindings)
  return jobs.run(str(model_dir), job_override=job)


def _weights(checkpoint_path):
  """{key: value} of a checkpoint's trainable weights, as saved (keys are positional; the
  weights are saved under the optimizer's references to them)."""
  reader = tf.train.load_checkpoint(checkpoint_path)
  weights = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if k.startswith("optimizer/_trainable_variables/")}
  assert weights
  return weights


# -- the plan (pure) -------------------------------------------------------------------------


def test_plan_pairs_every_two_networks_once():
  manifest = inits.plan({}, 100, 10, num_inits=4, init_seed=5)
  assert manifest["init_seeds"] == [5, 6, 7, 8]
  assert sorted(manifest["parents"]) == ["5", "6", "7", "8"]
  pairs = manifest["pairs"]
  assert [tuple(p["init_seeds"]) for p in pairs] == [(5, 6), (5, 7), (5, 8), (6, 7), (6, 8),
                                                     (7, 8)]
  assert manifest["num_pairs"] == len(pairs) == 6
  assert len({p["id"] for p in pairs}) == 6 and [p["pair"] for p in pairs] == list(range(6))
  for p in pairs:
    a, b = p["init_seeds"]
    runs = manifest["parents"]
    assert p["copies"] == [runs[str(a)]["run"], runs[str(b)]["run"]]
    # What the evaluator reads: W_0 of the pair's init seed, copies[0] at start_step.
    assert p["init_seed"] == a and p["parent"] == runs[str(a)]["run"]
    assert (p["variant"], p["rewind_step"], p["start_step"], p["end_step"]) == (
        "inits", 0, 0, 100)
    assert [s["init_seed"] for s in p["seeds"]] == [a, b]
  assert all(n["end_step"] == 100 for n in manifest["parents"].values())
  assert (manifest["variants"], manifest["rewind_steps"], manifest["every_epoch"]) == (
      ["inits"], [0], False)


def test_every_network_has_its_own_seeds():
  manifest = inits.plan({}, 100, 10, num_inits=5, init_seed=2)
  seeds = {str(s["init_seed"]): s for p in manifest["pairs"] for s in p["seeds"]}
  assert sorted(seeds) == sorted(manifest["parents"])
  for kind in ("init_seed", "data_order_seed", "augmentation_seed"):
    assert len({s[kind] for s in seeds.values()}) == 5
  assert len({n["run"] for n in manifest["parents"].values()}) == 5


def test_run_names_are_pinned_and_stable():
  """Hash names are how finished runs are found again: they must not drift."""
  fingerprint = {"model": {"name": "lenet_300_100"}}
  manifest = inits.plan(fingerprint, 100, 10, num_inits=2)
  assert manifest["parents"]["0"]["run"] == "runs/network-c9dfbdeb6093"
  assert manifest["parents"]["1"]["run"] == "runs/network-5f6026e33365"
  assert [p["id"] for p in manifest["pairs"]] == ["inits-init0-init1-f4e0b4c7"]
  assert inits.plan(fingerprint, 100, 10, num_inits=2) == manifest  # pure
  # A third network adds runs and pairs; the first two keep their names and pair.
  more = inits.plan(fingerprint, 100, 10, num_inits=3)
  assert {k: more["parents"][k] for k in ("0", "1")} == manifest["parents"]
  assert more["pairs"][0] == manifest["pairs"][0]
  # Another training config is another run.
  other = inits.plan({"model": {"name": "resnet20"}}, 100, 10, num_inits=2)
  assert other["parents"]["0"]["run"] != manifest["parents"]["0"]["run"]


@pytest.mark.parametrize("kwargs, named", [
    (dict(num_inits=1), "inits.num_inits=1: need at least 2"),
    (dict(num_inits=0), "inits.num_inits=0 must be a positive integer"),
    (dict(num_inits="3"), "inits.num_inits='3' must be a positive integer"),
    (dict(init_seed=-1), "inits.init_seed=-1 must be an integer >= 0"),
    (dict(init_seed=1.5), "inits.init_seed=1.5 must be an integer >= 0"),
])
def test_plan_rejects_bad_values_naming_the_binding(kwargs, named):
  with pytest.raises(errors.ConfigError, match=named):
    inits.plan({}, 100, 10, **kwargs)


@pytest.mark.parametrize("binding, named", [
    ("inits.num_inits = 1", "inits.num_inits=1"),
    ("inits.init_seed = -3", "inits.init_seed=-3"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, binding, named):
  with pytest.raises(errors.ConfigError, match=named):
    _run(tmp_path / "exp", None, binding)
  assert not glob.glob(f"{tmp_path}/exp/*")


def test_the_sweep_plan_has_one_independent_step_per_network(tmp_path):
  _parse()
  experiment = jobs.run(str(tmp_path), plan_only=True, strategy=tf.distribute.get_strategy())
  assert isinstance(experiment, steps_lib.Experiment)
  assert [(s.key, s.deps) for s in experiment.steps] == [
      ("network-init0", ()), ("network-init1", ()), ("network-init2", ())]
  assert files.exists(layout.manifest(str(tmp_path)))  # written before any training
  assert not glob.glob(f"{tmp_path}/runs/*")


# -- the LeNet smoke experiment end to end -------------------------------------------------


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
  """The LeNet smoke experiment, trained and evaluated once: 3 networks, 3 pairs."""
  model_dir = tmp_path_factory.mktemp("inits") / "exp"
  trained = _run(model_dir)
  evaluated = _run(model_dir, "evaluate")
  gin.clear_config()
  return model_dir, trained, evaluated


def _copy(experiment, tmp_path):
  target = tmp_path / "exp"
  shutil.copytree(experiment[0], target)
  return target


def test_the_job_trains_every_network_of_the_plan_to_t(experiment):
  model_dir, trained, _ = experiment
  assert (trained["networks"], trained["pairs"]) == (3, 3)
  manifest = files.read_json(layout.manifest(str(model_dir)))
  _parse()
  data = data_base.get_dataset()
  assert manifest == inits.plan(layout.training_fingerprint(), T, 30, 3, 0)
  assert files.read_json(layout.experiment_record(str(model_dir)))["job"] == "inits"
  finals = []
  for seed, network in sorted(manifest["parents"].items()):
    run = layout.run_dir(str(model_dir), network["run"])
    assert files.read_json(layout.summary(run))["final_step"] == T
    # W_0 (the evaluator's init) and W_T are kept; W_0 is the init of this network's seed.
    model = registry.build_model(init_seed=int(seed), input_shape=data.image_shape,
                                 num_classes=data.num_classes)
    fresh = [v.numpy() for v in model.variables]
    checkpoints.restore(tf.train.Checkpoint(model=model), layout.checkpoint(run, 0))
    for x, y in zip(fresh, model.variables):
      np.testing.assert_array_equal(x, y.numpy())
    finals.append(_weights(layout.checkpoint(run, T)))
  for a in range(3):
    for b in range(a + 1, 3):
      assert any(not np.array_equal(finals[a][k], finals[b][k]) for k in finals[a])


def test_the_evaluator_and_report_read_the_manifest_unchanged(experiment, tmp_path):
  model_dir, _, summary = experiment
  manifest = files.read_json(layout.manifest(str(model_dir)))
  assert summary["pairs_done"] == summary["pairs_total"] == 3
  assert summary["inits"]["test"]["0"]["samples"] == 3
  assert summary["inits"]["train"]["0"]["samples"] == 3
  for pair in manifest["pairs"]:
    metrics = files.read_json(layout.metrics(str(model_dir), pair["id"]))
    assert (metrics["variant"], metrics["init_seed"], metrics["rewind_step"]) == (
        "inits", pair["init_seed"], 0)
    assert metrics["distances"]["l2_init_to_k"] == 0.0  # W_0 of network A is its start
    assert metrics["distances"]["l2"] > 0
  target = _copy(experiment, tmp_path)
  result = _run(target, "report")
  names = {os.path.basename(f) for f in result["files"]}
  assert {"figure2_interpolation.png", "instability.md", "instability.csv"} <= names
  with open(layout.report_file(str(target), "instability.csv")) as f:
    rows = f.read().splitlines()
  assert rows[0].startswith("variant,split,rewind_step")
  assert sorted(r.split(",")[:3] for r in rows[1:]) == [["inits", "test", "0"],
                                                        ["inits", "train", "0"]]


def test_every_bn_mode_of_the_paper_configs_evaluates_the_pairs(experiment, tmp_path):
  target = _copy(experiment, tmp_path)
  summary = _run(target, "evaluate", "evaluate.bn_modes = ('interpolate', 'reset', 'repair')",
                 "evaluate.bn_batches = 2")
  assert summary["pairs_done"] == 3
  assert sorted(summary["bn_modes"]) == ["repair", "reset"]
  assert summary["bn_modes"]["repair"]["inits"]["test"]["0"]["samples"] == 3
  names = {os.path.basename(f) for f in _run(target, "report")["files"]}
  assert {"bn_modes.md", "bn_modes_k0.png"} <= names


def test_a_rerun_skips_finished_networks_and_resumes_an_unfinished_one(experiment, tmp_path,
                                                                      console):
  target = _copy(experiment, tmp_path)
  manifest = files.read_json(layout.manifest(str(target)))
  runs = [layout.run_dir(str(target), n["run"]) for n in manifest["parents"].values()]
  final = _weights(layout.checkpoint(runs[1], T))
  # Network 1 as if killed after W_0: no summary, no final checkpoint.
  os.remove(layout.summary(runs[1]))
  for path in glob.glob(layout.checkpoint(runs[1], T) + ".*"):
    os.remove(path)
  console()
  _run(target)
  out = console()
  assert out.count("finished already") == 2
  assert f"Resuming from {layout.checkpoint(runs[1], 0)} (step 0)" in out
  assert layout.is_finished(runs[1])
  resumed = _weights(layout.checkpoint(runs[1], T))
  for key, value in final.items():
    np.testing.assert_array_equal(value, resumed[key])  # op determinism: the same W_T
  console()
  _run(target)
  assert console().count("finished already") == 3


def test_a_directory_of_another_config_is_refused_before_anything_is_written(experiment,
                                                                             tmp_path):
  target = str(_copy(experiment, tmp_path))
  manifest = files.read_json(layout.manifest(target))
  for job in ("inits", "evaluate"):
    with pytest.raises(config.ConfigError, match="different config's experiment") as e:
      _run(target, job, "optimizer.learning_rate = 0.5")
    assert "optimizer.learning_rate" in str(e.value)
  with pytest.raises(config.ConfigError, match="different config's experiment") as e:
    _run(target, "instability")  # another job of the same training config
  assert "job: 'inits' there, 'instability' here" in str(e.value)
  assert files.read_json(layout.manifest(target)) == manifest
  # And an instability experiment's directory is not the inits job's.
  other = str(tmp_path / "instability")
  _parse()
  common.record_experiment(other, "instability")
  with pytest.raises(config.ConfigError, match="job: 'instability' there, 'inits' here"):
    _run(other)
  assert not files.exists(layout.manifest(other))


# -- the ResNet-20 smoke configs, one per width -------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_resnet20_smoke_runs_end_to_end(width, tmp_path, cifar10_sample):
  name = "resnet20_standard" if width == 1 else f"resnet20x{width}_standard"
  path = os.path.join(REPO, "gin_configs", "smoke", f"{name}_inits_smoke.gin")
  data = f"cifar10.path = '{cifar10_sample.npz}'"
  trained = _run_path(path, tmp_path, None, data)
  assert (trained["networks"], trained["pairs"]) == (2, 1)
  assert gin.query_parameter("resnet_cifar.width_multiplier") == 0.25 * width
  summary = _run_path(path, tmp_path, "evaluate", data)
  assert summary["pairs_done"] == summary["pairs_total"] == 1
  assert sorted(summary["inits"]) == ["test", "train"]
  names = {os.path.basename(f) for f in _run_path(path, tmp_path, "report", data)["files"]}
  assert {"figure2_interpolation.png", "instability.md"} <= names


def _run_path(path, model_dir, job, *bindings):
  _parse(*bindings, path=path)
  return jobs.run(str(model_dir), job_override=job)
