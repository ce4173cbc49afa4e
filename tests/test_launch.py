"""tools/launch.py: the exact commands each subcommand prints with --dry_run, that they read back
through a shell into the intended argv with bindings lmc_tf accepts, and one real two-worker
MultiWorkerMirroredStrategy run on this CPU."""

import importlib.util
import json
import os
import shlex
import subprocess

import gin
import pytest

from lmc_tf import config
from tests.conftest import PYTHON, REPO, TINY, free_ports, python_env

LAUNCH = os.path.join(REPO, "tools", "launch.py")
CONFIG = "gin_configs/lenet_mnist.gin"
ZONE = "us-central2-b"
PIP_INSTALL = ".venv/bin/python -m pip install"


def _module():
  spec = importlib.util.spec_from_file_location("launch", LAUNCH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


launch = _module()


def _dry_run(*args):
  """The lines `tools/launch.py ARGS --dry_run` prints, and what it says on stderr."""
  result = subprocess.run([PYTHON, LAUNCH, *args, "--dry_run"], cwd=REPO, env=python_env(),
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  return result.stdout.splitlines(), result.stderr


def _flag_values(argv, flag):
  return [w.split("=", 1)[1] for w in argv if w.startswith(f"--{flag}=")]


def _assert_lmc_tf_command(argv, python, bindings, model_dir="runs/x"):
  """argv runs lmc_tf.main on the config with exactly `bindings`, and gin accepts them."""
  assert argv[:3] == [python, "-m", "lmc_tf.main"]
  assert _flag_values(argv, "gin_file") == [CONFIG]
  assert _flag_values(argv, "gin_bindings") == bindings
  assert _flag_values(argv, "model_dir") == [model_dir]
  gin.clear_config()
  config.parse([os.path.join(REPO, CONFIG)], bindings)
  return {b.split("=")[0]: gin.query_parameter(b.split("=")[0]) for b in bindings}


def _split_remote(line, prefix):
  """A line `PREFIX... <shell command>`: the words after `cd DIR &&` in its shell command."""
  words = shlex.split(line)
  assert words[:len(prefix)] == prefix
  remote = shlex.split(words[-1].removeprefix("--command="))
  assert remote[0] == "cd" and remote[2] == "&&"
  return remote[1], remote[3:]


# -- quoting ------------------------------------------------------------------------------

@pytest.mark.parametrize("word", [
    "plain", "--gin_bindings=strategy.name='tpu'", "--gin_bindings=a.b=\"x y\"", "it's $HOME",
    "a'b\"c\\d`e", "bang!'s", "", "--flag=", "x=y z", "{\"a\": [1, 2]}",
    "--command=cd lmc_tf && python -m x --gin_bindings=\"s='t'\""])
def test_quote_reads_back_as_the_same_word(word):
  assert shlex.split(launch.quote(word)) == [word]
  # And so it does in a real shell.
  printed = subprocess.run(["bash", "-c", "printf '%s\\0' " + launch.quote(word)],
                           capture_output=True, text=True, check=True).stdout
  assert printed == word + "\0"
  assert shlex.split(launch.format_command(["echo", word], {"TF_CONFIG": word})) == [
      f"TF_CONFIG={word}", "echo", word]


def test_quote_keeps_the_flag_bare_and_double_quotes_gin_strings():
  assert launch.quote("--gin_bindings=strategy.name='tpu'") == (
      "--gin_bindings=\"strategy.name='tpu'\"")
  assert launch.quote("--model_dir=runs/x") == "--model_dir=runs/x"


# -- gpu ------------------------------------------------------------------------------------

def test_gpu_runs_main_here_with_the_mirrored_strategy():
  lines, _ = _dry_run("gpu", f"--gin_file={CONFIG}", "--model_dir=runs/x", "--python=python3",
                      "--gin_bindings=training.steps='2ep'", "--job=train")
  assert lines == [
      "python3 -m lmc_tf.main --gin_file=gin_configs/lenet_mnist.gin "
      "--gin_bindings=\"strategy.name='mirrored'\" --gin_bindings=\"training.steps='2ep'\" "
      "--model_dir=runs/x --job=train"]
  argv = shlex.split(lines[0])
  assert _flag_values(argv, "job") == ["train"]
  values = _assert_lmc_tf_command(argv, "python3", ["strategy.name='mirrored'",
                                                    "training.steps='2ep'"])
  assert values["strategy.name"] == "mirrored"


def test_gpu_defaults_to_the_interpreter_running_the_launcher():
  lines, _ = _dry_run("gpu", f"--gin_file={CONFIG}", "--model_dir=runs/x")
  assert shlex.split(lines[0])[0] == PYTHON


# -- multi_worker ---------------------------------------------------------------------------

def test_multi_worker_over_ssh_gives_each_host_its_tf_config():
  lines, _ = _dry_run("multi_worker", "--workers=gpu1:2222,gpu2:2222", f"--gin_file={CONFIG}",
                      "--model_dir=runs/x", "--communication=nccl", "--repo_dir=/srv/lmc_tf")
  assert lines[0] == (
      "ssh gpu1 \"cd /srv/lmc_tf && TF_CONFIG='{\\\"cluster\\\":{\\\"worker\\\":[\\\"gpu1:2222\\\","
      "\\\"gpu2:2222\\\"]},\\\"task\\\":{\\\"type\\\":\\\"worker\\\",\\\"index\\\":0}}' "
      ".venv/bin/python -m lmc_tf.main --gin_file=gin_configs/lenet_mnist.gin "
      "--gin_bindings=\\\"strategy.name='multi_worker_mirrored'\\\" "
      "--gin_bindings=\\\"strategy.communication='nccl'\\\" --model_dir=runs/x\"")
  assert len(lines) == 2
  for index, (line, host) in enumerate(zip(lines, ["gpu1", "gpu2"])):
    repo_dir, words = _split_remote(line, ["ssh", host])
    assert repo_dir == "/srv/lmc_tf"
    name, _, value = words[0].partition("=")
    assert name == "TF_CONFIG" and json.loads(value) == {
        "cluster": {"worker": ["gpu1:2222", "gpu2:2222"]},
        "task": {"type": "worker", "index": index}}
    values = _assert_lmc_tf_command(words[1:], ".venv/bin/python", [
        "strategy.name='multi_worker_mirrored'", "strategy.communication='nccl'"])
    assert values == {"strategy.name": "multi_worker_mirrored",
                      "strategy.communication": "nccl"}


def test_multi_worker_local_sets_tf_config_in_the_environment():
  lines, _ = _dry_run("multi_worker", "--local", "--workers=127.0.0.1:5000,127.0.0.1:5001",
                      f"--gin_file={CONFIG}", "--model_dir=runs/x", "--python=python3")
  assert lines == [
      f"TF_CONFIG='{{\"cluster\":{{\"worker\":[\"127.0.0.1:5000\",\"127.0.0.1:5001\"]}},"
      f"\"task\":{{\"type\":\"worker\",\"index\":{i}}}}}' python3 -m lmc_tf.main "
      "--gin_file=gin_configs/lenet_mnist.gin "
      "--gin_bindings=\"strategy.name='multi_worker_mirrored'\" --model_dir=runs/x"
      for i in range(2)]
  for index, line in enumerate(lines):
    words = shlex.split(line)
    assert json.loads(words[0].removeprefix("TF_CONFIG="))["task"]["index"] == index
    _assert_lmc_tf_command(words[1:], "python3", ["strategy.name='multi_worker_mirrored'"])


def test_multi_worker_rejects_a_worker_without_a_port():
  result = subprocess.run([PYTHON, LAUNCH, "multi_worker", "--workers=gpu1", "--dry_run",
                           f"--gin_file={CONFIG}", "--model_dir=x"],
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 2 and "HOST:PORT" in result.stderr


# -- tpu ------------------------------------------------------------------------------------

def test_tpu_create_picks_the_runtime_for_one_host_or_a_pod_slice():
  lines, _ = _dry_run("tpu", "create", "my-tpu", f"--zone={ZONE}", "--accelerator_type=v4-8")
  assert lines == ["gcloud compute tpus tpu-vm create my-tpu --zone=us-central2-b "
                   "--accelerator-type=v4-8 --version=tpu-vm-tf-2.18.0-pjrt"]
  lines, _ = _dry_run("tpu", "create", "my-pod", f"--zone={ZONE}", "--project=proj",
                      "--accelerator_type=v5litepod-16", "--spot")
  assert lines == ["gcloud compute tpus tpu-vm create my-pod --zone=us-central2-b "
                   "--project=proj --accelerator-type=v5litepod-16 "
                   "--version=tpu-vm-tf-2.18.0-pod-pjrt --spot"]
  lines, _ = _dry_run("tpu", "create", "t", f"--zone={ZONE}", "--accelerator_type=v4-8",
                      "--runtime_version=tpu-vm-tf-2.18.0-pjrt-v5p-and-below")
  assert lines[0].endswith("--version=tpu-vm-tf-2.18.0-pjrt-v5p-and-below")


def test_tpu_setup_copies_the_checkout_to_every_worker_and_installs_tensorflow_tpu():
  lines, _ = _dry_run("tpu", "setup", "my-tpu", f"--zone={ZONE}", "--accelerator_type=v4-8")
  assert lines[0] == ("gcloud compute tpus tpu-vm ssh my-tpu --zone=us-central2-b --worker=all "
                      "--command='mkdir -p lmc_tf'")
  sources = " ".join(os.path.join(REPO, p) for p in
                     ("lmc_tf", "gin_configs", "tools", "pyproject.toml", "README.md"))
  assert lines[1] == (f"gcloud compute tpus tpu-vm scp {sources} my-tpu:lmc_tf "
                      "--zone=us-central2-b --recurse --worker=all")
  assert len(lines) == 3
  repo_dir, words = _split_remote(lines[2], ["gcloud", "compute", "tpus", "tpu-vm", "ssh",
                                             "my-tpu", "--zone=us-central2-b", "--worker=all"])
  assert repo_dir == "lmc_tf"
  steps = " ".join(shlex.quote(w) for w in words).split(" '&&' ")
  assert steps[:4] == ["sudo apt-get update", "sudo apt-get install -y python3.11 python3.11-venv",
                       "python3.11 -m venv .venv", f"{PIP_INSTALL} --upgrade pip"]
  install = shlex.split(steps[4])
  assert install[:5] == [".venv/bin/python", "-m", "pip", "install", "tensorflow-tpu==2.18.0"]
  assert install[-2:] == ["-f", "https://storage.googleapis.com/libtpu-tf-releases/index.html"]
  # Every other dependency of pyproject.toml, none of the CPU TensorFlow builds.
  assert set(install[5:-2]) == set(launch.project_dependencies())
  assert "keras>=3.15,<4" in install and not any(
      w.startswith(("tensorflow-cpu", "tensorflow>", "tensorboard")) for w in install)
  assert steps[5] == f"{PIP_INSTALL} --no-deps -e ."


def test_tpu_setup_of_a_pod_can_clone_and_adds_the_tpu_api_client():
  lines, _ = _dry_run("tpu", "setup", "my-pod", f"--zone={ZONE}", "--accelerator_type=v4-32",
                      "--repo_url=https://example.com/lmc_tf.git", "--branch=v1",
                      "--repo_dir=work/lmc")
  assert lines[0] == ("gcloud compute tpus tpu-vm ssh my-pod --zone=us-central2-b --worker=all "
                      "--command='git clone --depth=1 --branch=v1 "
                      "https://example.com/lmc_tf.git work/lmc'")
  assert len(lines) == 2 and " cloud-tpu-client " in lines[1]
  assert lines[1].split("--command=")[1].startswith("\"cd work/lmc && ")


def test_tpu_run_on_one_host_uses_the_local_tpu_on_every_worker():
  lines, stderr = _dry_run("tpu", "run", "my-tpu", f"--zone={ZONE}", "--accelerator_type=v4-8",
                           f"--gin_file={CONFIG}", "--model_dir=runs/x", "--job=train")
  assert lines == [
      "gcloud compute tpus tpu-vm ssh my-tpu --zone=us-central2-b --worker=all "
      "--command=\"cd lmc_tf && .venv/bin/python -m lmc_tf.main "
      "--gin_file=gin_configs/lenet_mnist.gin --gin_bindings=\\\"strategy.name='tpu'\\\" "
      "--gin_bindings=\\\"strategy.tpu='local'\\\" --model_dir=runs/x --job=train\""]
  assert not stderr
  _, argv = _split_remote(lines[0], ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu",
                                     "--zone=us-central2-b", "--worker=all"])
  values = _assert_lmc_tf_command(argv, ".venv/bin/python",
                                  ["strategy.name='tpu'", "strategy.tpu='local'"])
  assert values == {"strategy.name": "tpu", "strategy.tpu": "local"}


def test_tpu_run_on_a_pod_slice_runs_one_client_that_finds_the_hosts_by_name():
  lines, stderr = _dry_run("tpu", "run", "my-pod", f"--zone={ZONE}", "--project=proj",
                           "--accelerator_type=v4-32", f"--gin_file={CONFIG}",
                           "--model_dir=gs://bucket/runs/x")
  assert not stderr
  _, argv = _split_remote(lines[0], ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-pod",
                                     "--zone=us-central2-b", "--project=proj", "--worker=0"])
  _assert_lmc_tf_command(argv, ".venv/bin/python",
                         ["strategy.name='tpu'", "strategy.tpu='my-pod'"],
                         model_dir="gs://bucket/runs/x")
  # A model_dir off Cloud Storage is not shared by the pod's hosts: say so.
  _, stderr = _dry_run("tpu", "run", "my-pod", f"--zone={ZONE}", "--accelerator_type=v4-32",
                       f"--gin_file={CONFIG}", "--model_dir=runs/x")
  assert "gs://" in stderr


def test_tpu_delete():
  lines, _ = _dry_run("tpu", "delete", "my-tpu", f"--zone={ZONE}")
  assert lines == ["gcloud compute tpus tpu-vm delete my-tpu --zone=us-central2-b --quiet"]


@pytest.mark.parametrize("accelerator_type,pod", [
    ("v2-8", False), ("v3-32", True), ("v4-8", False), ("v4-16", True), ("v5litepod-4", False),
    ("v5litepod-8", False), ("v5litepod-16", True), ("v5p-8", False), ("v6e-64", True)])
def test_pod_slices_are_those_of_more_than_one_host(accelerator_type, pod):
  assert launch.slice_hosts_more_than_one(accelerator_type) is pod


def test_missing_gcloud_or_ssh_says_what_to_install(tmp_path):
  env = dict(python_env(), PATH=str(tmp_path))
  for args, hint in ((["tpu", "delete", "t", f"--zone={ZONE}"], "Google Cloud CLI"),
                     (["multi_worker", "--workers=h:1", f"--gin_file={CONFIG}",
                       "--model_dir=x"], "OpenSSH")):
    result = subprocess.run([PYTHON, LAUNCH, *args], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and hint in result.stderr, result.stderr


# -- a real run -----------------------------------------------------------------------------

@pytest.mark.slow
def test_multi_worker_local_trains_two_workers_on_this_cpu(tmp_path):
  workers = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
  bindings = TINY + ["training.steps = '20it'", "training.log_every = '10it'",
                     "training.checkpoint_every = '10it'", "training.jit_compile = False"]
  result = subprocess.run(
      [PYTHON, LAUNCH, "multi_worker", "--local", f"--workers={workers}",
       "--communication=ring", f"--gin_file={CONFIG}", f"--model_dir={tmp_path / 'run'}",
       "--job=train", *(f"--gin_bindings={b}" for b in bindings)],
      cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=240)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  for index in range(2):
    assert f"[worker {index}] Job 'train'" in result.stdout
  assert "(2 replica(s))" in result.stdout
  # The chief wrote the run directory; the other worker cleaned up after itself.
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["final_step"] == 20
  assert not [d for d in os.listdir(tmp_path / "run") if d.startswith(".worker")]
