"""Faults injected where results could be lost or poisoned: non-finite weights, truncated
checkpoints and result files, kills and reruns (and the wall time across them), two processes
on one directory, a directory of another config's experiment. Bad inputs named before
training are in test_bad_inputs.py."""

import glob
import os
import socket
import subprocess

import gin
import numpy as np
import pytest

from lmc_tf import config
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf import layout
from lmc_tf.training import checkpoints
from lmc_tf.training import runner
from tests.conftest import PYTHON
from tests.conftest import REPO
from tests.conftest import TINY
from tests.conftest import python_env

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_instability_smoke.gin")


def _truncate(path):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


def _all_checkpoints(run_dir):
  return sorted(p[:-len(".index")] for p in glob.glob(f"{run_dir}/checkpoints/**/ckpt-*.index",
                                                       recursive=True))


def test_non_finite_weights_are_never_checkpointed_and_a_rerun_stops_again(tmp_path):
  # The issue's repro: Table 1's LeNet and SGD at a huge rate, one step per loop, so the
  # step whose update overflows the weights (the momentum first) ends a loop.
  bindings = ["optimizer.learning_rate = 1e10", "training.steps = '50it'",
              "training.checkpoint_every = '1it'", "training.steps_per_loop = 1",
              "dataset.max_train_examples = 600", "dataset.max_test_examples = 300"]
  for _ in range(2):
    gin.clear_config()
    config.parse(["lenet_mnist.gin"], bindings)
    with pytest.raises(runner.NonFiniteLossError, match="non-finite training loss or weights"):
      jobs.run(str(tmp_path))
  saved = _all_checkpoints(str(tmp_path))
  assert len(saved) >= 2  # W_0 and the last finite resume point
  for path in saved:
    for key, value in checkpoints.checkpoint_tensors(path).items():
      if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        assert np.all(np.isfinite(value)), (path, key)
  assert not layout.is_finished(str(tmp_path))


def _trainer(run_dir, end_step=None):
  trainer = runner.Trainer(run_dir, end_step=end_step)
  return trainer, trainer.begin()


def test_an_unreadable_checkpoint_is_set_aside_and_the_newest_intact_one_resumes(
    tmp_path, bind, console):
  bind("training.checkpoint_steps = ['20it']")
  uninterrupted, _ = _trainer(str(tmp_path / "whole"))
  uninterrupted.train()
  run = str(tmp_path / "killed")
  trainer, _ = _trainer(run, end_step=40)
  trainer.train()
  for part in glob.glob(f"{run}/checkpoints/ckpt-40.data-*"):
    _truncate(part)
  trainer, step = _trainer(run)
  assert step == 20
  out = console()
  assert f"{run}/checkpoints/ckpt-40 cannot be read" in out
  assert glob.glob(f"{run}/checkpoints/ckpt-40.unreadable-*.index")  # renamed, not deleted
  trainer.train()
  # Resumed from the intact step-20 checkpoint, the run ends where an unbroken one does.
  whole = checkpoints.checkpoint_tensors(layout.checkpoint(str(tmp_path / "whole"), 60))
  resumed = checkpoints.checkpoint_tensors(layout.checkpoint(run, 60))
  assert whole.keys() == resumed.keys()
  for key in whole:
    np.testing.assert_array_equal(whole[key], resumed[key], err_msg=key)


def test_with_no_intact_checkpoint_the_run_restarts_and_says_so(tmp_path, bind, console):
  bind()
  run = str(tmp_path)
  trainer, _ = _trainer(run, end_step=30)
  trainer.train()
  for index in glob.glob(f"{run}/checkpoints/**/ckpt-*.index", recursive=True):
    _truncate(index)
  _, step = _trainer(run)
  assert step == 0
  assert "no intact checkpoint" in console()


def test_summary_is_written_once_and_survives_a_kill_after_the_final_checkpoint(
    tmp_path, bind):
  bind()
  first = jobs.run(str(tmp_path))
  with open(layout.summary(str(tmp_path)), "rb") as f:
    written = f.read()
  bind()
  assert jobs.run(str(tmp_path)) == first
  with open(layout.summary(str(tmp_path)), "rb") as f:
    assert f.read() == written  # a rerun of a finished run changes nothing
  os.remove(layout.summary(str(tmp_path)))  # as if killed after the final checkpoint
  bind()
  again = jobs.run(str(tmp_path))
  for key in ("train_loss", "train_accuracy", "test_accuracy", "final_step"):
    assert again[key] == first[key], key
  assert again["wall_time_s"] >= first["wall_time_s"]  # both processes' time


class _Killed(Exception):
  pass


def test_wall_time_sums_every_process_that_trained_the_run(tmp_path, bind, monkeypatch):
  run = str(tmp_path)
  _kill_after_the_resume_checkpoint(monkeypatch, 30)
  bind()
  with pytest.raises(_Killed):
    jobs.run(run)
  recorded = files.read_json(layout.wall_time(run))
  assert recorded["step"] == 30 and recorded["wall_time_s"] > 0
  monkeypatch.undo()
  # As if the killed process had trained for an hour: the resumed run adds its own time.
  files.write_json_atomic(layout.wall_time(run), {"wall_time_s": 3600.0, "step": 30})
  bind()
  summary = jobs.run(run)
  assert summary["final_step"] == 60
  assert summary["wall_time_s"] > 3600.0
  assert files.read_json(layout.summary(run))["wall_time_s"] == summary["wall_time_s"]


def _kill_after_the_resume_checkpoint(monkeypatch, step):
  save = runner.Trainer._save

  def save_then_die(trainer, kept):
    save(trainer, kept)
    if trainer.step == step:
      raise _Killed()  # as a kill right after the checkpoint at `step`

  monkeypatch.setattr(runner.Trainer, "_save", save_then_die)


def test_an_unreadable_resume_checkpoint_set_aside_outlives_the_end_of_the_run(
    tmp_path, bind, monkeypatch):
  run = str(tmp_path)
  _kill_after_the_resume_checkpoint(monkeypatch, 30)
  bind()
  with pytest.raises(_Killed):
    jobs.run(run)
  monkeypatch.undo()
  resume = layout.resume_dir(run)
  for part in glob.glob(f"{resume}/ckpt-30.data-*"):
    _truncate(part)
  bind()
  assert jobs.run(run)["final_step"] == 60
  # The final checkpoint supersedes the resume ones, but not the evidence of a damaged one.
  assert glob.glob(f"{resume}/ckpt-30.unreadable-*.index")
  assert not glob.glob(f"{resume}/ckpt-30.index")


def test_an_unreadable_wall_time_is_named_and_the_run_goes_on(tmp_path, bind, console):
  run = str(tmp_path)
  bind()
  trainer, _ = _trainer(run, end_step=30)
  trainer.train()
  _truncate(layout.wall_time(run))
  trainer, step = _trainer(run)
  assert step == 30
  assert f"{layout.wall_time(run)} cannot be read" in console()
  assert trainer.train()["wall_time_s"] >= 0


def test_a_damaged_result_file_is_named(tmp_path):
  path = str(tmp_path / "metrics.json")
  files.write_json_atomic(path, {"a": [1, 2, 3]})
  _truncate(path)
  with pytest.raises(files.UnreadableFileError, match="metrics.json is not valid JSON"):
    files.read_json(path)


@pytest.mark.slow
def test_the_evaluator_recomputes_a_damaged_pair_and_skips_an_unreadable_copy(
    tmp_path, console):
  exp = str(tmp_path / "exp")
  for job in ("instability", "evaluate"):
    gin.clear_config()
    config.parse([SMOKE], [])
    jobs.run(exp, job_override=job)
  manifest = files.read_json(layout.manifest(exp))
  damaged, unreadable = manifest["pairs"]
  before = files.read_json(layout.metrics(exp, damaged["id"]))
  _truncate(layout.metrics(exp, damaged["id"]))
  _truncate(layout.curve(exp, damaged["id"]))
  original = files.read_json(layout.metrics(exp, unreadable["id"]))
  os.remove(layout.metrics(exp, unreadable["id"]))
  copy_dir = layout.run_dir(exp, unreadable["copies"][1])
  for part in glob.glob(layout.checkpoint(copy_dir, unreadable["end_step"]) + ".data-*"):
    _truncate(part)
  console()
  gin.clear_config()
  config.parse([SMOKE], [])
  summary = jobs.run(exp, job_override="evaluate")
  out = console()
  assert f"{layout.metrics(exp, damaged['id'])} is not valid JSON" in out
  assert f"pair {unreadable['id']} not evaluated" in out
  assert "cannot be read" in out
  assert files.read_json(layout.metrics(exp, damaged["id"])) == before
  assert summary["pairs_done"] == 1 and summary["pairs_total"] == 2
  # The copy is no longer finished: the instability job trains it again, and then the
  # evaluator measures the pair as it would have the first time.
  assert not layout.is_finished(copy_dir)
  gin.clear_config()
  config.parse([SMOKE], [])
  jobs.run(exp, job_override="instability")
  assert layout.is_finished(copy_dir)
  gin.clear_config()
  config.parse([SMOKE], [])
  assert jobs.run(exp, job_override="evaluate")["pairs_done"] == 2
  assert files.read_json(layout.metrics(exp, unreadable["id"])) == original


def test_a_directory_of_another_config_is_refused_before_anything_is_written(tmp_path):
  exp = str(tmp_path)
  gin.clear_config()
  config.parse([SMOKE], ["instability.rewind_steps = [0]"])
  jobs.run(exp, job_override="instability")
  manifest = files.read_json(layout.manifest(exp))
  with open(layout.operative_config(exp)) as f:
    operative = f.read()
  events = glob.glob(f"{exp}/**/events.out.*", recursive=True)
  for other in ("optimizer.learning_rate = 0.5", "lenet.hidden = (8, 4)"):
    gin.clear_config()
    config.parse([SMOKE], ["instability.rewind_steps = [0]", other])
    for job in ("instability", "evaluate", "train"):
      with pytest.raises(config.ConfigError, match="different config's experiment") as e:
        jobs.run(exp, job_override=job)
      assert other.split(" = ")[0] in str(e.value)
  assert files.read_json(layout.manifest(exp)) == manifest
  with open(layout.operative_config(exp)) as f:
    assert f.read() == operative
  assert glob.glob(f"{exp}/**/events.out.*", recursive=True) == events
  # Logging, XLA and loop length are not another config: the experiment is found finished.
  gin.clear_config()
  config.parse([SMOKE], ["instability.rewind_steps = [0]", "training.log_every = '10it'",
                         "training.jit_compile = True", "training.steps_per_loop = 7"])
  assert jobs.run(exp, job_override="instability")["pairs"] == 1


def _snapshot(directory):
  """Every file under `directory` with its bytes, to show that nothing was written."""
  out = {}
  for path in sorted(glob.glob(f"{directory}/**", recursive=True)):
    if os.path.isfile(path):
      with open(path, "rb") as f:
        out[path] = f.read()
  return out


def test_a_differing_training_binding_is_named_under_its_own_name(tmp_path, bind):
  bind()
  jobs.run(str(tmp_path))
  for job in ("train", "evaluate"):
    bind("training.batch_size = 30")
    with pytest.raises(config.ConfigError, match="training.batch_size: 20 there, 30 here"):
      jobs.run(str(tmp_path), job_override=job)


def test_an_instability_directory_of_another_grid_is_refused(tmp_path):
  exp = str(tmp_path)
  gin.clear_config()
  config.parse([SMOKE], ["instability.rewind_steps = [0]"])
  jobs.run(exp, job_override="instability")
  before = _snapshot(exp)
  for other, named in (("instability.rewind_steps = [0, 20]", "instability.rewind_steps"),
                       ("instability.reset_schedule = True", "instability.reset_schedule")):
    gin.clear_config()
    config.parse([SMOKE], [other])
    with pytest.raises(config.ConfigError, match=f"different config's experiment.*{named}"):
      jobs.run(exp, job_override="instability")
    assert _snapshot(exp) == before
  # More pairs only grow the plan: the finished pair is kept, one more is trained.
  gin.clear_config()
  config.parse([SMOKE], ["instability.rewind_steps = [0]", "instability.num_pairs = 2"])
  assert jobs.run(exp, job_override="instability")["pairs"] == 2
  for path, data in before.items():
    if "/runs/" in path and path.endswith("summary.json"):
      with open(path, "rb") as f:
        assert f.read() == data


def test_an_imp_directory_of_another_pruning_config_is_refused(tmp_path, bind):
  exp = str(tmp_path)
  imp = ["experiment.job = 'imp'", "imp.levels = 1", "imp.baselines_to_run = []"]
  bind(*imp)
  jobs.run(exp)
  before = _snapshot(exp)
  for other in ("imp.pruning_fraction = 0.5", "imp.density = 0.5", "imp.init_seed = 3"):
    bind(*imp, other)
    with pytest.raises(config.ConfigError, match=f"{other.split(' = ')[0]}: .* there"):
      jobs.run(exp)
    assert _snapshot(exp) == before
  bind(*imp[:1], "imp.levels = 2", "imp.baselines_to_run = []")  # one more level
  assert [e["level"] for e in jobs.run(exp)["levels"]] == [0, 1, 2]


def test_a_run_directory_is_owned_by_one_live_process(tmp_path, bind):
  run = str(tmp_path / "run")
  sleeper = subprocess.Popen(["sleep", "60"])
  try:
    files.write_json_atomic(layout.lock(run), {"host": socket.gethostname(),
                                               "pid": sleeper.pid, "token": "theirs"})
    bind()
    with pytest.raises(errors.DirectoryBusyError, match=f"in use by process {sleeper.pid}"):
      jobs.run(run)
    assert not _all_checkpoints(run) and not layout.is_finished(run)
  finally:
    sleeper.kill()
    sleeper.wait()
  # Its holder is gone: the stale lock is taken over, and released when the run ends.
  bind()
  jobs.run(run)
  assert layout.is_finished(run) and not os.path.exists(layout.lock(run))


@pytest.mark.slow
def test_two_trainers_started_together_on_one_directory(tmp_path):
  run = str(tmp_path / "run")
  argv = [PYTHON, "-m", "lmc_tf.main", "--gin_file=lenet_mnist.gin", f"--model_dir={run}"] + [
      f"--gin_bindings={b}" for b in TINY + ["training.steps = '300it'"]]
  procs = [subprocess.Popen(argv, cwd=REPO, env=python_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
  outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
  codes = sorted(code for code, _, _ in outcomes)
  assert codes in ([0, 0], [0, 2]), outcomes
  for code, out, err in outcomes:
    if code == 2:  # the second waited for nothing: it was told who holds the directory
      assert "is in use by process" in err and "Traceback" not in err
    else:
      assert "Results:" in out
  assert layout.is_finished(run) and not os.path.exists(layout.lock(run))
  for path in _all_checkpoints(run):
    checkpoints.check_readable(path)
