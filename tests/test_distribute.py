"""The same steps under one device, MirroredStrategy on 2 logical CPUs, and two workers."""

import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf.training import runner
from lmc_tf import layout
from tests.conftest import PYTHON, REPO, TINY, free_ports, python_env

WORKER = os.path.join(REPO, "tests", "multi_worker_train.py")
# Few steps: float rounding differs between one and two replicas (the sums run in another
# order), and training amplifies it over many steps.
SHORT = ["training.steps = '10it'", "training.log_every = '5it'",
         "training.checkpoint_every = '5it'"]


def _weights(model_dir, bind, *bindings):
  bind(*bindings)
  trainer = runner.Trainer(str(model_dir), init_seed=1, data_order_seed=2)
  trainer.train()
  return trainer.model.get_weights(), trainer


def test_mirrored_on_two_cpus_matches_one_device(tmp_path, bind):
  common = SHORT + ["optimizer.name = 'sgd'", "optimizer.learning_rate = 0.1",
                    "optimizer.momentum = 0.9", "optimizer.weight_decay = 1e-4"]
  single, _ = _weights(tmp_path / "one", bind, *common)
  # jit_compile is asked for but cannot apply over logical CPUs: the run falls back to graphs.
  mirrored, trainer = _weights(tmp_path / "two", bind, *common, "strategy.name = 'mirrored'",
                               "strategy.num_cpu_devices = 2", "training.jit_compile = True")
  assert trainer.strategy.num_replicas_in_sync == 2
  # The configured batch is the global one: 2 replicas x 10 = 20 (TINY's training.batch_size).
  recorded = json.load(open(tmp_path / "two" / layout.RUN_CONFIG))
  assert recorded == {"strategy": "MirroredStrategy", "replicas": 2, "global_batch": 20,
                      "per_replica_batch": 10, "input_pipelines": 1, "hosts": 1,
                      "data_order_depends_on_input_pipelines": False}
  for a, b in zip(single, mirrored):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.array_equal(single[0], runner.Trainer(
      str(tmp_path / "fresh"), init_seed=1).model.get_weights()[0])  # it did train


@pytest.mark.slow
def test_multi_worker_mirrored_two_local_workers_end_identical(tmp_path, bind):
  ports = free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  bindings = TINY + SHORT + ["strategy.name = 'multi_worker_mirrored'",
                     "strategy.communication = 'ring'"]
  procs = []
  for index in range(2):
    env = python_env()
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                 "index": index}})
    out = tmp_path / f"weights_{index}.npz"
    procs.append(subprocess.Popen(
        [PYTHON, WORKER, str(tmp_path / "run"), str(out)] + bindings, env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  for p in procs:
    output, _ = p.communicate(timeout=300)
    assert p.returncode == 0, output[-3000:]
  w0, w1 = (np.load(tmp_path / f"weights_{i}.npz") for i in range(2))
  assert len(w0.files) == 9  # 3 kernels, 3 biases, 3 masks
  for key in w0.files:
    np.testing.assert_array_equal(w0[key], w1[key])
  # Only the chief writes the run directory; the other worker cleans up after itself.
  assert (tmp_path / "run" / "checkpoints").exists()
  assert not [d for d in os.listdir(tmp_path / "run") if d.startswith(".worker")]
  # And two workers of half the batch each do what one device does with the whole batch.
  single, _ = _weights(tmp_path / "single", bind, *SHORT)
  for key, want in zip(w0.files, single):
    np.testing.assert_allclose(w0[key], want, rtol=1e-5, atol=1e-6)


def test_strategy_factory_rejects_unknown_names():
  try:
    distribute.get_strategy("mirored")
  except ValueError as e:
    assert "mirored" in str(e)
  else:
    raise AssertionError("no error")
  assert distribute.is_chief(tf.distribute.get_strategy())
