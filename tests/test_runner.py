import gc
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from lmc_tf import config
from lmc_tf import jobs
from lmc_tf.training import checkpoints
from lmc_tf.training import runner


def _run(model_dir, bind, *bindings):
  bind(*bindings)
  return jobs.run(str(model_dir))


def _final(model_dir):
  return checkpoints.checkpoint_tensors(tf.train.latest_checkpoint(
      os.path.join(model_dir, "checkpoints")))


def test_train_job_writes_results_checkpoints_config_and_events(tmp_path, bind):
  results = _run(tmp_path, bind, "training.checkpoint_steps = [10, '1ep']")
  summary = json.load(open(tmp_path / "summary.json"))
  assert summary["final_step"] == 60 == results["final_step"]
  assert 0 <= summary["test_accuracy"] <= 100 and summary["test_accuracy"] > 30
  state = tf.train.get_checkpoint_state(str(tmp_path / "checkpoints"))
  steps = [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths]
  assert steps == [0, 10, 30, 60]
  assert not (tmp_path / "checkpoints" / "resume").exists()
  operative = (tmp_path / "operative_config.gin").read_text()
  assert "training.batch_size = 20" in operative and "model.name = 'lenet_300_100'" in operative

  acc = event_accumulator.EventAccumulator(str(tmp_path / "events"),
                                           size_guidance={"tensors": 0})
  acc.Reload()
  tags = set(acc.Tags()["tensors"])
  assert {"train/loss", "train/accuracy", "train/lr", "train/density", "test/accuracy",
          "test/loss", "operative_config"} <= tags
  assert [e.step for e in acc.Tensors("train/loss")] == [30, 60]
  assert [e.step for e in acc.Tensors("test/accuracy")] == [60]
  text = acc.Tensors("operative_config")[0].tensor_proto.string_val[0].decode()
  assert "training.batch_size = 20" in text


def test_same_seeds_give_identical_weights_other_seeds_do_not(tmp_path, bind):
  _run(tmp_path / "a", bind, "train.data_order_seed = 3")
  _run(tmp_path / "b", bind, "train.data_order_seed = 3")
  _run(tmp_path / "c", bind, "train.data_order_seed = 4")
  a, b, c = (_final(tmp_path / d) for d in "abc")
  assert len(a) > 10 and a.keys() == b.keys() == c.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_non_finite_loss_stops_the_run_and_writes_no_nan_checkpoint(tmp_path, bind):
  bind("optimizer.name = 'sgd'", "optimizer.learning_rate = 1e12",
       "training.checkpoint_every = '2it'", "training.log_every = '2it'")
  with pytest.raises(runner.NonFiniteLossError, match="non-finite training loss"):
    jobs.run(str(tmp_path))
  for directory in (tmp_path / "checkpoints", tmp_path / "checkpoints" / "resume"):
    latest = tf.train.latest_checkpoint(str(directory))
    if latest:
      for value in checkpoints.checkpoint_tensors(latest).values():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
          assert np.all(np.isfinite(value))
  assert not (tmp_path / "summary.json").exists()


def test_checkpoint_step_beyond_training_is_refused(tmp_path, bind):
  bind("training.checkpoint_steps = [100]")
  with pytest.raises(ValueError, match=r"beyond training.steps=60"):
    jobs.run(str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def test_rerun_of_a_finished_run_reuses_it(tmp_path, bind):
  first = _run(tmp_path, bind)
  second = _run(tmp_path, bind)
  assert second["final_step"] == 60
  assert second["test_accuracy"] == first["test_accuracy"]


def test_a_run_dir_of_another_config_is_refused(tmp_path, bind):
  _run(tmp_path, bind)
  with pytest.raises(config.ConfigError, match="different config"):
    _run(tmp_path, bind, "optimizer.learning_rate = 0.5")


def test_checkpoint_from_another_model_is_a_clear_error(tmp_path, bind):
  bind()
  runner.Trainer(str(tmp_path)).kept.save(0)
  bind("lenet.hidden = (64,)")
  trainer = runner.Trainer(str(tmp_path))
  with pytest.raises(ValueError, match="does not fit this model"):
    trainer.begin()


def test_a_copy_starts_from_the_parents_state_at_k_with_a_fresh_optimizer(tmp_path, bind):
  bind("training.checkpoint_steps = [20]")
  parent = runner.Trainer(str(tmp_path / "parent"), init_seed=5, end_step=20)
  parent.begin()
  parent.train()
  w_k = parent.model.get_weights()
  path = os.path.join(tmp_path, "parent", "checkpoints", "ckpt-20")
  assert parent.step == 20 and os.path.exists(path + ".index")

  copy = runner.Trainer(str(tmp_path / "copy"), init_seed=99, data_order_seed=7,
                        start_from=path, start_step=20)
  assert copy.begin() == 20
  for a, b in zip(copy.model.get_weights(), w_k):
    np.testing.assert_array_equal(a, b)
  assert int(copy.optimizer.iterations) == 0
  copy.train()
  assert copy.step == 60 and int(copy.optimizer.iterations) == 40
  # The copy's first kept checkpoint is W_k itself.
  state = tf.train.get_checkpoint_state(str(tmp_path / "copy" / "checkpoints"))
  assert [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] == [20, 60]


def test_schedule_offset_restarts_the_learning_rate(tmp_path, bind):
  bind("optimizer.name = 'sgd'", "optimizer.learning_rate = 0.1", "lr_schedule.warmup = '40it'")
  plain = runner.Trainer(str(tmp_path / "a"), start_step=20)
  reset = runner.Trainer(str(tmp_path / "b"), start_step=20, schedule_offset=20, end_step=80)
  plain.begin()
  reset.begin()
  assert float(plain.optimizer.learning_rate) == pytest.approx(0.05)
  assert float(reset.optimizer.learning_rate) == pytest.approx(0.0)


@pytest.mark.parametrize("policy,wrapped", [("mixed_bfloat16", False), ("mixed_float16", True)])
def test_mixed_precision_computes_low_keeps_float32_state(tmp_path, bind, policy, wrapped):
  bind(f"training.mixed_precision = '{policy}'", "training.steps = '20it'")
  trainer = runner.Trainer(str(tmp_path))
  compute = policy.split("_")[1]
  assert trainer.model.get_layer("dense_0").compute_dtype == compute
  # Weights, masks (and BN statistics) stay float32, so checkpoints fit a float32 model.
  assert {v.dtype for v in trainer.model.variables} == {"float32"}
  # float16 needs loss scaling; bfloat16 has float32's range.
  assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == wrapped
  trainer.begin()
  results = trainer.train()
  assert np.isfinite(results["test_loss"]) and results["final_step"] == 20
  # The policy does not leak into models built later.
  assert keras.config.dtype_policy().name == "float32"


def test_unknown_mixed_precision_policy_is_a_clear_error(tmp_path, bind):
  bind("training.mixed_precision = 'float8'")
  with pytest.raises(ValueError, match="mixed_precision='float8' must be one of"):
    runner.Trainer(str(tmp_path))


def test_a_finished_run_leaves_no_traced_graph_alive(tmp_path, bind):
  """A job's traced train and eval loops die with it, so a process that runs many jobs (the
  instability job's copies, a Ray worker, this suite) does not grow by every run's graph and
  variables. Keras all-reduces the gradients even on one replica, and TensorFlow registers
  that all-reduce's gradient for the whole process: it kept every train loop alive."""
  from tensorflow.python.framework import func_graph  # pylint: disable=g-import-not-at-top

  def graphs():
    gc.collect()
    return sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())

  _run(tmp_path / "a", bind)
  before = graphs()
  _run(tmp_path / "b", bind)
  _run(tmp_path / "c", bind)
  assert graphs() == before


@pytest.mark.parametrize("bindings", [[], ["training.jit_compile = True",
                                           "training.steps_per_program = 7"]],
                         ids=["graph", "xla"])
def test_a_run_that_reuses_a_finished_runs_build_trains_bit_for_bit_as_a_fresh_one(
    tmp_path, bind, monkeypatch, bindings):
  """The instability job's runs hand their model, optimizer and traced loop on to the next
  run of the same build (runner.BUILDS): a copy that takes them from its parent is reset to a
  fresh build's values (its init, masks, zero slots) and ends with the weights, slots and
  metrics of the same copy built afresh, without building or tracing again; its model values
  come from its start checkpoint alone (no model is built for it). A second parent that takes
  the build is reset to its own init's values, and ends as that parent built afresh."""
  from lmc_tf import distribute  # pylint: disable=g-import-not-at-top
  from lmc_tf.data import base as data_base  # pylint: disable=g-import-not-at-top
  from lmc_tf.experiments import common  # pylint: disable=g-import-not-at-top

  bind("training.checkpoint_steps = [20]", *bindings)
  built, traced = [], []
  monkeypatch.setattr(runner, "_Build", _counting(runner._Build, built))
  monkeypatch.setattr(runner, "_compiled_loop", _counting(runner._compiled_loop, traced))
  models = []
  monkeypatch.setattr(runner.registry, "build_model",
                      _counting(runner.registry.build_model, models))
  shared = dict(strategy=distribute.get_strategy(), data=data_base.get_dataset(),
                hparams=runner.TrainingHParams())
  runner.BUILDS.clear()
  masks = {"dense_0": np.random.RandomState(0).rand(784, 32) > 0.5}

  def train(name, **kwargs):
    run_dir = str(tmp_path / name)
    return common.train_run(run_dir, name, **shared, **kwargs), _final(run_dir)

  train("parent", init_seed=1, end_step=20)
  start = dict(init_seed=3, data_order_seed=4, augmentation_seed=5, masks=masks,
               start_from=str(tmp_path / "parent" / "checkpoints" / "ckpt-20"), start_step=20)
  reused, reused_weights = train("copy", **start)
  assert (len(built), len(traced), len(models)) == (1, 2, 1)  # its masks: its own loop
  again, _ = train("copy_again", **{**start, "data_order_seed": 6})
  assert (len(built), len(traced), len(models)) == (1, 2, 1)  # the same build and loop
  second = dict(init_seed=5, data_order_seed=2, end_step=20)
  second_parent, second_weights = train("second_parent", **second)
  assert (len(built), len(traced), len(models)) == (1, 2, 2)  # init 5's model, for its values
  runner.BUILDS.clear()
  fresh, fresh_weights = train("fresh_copy", **start)
  runner.BUILDS.clear()
  fresh_second, fresh_second_weights = train("fresh_second_parent", **second)
  assert len(built) == 3
  for (mine, mine_weights), (theirs, their_weights) in [
      ((reused, reused_weights), (fresh, fresh_weights)),
      ((second_parent, second_weights), (fresh_second, fresh_second_weights))]:
    assert mine_weights.keys() == their_weights.keys() and len(their_weights) > 10
    for key, value in their_weights.items():
      np.testing.assert_array_equal(mine_weights[key], value, err_msg=key)
    assert {k: v for k, v in mine.items() if k != "wall_time_s"} == {
        k: v for k, v in theirs.items() if k != "wall_time_s"}
  assert again["test_loss"] != fresh["test_loss"]


def _counting(fn, calls):
  def counted(*args, **kwargs):
    calls.append(1)
    return fn(*args, **kwargs)
  return counted
