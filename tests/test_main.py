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
  cmd = [PYTHON, "-m", "lmc_tf.main", f"--gin_file={LENET}", f"--model_dir={model_dir}"]
  cmd += [f"--gin_bindings={b}" for b in bindings]
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
  assert "Resuming from" in rerun.stdout
  final = lambda d: checkpoints.checkpoint_tensors(  # noqa: E731
      tf.train.latest_checkpoint(str(d / "checkpoints")))
  ref, resumed = final(tmp_path / "ref"), final(killed_dir)
  assert ref.keys() == resumed.keys()
  for key in ref:
    np.testing.assert_array_equal(ref[key], resumed[key], err_msg=key)
