"""Many runs in one compiled program (instability.copies_per_program, training/group.py):
each run ends with the weights it reaches alone, in its own directory, and a kill mid-group
resumes to the weights of an uninterrupted group."""

import os
import shutil
import types

import gin
import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import config
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf import layout
from lmc_tf.experiments import instability
from lmc_tf.training import group
from lmc_tf.training import runner
from tests.conftest import REPO

SMOKE = os.path.join(REPO, "gin_configs", "smoke")
LENET = [os.path.join(SMOKE, "lenet_mnist_instability_smoke.gin")]
RESNET = [os.path.join(SMOKE, "resnet20_standard_instability_smoke.gin")]
# Two inits: the parents group, and each k's 4 copies group across inits.
LENET_BINDINGS = ["instability.num_inits = 2"]
GROUPED = LENET_BINDINGS + ["instability.copies_per_program = 4"]


MODES = ["evaluate.bn_modes = ('interpolate', 'reset', 'repair')", "evaluate.bn_batches = 2"]


def _train(model_dir, gin_files, bindings, job="instability"):
  gin.clear_config()
  config.parse(gin_files, bindings)
  try:
    return jobs.run(str(model_dir), job_override=job)
  finally:
    gin.clear_config()


def _evaluations(model_dir):
  """{file name: JSON} of every pair's curves and metrics (every BN mode)."""
  out = {}
  for pair in files.read_json(layout.manifest(str(model_dir)))["pairs"]:
    for mode in ("interpolate", "reset", "repair"):
      for path in (layout.curve(str(model_dir), pair["id"], mode=mode),
                   layout.metrics(str(model_dir), pair["id"], mode)):
        if os.path.exists(path):
          out[os.path.relpath(path, str(model_dir))] = files.read_json(path)
  return out


def _final_weights(model_dir):
  """{run: {variable: array}} of every run's final checkpoint (the model's variables)."""
  manifest = files.read_json(layout.manifest(str(model_dir)))
  runs = {p["run"]: p["end_step"] for p in manifest["parents"].values()}
  for pair in manifest["pairs"]:
    runs.update({run: pair["end_step"] for run in pair["copies"]})
  return {run: _model_weights(layout.checkpoint(layout.run_dir(str(model_dir), run), step))
          for run, step in runs.items()}


def _model_weights(checkpoint):
  """{variable: array} of the model's variables in `checkpoint` (no optimizer slots)."""
  reader = tf.train.load_checkpoint(checkpoint)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name.startswith("model/") and "OPTIMIZER_SLOT" not in name}


def _assert_identical(alone, grouped):
  assert alone.keys() == grouped.keys()
  for run in alone:
    assert alone[run].keys() == grouped[run].keys()
    for name, value in alone[run].items():
      np.testing.assert_array_equal(grouped[run][name], value, err_msg=f"{run} {name}")


def _assert_same_results(alone_dir, grouped_dir):
  """Every run's summary (test accuracy and loss, train metrics) is the same."""
  for run in _final_weights(alone_dir):
    a, b = (files.read_json(layout.summary(layout.run_dir(str(d), run)))
            for d in (alone_dir, grouped_dir))
    for key in ("final_step", "test_accuracy", "test_loss", "train_loss", "train_accuracy"):
      assert a[key] == b[key], (run, key)


@pytest.fixture(scope="module")
def lenet_alone(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("alone") / "exp"
  _train(model_dir, LENET, LENET_BINDINGS)
  return model_dir


@pytest.fixture(scope="module")
def lenet_evaluated(lenet_alone, tmp_path_factory):
  """lenet_alone's pairs evaluated one alpha at a time, in every BN mode."""
  model_dir = tmp_path_factory.mktemp("evaluated") / "exp"
  shutil.copytree(lenet_alone, model_dir)
  _train(model_dir, LENET, LENET_BINDINGS + MODES, "evaluate")
  return model_dir


@pytest.fixture(scope="module")
def lenet_grouped(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("grouped") / "exp"
  _train(model_dir, LENET, GROUPED)
  return model_dir


def test_plan_groups_runs_that_share_a_start_and_a_schedule(tmp_path):
  gin.clear_config()
  config.parse(LENET, LENET_BINDINGS + ["instability.num_pairs = 2",
                                        "instability.copies_per_program = 3"])
  experiment = instability.instability(str(tmp_path), None, plan_only=True)
  gin.clear_config()
  sizes = [len(step.members) or 1 for step in experiment.steps]
  # 2 parents in one group; per k, 8 copies (2 inits x 2 pairs x 2) in groups of 3, 3, 2.
  assert sizes == [2, 3, 3, 2, 3, 3, 2]
  parents = experiment.steps[0]
  assert parents.members == ("parent-init0", "parent-init1")
  assert all(step.deps == (parents.key,) for step in experiment.steps[1:])
  # Every run is found by its own key (IMP's sub-experiments look their copies up so).
  key = instability.copy_key({"rewind_step": 20, "variant": "standard", "init_seed": 1,
                              "pair": 0}, 1)
  assert key in experiment.step(key).members
  # With two programs at once, a step trains twice the runs: 2 x 2 to a step.
  gin.clear_config()
  config.parse(LENET, LENET_BINDINGS + ["instability.num_pairs = 2",
                                        "instability.copies_per_program = 2",
                                        "training.programs_at_once = 2"])
  experiment = instability.instability(str(tmp_path), None, plan_only=True)
  gin.clear_config()
  assert [len(step.members) or 1 for step in experiment.steps] == [2, 4, 4, 4, 4]


@pytest.mark.parametrize("runs, at_once, replicas, sizes", [
    (4, 2, 1, [2, 2]), (3, 2, 1, [2, 1]), (5, 3, 1, [2, 2, 1]), (2, 3, 1, [1, 1]),
    (4, 1, 1, [4]), (4, 2, 2, [4])])
def test_a_group_splits_into_programs_of_near_equal_size(runs, at_once, replicas, sizes):
  strategy = types.SimpleNamespace(num_replicas_in_sync=replicas)
  trainers = [types.SimpleNamespace(
      strategy=strategy, step=0, end_step=10,
      hparams=types.SimpleNamespace(programs_at_once=at_once)) for _ in range(runs)]
  programs = group.GroupTrainer(trainers).programs()
  assert [len(p) for p in programs] == sizes
  assert [t for p in programs for t in p] == trainers  # every run once, in order


def test_lenet_copies_in_one_program_equal_each_trained_alone(lenet_alone, lenet_grouped):
  grouped = lenet_grouped
  # The same run directories (hash names), and bit-identical weights: each run's ops are
  # the ones it runs alone, on its own batches.
  _assert_identical(_final_weights(lenet_alone), _final_weights(grouped))
  _assert_same_results(lenet_alone, grouped)


def test_resnet20_copies_in_one_program_equal_each_trained_alone(cifar10_sample, tmp_path):
  bindings = [f"cifar10.path = '{cifar10_sample.npz}'", "instability.reset_schedule = False"]
  alone, grouped = tmp_path / "alone", tmp_path / "grouped"
  _train(alone, RESNET, bindings)
  _train(grouped, RESNET, bindings + ["instability.copies_per_program = 2"])
  # BatchNorm's moving statistics are model variables: they are compared too.
  weights = _final_weights(alone)
  assert any("moving_mean" in name for name in next(iter(weights.values())))
  _assert_identical(weights, _final_weights(grouped))
  _assert_same_results(alone, grouped)
  # The sweep, 2 alphas in one program, in every BN mode: the numbers of one at a time.
  _train(alone, RESNET, bindings + MODES, "evaluate")
  _train(grouped, RESNET, bindings + MODES + ["evaluate.alphas_per_program = 2"], "evaluate")
  measured = _evaluations(alone)
  assert len(measured) == 2 * 3 * 2  # 2 k x 1 pair, 3 modes, a curve and metrics each
  assert _evaluations(grouped) == measured


class _Killed(Exception):
  pass


def _kill_mid_group(model_dir, bindings, monkeypatch):
  """Trains until the first three runs of the group of k = 20 saved step 30, and kills the
  job before the fourth did; returns the run directories that saved step 30."""
  save = runner.Trainer._save
  saved_at_30 = []

  def save_then_die(trainer, kept):
    save(trainer, kept)
    if trainer.step == 30 and trainer.start_step == 20:
      saved_at_30.append(trainer.model_dir)
      if len(saved_at_30) == 3:
        raise _Killed()
  with monkeypatch.context() as patch:
    patch.setattr(runner.Trainer, "_save", save_then_die)
    with pytest.raises(_Killed):
      _train(model_dir, LENET, bindings)
  return saved_at_30


def test_a_kill_mid_group_resumes_to_the_uninterrupted_weights(lenet_alone, tmp_path,
                                                               monkeypatch):
  """Killed after the first run of a group saved step 30 and before the others did: on the
  rerun the runs resume at different steps, and each still ends where it would have."""
  model_dir = tmp_path / "killed"
  saved_at_30 = _kill_mid_group(model_dir, GROUPED, monkeypatch)
  resumed = [d for d in saved_at_30 if files.exists(layout.resume_dir(d))]
  assert len(resumed) == 3  # three copies of k = 20 at step 30; the fourth at its start
  _train(model_dir, LENET, GROUPED)
  _assert_identical(_final_weights(lenet_alone), _final_weights(model_dir))


def test_a_group_whose_runs_are_partly_finished_trains_only_the_rest(
    lenet_alone, lenet_grouped, tmp_path, console):
  model_dir = tmp_path / "partial"
  shutil.copytree(lenet_grouped, model_dir)
  bindings = GROUPED
  manifest = files.read_json(layout.manifest(str(model_dir)))
  redo = [layout.run_dir(str(model_dir), run) for run in manifest["pairs"][-1]["copies"]]
  for run_dir in redo:
    files.rmtree(run_dir)
  console()
  _train(model_dir, LENET, bindings)
  said = console()
  assert said.count(": training in") == 2
  assert "Training 2 runs in one program, steps 20-60" in said
  _assert_identical(_final_weights(lenet_alone), _final_weights(model_dir))


def test_lenet_alphas_in_one_program_equal_one_at_a_time_and_resume(lenet_evaluated,
                                                                    lenet_grouped, tmp_path):
  grouped = tmp_path / "grouped"
  shutil.copytree(lenet_grouped, grouped)
  bindings = LENET_BINDINGS + MODES + ["evaluate.alphas_per_program = 4"]
  _train(grouped, LENET, bindings, "evaluate")
  measured = _evaluations(lenet_evaluated)
  assert _evaluations(grouped) == measured
  # Killed mid-sweep: the second group of alphas of a curve lost, its metrics not written.
  pair = files.read_json(layout.manifest(str(grouped)))["pairs"][0]["id"]
  curve_path = layout.curve(str(grouped), pair, mode="reset")
  curve = files.read_json(curve_path)
  del curve["points"]["4"]
  files.write_json_atomic(curve_path, curve)
  os.remove(layout.metrics(str(grouped), pair, "reset"))
  _train(grouped, LENET, bindings, "evaluate")
  assert _evaluations(grouped) == measured


def _interpolation_scalars(model_dir, pair, manifest):
  """How many interpolation scalars the pair's TensorBoard run holds."""
  run = layout.tensorboard_run(str(model_dir), layout.tensorboard_pair_name(
      pair, layout.rewind_width(manifest)))
  return sum(1 for path in tf.io.gfile.glob(os.path.join(run, "events.*"))
             for event in tf.compat.v1.train.summary_iterator(path)
             for value in event.summary.value if value.tag.split("/")[0] == "interpolation")


def test_several_pairs_curves_in_one_program_equal_one_at_a_time_and_resume(
    lenet_evaluated, lenet_grouped, tmp_path, console):
  """alphas_per_program above a curve's points: the curves of several pairs share a
  program (here all 4 pairs x 5 alphas, the cap), each bit for bit as measured one alpha at
  a time and each point in TensorBoard; a point lost in a kill is measured on the rerun."""
  grouped = tmp_path / "grouped"
  shutil.copytree(lenet_grouped, grouped)
  bindings = LENET_BINDINGS + ["evaluate.alphas_per_program = 500"]
  console()
  _train(grouped, LENET, bindings, "evaluate")
  said = console().splitlines()
  manifest = files.read_json(layout.manifest(str(grouped)))
  pairs = manifest["pairs"]
  alphas = files.read_json(layout.metrics(str(grouped), pairs[0]["id"]))["alphas"]
  assert len(pairs) == 4 and f"evaluate: {4 * len(alphas)} alphas per program" in said
  assert any("curves of 4 pairs in one program" in line for line in said)

  def curves(model_dir):
    return [files.read_json(layout.curve(str(model_dir), p["id"])) for p in pairs]

  def metrics(model_dir):
    return [files.read_json(layout.metrics(str(model_dir), p["id"]))[s]["instability"]
            for p in pairs for s in ("train", "test")]
  assert curves(grouped) == curves(lenet_evaluated)
  assert metrics(grouped) == metrics(lenet_evaluated)
  assert all(_interpolation_scalars(grouped, p, manifest) == 4 * len(alphas) for p in pairs)
  curve_path = layout.curve(str(grouped), pairs[1]["id"])
  curve = files.read_json(curve_path)
  del curve["points"]["2"]
  files.write_json_atomic(curve_path, curve)
  os.remove(layout.metrics(str(grouped), pairs[1]["id"]))
  _train(grouped, LENET, bindings, "evaluate")
  assert curves(grouped) == curves(lenet_evaluated)
  assert metrics(grouped) == metrics(lenet_evaluated)


def test_lenet_first_layer_factored_gives_the_curves_to_rounding_and_resumes(
    lenet_alone, lenet_evaluated, tmp_path):
  """evaluate.factor_first_layer: every point to float rounding, the endpoints exactly, and
  REPAIR (its scale folded into the first kernel) the exact way, bit for bit."""
  factored = tmp_path / "factored"
  shutil.copytree(lenet_alone, factored)
  bindings = LENET_BINDINGS + MODES + ["evaluate.alphas_per_program = 4",
                                       "evaluate.factor_first_layer = True"]
  _train(factored, LENET, bindings, "evaluate")
  expected, measured = _evaluations(lenet_evaluated), _evaluations(factored)
  assert measured.keys() == expected.keys()
  for name, saved in expected.items():
    if "repair" in name:
      assert measured[name] == saved, name
    elif name.endswith("curve.json") or "curve_" in name:
      points, last = saved["points"], str(len(saved["alphas"]) - 1)
      for i, point in points.items():
        got = measured[name]["points"][i]
        if i in ("0", last):
          assert got == point, (name, i)
        for split, values in point.items():
          # An argmax may flip on a tie broken by rounding: at most one of 300 examples.
          assert got[split]["error"] == pytest.approx(values["error"], abs=100 / 300 + 1e-9)
          assert got[split]["loss"] == pytest.approx(values["loss"], rel=1e-5)
  # The factored path was taken: its rounding shows somewhere inside the default curves.
  assert any(measured[n] != expected[n] for n in expected if n.endswith("curve.json"))
  # Killed mid-sweep: a group of alphas lost; the rerun measures it again, the same way.
  pair = files.read_json(layout.manifest(str(factored)))["pairs"][0]["id"]
  curve_path = layout.curve(str(factored), pair)
  curve = files.read_json(curve_path)
  del curve["points"]["2"]
  files.write_json_atomic(curve_path, curve)
  os.remove(layout.metrics(str(factored), pair))
  _train(factored, LENET, bindings, "evaluate")
  assert _evaluations(factored) == measured


def test_lenet_under_xla_one_program_equals_alone(tmp_path, monkeypatch):
  """With training.jit_compile the group's steps are one XLA program; still bit for bit. With
  training.steps_per_program = 7 a launch runs up to 7 steps (a loop of 10 ends in a short,
  padded launch), their uint8 batches scaled in the program: the weights and train metrics
  of one step per launch, whose batches tf.data scaled. (A run alone with 7 steps per
  launch takes the same compiled loop, of one run.)
  The group of 7 steps per launch is killed mid-group (three of its four runs saved step 30)
  and rerun: its runs resume at different steps, in launches cut elsewhere, and still end
  bit for bit where they end alone. So does the group as two programs of two runs at once
  (training.programs_at_once), killed and rerun alike."""
  bindings = LENET_BINDINGS + ["training.jit_compile = True", "instability.rewind_steps = [20]"]
  several = bindings + ["training.steps_per_program = 7"]
  both = several + ["instability.copies_per_program = 4"]
  # Two programs of two runs, launched at once from two threads (group.GroupTrainer).
  programs = several + ["instability.copies_per_program = 2", "training.programs_at_once = 2"]
  _train(tmp_path / "alone", LENET, bindings)
  _train(tmp_path / "grouped", LENET, bindings + ["instability.copies_per_program = 4"])
  assert len(_kill_mid_group(tmp_path / "both", both, monkeypatch)) == 3
  _train(tmp_path / "both", LENET, both)
  # The other program may save its own step 30 before it stops at its loop's end.
  assert len(_kill_mid_group(tmp_path / "programs", programs, monkeypatch)) >= 3
  _train(tmp_path / "programs", LENET, programs)
  alone = _final_weights(tmp_path / "alone")
  for other in ("grouped", "both", "programs"):
    _assert_identical(alone, _final_weights(tmp_path / other))
    _assert_same_results(tmp_path / "alone", tmp_path / other)


@pytest.mark.parametrize("job, binding", [
    ("instability", "instability.copies_per_program = 0"),
    ("instability", "instability.copies_per_program = 'all'"),
    ("instability", "training.programs_at_once = 0"),
    ("evaluate", "evaluate.alphas_per_program = 0"),
    ("evaluate", "evaluate.factor_first_layer = 1"),
])
def test_a_bad_group_size_is_named(tmp_path, job, binding):
  with pytest.raises(errors.ConfigError, match=binding.split(" = ")[0]):
    _train(tmp_path / "exp", LENET, [binding], job)
  assert not os.path.exists(layout.manifest(str(tmp_path / "exp")))


IMP = [os.path.join(SMOKE, "lenet_mnist_imp_smoke.gin")]


def _runs_weights(model_dir, pattern=("runs", "*")):
  """{run directory name: {variable: array}} of every finished run's final checkpoint."""
  return {os.path.basename(run_dir): _model_weights(layout.checkpoint(
              run_dir, files.read_json(layout.summary(run_dir))["final_step"]))
          for run_dir in tf.io.gfile.glob(os.path.join(str(model_dir), *pattern))}


def test_imp_runs_of_several_inits_in_one_program_equal_each_alone(tmp_path):
  """IMP's parents and each level's runs of one variant, of two inits, train in one program,
  and so do a subnetwork's instability copies; every run (levels, baselines, parents,
  copies) ends bit-identical to alone, and the masks too."""
  bindings = ["imp.num_inits = 2", "imp.levels = 2", "imp.instability_levels = [1]",
              "imp.baselines_to_run = ('random_pruning', 'random_reinit')"]
  gin.clear_config()
  config.parse(IMP, bindings + ["imp.copies_per_program = 4"])
  from lmc_tf.experiments import imp  # pylint: disable=g-import-not-at-top
  plan = imp.imp(str(tmp_path / "plan"), None, plan_only=True)
  gin.clear_config()
  subs = [s for s in plan.steps if s.key.startswith(layout.INSTABILITY)]
  # The four parents at k = 0 (two inits, and random reinit's two), then per level and
  # variant the two inits' runs; each subnetwork's 2 copies (1 pair) in one step.
  assert [len(s.members) for s in plan.steps if s not in subs] == [4, 2, 2, 2, 2, 2, 2, 2]
  assert len(subs) == 2 * 3 and all(len(s.members) == 2 for s in subs)
  _train(tmp_path / "alone", IMP, bindings, "imp")
  _train(tmp_path / "grouped", IMP, bindings + ["imp.copies_per_program = 4"], "imp")
  alone = _runs_weights(tmp_path / "alone")
  assert len(alone) == 2 * (1 + 3 + 2 + 2) + 2 * 1  # parents, IMP levels, baselines, reinit parents
  _assert_identical(alone, _runs_weights(tmp_path / "grouped"))
  copies = ("instability", "*", "runs", "*")
  alone = _runs_weights(tmp_path / "alone", copies)
  assert len(alone) == 2 * 3 * 2
  _assert_identical(alone, _runs_weights(tmp_path / "grouped", copies))
