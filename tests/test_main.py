"""The command line, as a user runs it: a real subprocess, real signals."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from lmc_tf.training import checkpoints
from tests.conftest import PYTHON, REPO, python_env

LENET = os.path.join(REPO, "gin_configs", "lenet_mnist.gin")


def _main(model_dir, *bindings, **kwargs):
  """lmc_tf.main on LeNet with `bindings`; an item starting with -- is a flag."""
  cmd = [PYTHON, "-m", "lmc_tf.main", f"--gin_file={LENET}", f"--model_dir={model_dir}"]
  cmd += [b if b.startswith("--") else f"--gin_bindings={b}" for b in bindings]
  return subprocess.run(cmd, env=python_env(), cwd=REPO, capture_output=True, text=True,
                        timeout=300, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("binding,name", [
    ("training.batchsize = 3", "batchsize"),
    ("trainng.steps = '10it'", "trainng"),
    ("optimizer.name = @nothing_here", "nothing_here"),
])
def test_bad_binding_exits_nonzero_naming_it_before_training(tmp_path, binding, name):
  result = _main(tmp_path / "run", binding)
  assert result.returncode != 0
  assert name in result.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_missing_gin_file_is_an_error(tmp_path):
  result = subprocess.run(
      [PYTHON, "-m", "lmc_tf.main", "--gin_file=no_such.gin", f"--model_dir={tmp_path}"],
      env=python_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0 and "no_such.gin" in result.stderr


RESUME = ["dataset.max_train_examples = 6000", "dataset.max_test_examples = 500",
          "training.steps = '60ep'", "training.checkpoint_every = '1ep'",
          "training.log_every = '10ep'", "training.steps_per_loop = 100",
          "training.checkpoint_steps = ['5ep']"]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_ends_bit_identical(tmp_path):
  # Uninterrupted reference.
  done = _main(tmp_path / "ref", *RESUME)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "Test accuracy" in done.stdout

  killed_dir = tmp_path / "killed"
  cmd = [PYTHON, "-m", "lmc_tf.main", f"--gin_file={LENET}", f"--model_dir={killed_dir}"]
  cmd += [f"--gin_bindings={b}" for b in RESUME]
  proc = subprocess.Popen(cmd, env=python_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  resume_dir = killed_dir / "checkpoints" / "resume"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    latest = tf.train.latest_checkpoint(str(resume_dir)) if resume_dir.exists() else None
    if latest and int(latest.rsplit("-", 1)[1]) >= 1000:
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not (killed_dir / "summary.json").exists(), "the run finished before the kill"

  rerun = _main(killed_dir, *RESUME)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert "Resuming from" in rerun.stderr
  final = lambda d: checkpoints.checkpoint_tensors(  # noqa: E731
      tf.train.latest_checkpoint(str(d / "checkpoints")))
  ref, resumed = final(tmp_path / "ref"), final(killed_dir)
  assert ref.keys() == resumed.keys()
  for key in ref:
    np.testing.assert_array_equal(ref[key], resumed[key], err_msg=key)


TINY_RUN = ["dataset.max_train_examples = 600", "dataset.max_test_examples = 200",
            "training.steps = '60it'", "training.log_every = '30it'",
            "training.checkpoint_every = '30it'"]


def _said(stream):
  """The lines lmc_tf logged to a stream, without TF's C++ start-up notes."""
  return [l for l in stream.splitlines() if l and "absl::InitializeLog" not in l
          and not l.startswith("I0000 ")]


@pytest.mark.slow
def test_absl_logging_flags_route_progress_and_warnings(tmp_path):
  """--log_dir writes every line to LOG_DIR/lmc_tf.INFO in absl's format and keeps the
  terminal to warnings; --verbosity=-1 keeps warnings only; results stay on stdout."""
  logs = tmp_path / "logs"
  run = tmp_path / "run"
  logged = _main(run, *TINY_RUN, f"--log_dir={logs}")
  assert logged.returncode == 0, logged.stderr[-2000:]
  assert "Test accuracy" in logged.stdout and "step 30/60" not in logged.stdout
  assert _said(logged.stderr) == []
  text = (logs / "lmc_tf.INFO").read_text()
  progress = [l for l in text.splitlines() if "step 30/60 ( 50%)" in l]
  assert len(progress) == 1 and progress[0].startswith("I") and "progress.py:" in progress[0]
  assert "steps/s | ETA" in progress[0] and "Job 'train'" in text
  assert "Sharding callback" not in text  # TF's own INFO lines need --verbosity=1

  # A warning reaches the terminal, bare, and the log file.
  os.remove(run / "summary.json")
  with open(run / "wall_time.json", "w") as f:
    f.write("{")
  warned = _main(run, *TINY_RUN)
  assert warned.returncode == 0, warned.stderr[-2000:]
  said = _said(warned.stderr)
  assert any(l.startswith("warning: ") and "wall_time_s counts this process" in l
             for l in said), said
  assert any(l.startswith("Resuming from ") for l in said), said

  quiet = _main(run, *TINY_RUN, "--verbosity=-1")
  assert quiet.returncode == 0 and _said(quiet.stderr) == []
  assert "Results:" in quiet.stdout

  remote = _main(run, *TINY_RUN, "--log_dir=gs://bucket/logs")
  assert remote.returncode == 2 and "--log_dir=gs://bucket/logs" in remote.stderr
