#!/usr/bin/env python3
r"""Runs an lmc_tf job on more hardware than this machine: a Cloud TPU VM or pod slice, all GPUs
of one host, or several GPU hosts. The job is the same `python -m lmc_tf.main` command as on a
laptop; only the strategy binding and where it runs change.

  python tools/launch.py gpu --gin_file=gin_configs/lenet_mnist.gin --model_dir=runs/lenet
  python tools/launch.py multi_worker --workers=gpu1:12345,gpu2:12345 \
      --gin_file=gin_configs/lenet_mnist.gin --model_dir=/shared/runs/lenet
  python tools/launch.py tpu create my-tpu --zone=us-central2-b --accelerator_type=v4-8
  python tools/launch.py tpu setup  my-tpu --zone=us-central2-b --accelerator_type=v4-8
  python tools/launch.py tpu run    my-tpu --zone=us-central2-b --accelerator_type=v4-8 \
      --gin_file=gin_configs/lenet_mnist.gin --model_dir=gs://BUCKET/runs/lenet
  python tools/launch.py tpu delete my-tpu --zone=us-central2-b

Every subcommand takes --dry_run: print the exact commands, one per line, shell-quoted so they
can be pasted into a shell, and run nothing. Standard library only, so it starts at once.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The newest TensorFlow in Google's table of TPU software versions
# (https://cloud.google.com/tpu/docs/runtimes). There is no TPU build of TF 2.21, the version
# the project pins: tensorflow-tpu stops at 2.20.0 on PyPI.
TPU_TF_VERSION = "2.18.0"
# tensorflow-tpu up to 2.18 pins libtpu==<its own version>, published here rather than on PyPI.
LIBTPU_TF_RELEASES = "https://storage.googleapis.com/libtpu-tf-releases/index.html"
# Python for the TPU VM's .venv (lmc_tf's keras>=3.15 needs 3.11), from Ubuntu's packages.
TPU_PYTHON = "python3.11"
# What a TPU VM needs of the checkout: the package, its configs and tools, and what pip reads.
TPU_COPY = ("lmc_tf", "gin_configs", "tools", "pyproject.toml", "README.md")
# The TensorFlow builds pyproject.toml names for CPUs; a TPU VM gets tensorflow-tpu instead.
CPU_ONLY_DEPENDENCIES = ("tensorflow", "tensorflow-cpu", "tensorboard")

INSTALL_HINTS = {
    "gcloud": "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), then "
              "run `gcloud auth login` and `gcloud config set project PROJECT`",
    "ssh": "install an OpenSSH client (Debian/Ubuntu: apt-get install openssh-client) and make "
           "sure `ssh HOST` logs in without a password prompt",
}


# -- shell quoting ------------------------------------------------------------------------

def _quote_value(value):
  """One shell word for `value`: single quotes, or double quotes when it holds a single quote."""
  if shlex.quote(value) == value:
    return value
  # Double quotes read better around gin's single-quoted strings. Inside them a shell expands
  # $, ` and (interactive bash) !, which shlex.split does not: leave those to single quotes.
  if "'" not in value or any(c in value for c in "$`!"):
    return shlex.quote(value)
  return '"' + re.sub(r'(["\\])', r"\\\1", value) + '"'


def quote(word):
  """Quotes one argv word, keeping `--flag=` bare: --gin_bindings="strategy.name='tpu'"."""
  flag, sep, value = word.partition("=")
  if sep and flag.startswith("--") and shlex.quote(flag) == flag:
    return flag + "=" + _quote_value(value)
  return _quote_value(word)


def format_command(argv, env=None):
  """The shell line that runs `argv` with `env` set; shlex.split gives the words back."""
  assignments = [f"{k}={_quote_value(v)}" for k, v in (env or {}).items()]
  return " ".join(assignments + [quote(w) for w in argv])


def remote_shell(repo_dir, argv, env=None):
  """A command for a remote shell: enter the checkout, then run `argv`."""
  return f"cd {_quote_value(repo_dir)} && {format_command(argv, env)}"


class Command:
  """One process to start: its argv and the environment variables it adds."""

  def __init__(self, argv, env=None):
    self.argv, self.env = list(argv), dict(env or {})

  def __str__(self):
    return format_command(self.argv, self.env)


# -- the lmc_tf command -------------------------------------------------------------------

def main_argv(python, args, strategy_bindings):
  """`python -m lmc_tf.main ...`: the launcher's strategy bindings first, so the user's
  --gin_bindings (later, so stronger in gin) can still override them."""
  argv = [python, "-m", "lmc_tf.main"]
  argv += [f"--gin_file={f}" for f in args.gin_file]
  argv += [f"--gin_bindings={b}" for b in list(strategy_bindings) + list(args.gin_bindings)]
  argv.append(f"--model_dir={args.model_dir}")
  if args.job:
    argv.append(f"--job={args.job}")
  return argv


def binding(name, value):
  return f"{name}={value!r}"


# -- gpu: every GPU of this host ------------------------------------------------------------

def gpu_commands(args):
  return [Command(main_argv(args.python or sys.executable, args,
                            [binding("strategy.name", "mirrored")]))]


# -- multi_worker: several GPU hosts ------------------------------------------------------

def parse_workers(text):
  workers = [w.strip() for w in text.split(",") if w.strip()]
  for w in workers:
    host, sep, port = w.rpartition(":")
    if not sep or not host or not port.isdigit():
      raise argparse.ArgumentTypeError(f"worker {w!r} is not HOST:PORT")
  if not workers:
    raise argparse.ArgumentTypeError("--workers needs at least one HOST:PORT")
  return workers


def tf_config(workers, index):
  """TF_CONFIG for worker `index`: the whole cluster and this task's place in it."""
  return json.dumps({"cluster": {"worker": list(workers)},
                     "task": {"type": "worker", "index": index}}, separators=(",", ":"))


def multi_worker_commands(args):
  bindings = [binding("strategy.name", "multi_worker_mirrored")]
  if args.communication:
    bindings.append(binding("strategy.communication", args.communication))
  commands = []
  for index, worker in enumerate(args.workers):
    env = {"TF_CONFIG": tf_config(args.workers, index)}
    if args.local:
      commands.append(Command(main_argv(args.python or sys.executable, args, bindings), env))
    else:
      host = worker.rpartition(":")[0]
      argv = main_argv(args.python or ".venv/bin/python", args, bindings)
      commands.append(Command(["ssh", host, remote_shell(args.repo_dir or REPO, argv, env)]))
  return commands


# -- tpu: a Cloud TPU VM or pod slice ------------------------------------------------------

def slice_hosts_more_than_one(accelerator_type):
  """True for a multi-host pod slice. The number after the dash counts TensorCores (v2-v4,
  v5p) or chips (v5e, v6e); every TPU generation puts 8 of them on one host."""
  match = re.fullmatch(r"v\d+[a-z]*-(\d+)", accelerator_type)
  if not match:
    raise argparse.ArgumentTypeError(
        f"accelerator type {accelerator_type!r} is not of the form v4-8, v5litepod-16, v5p-32")
  return int(match.group(1)) > 8


def runtime_version(tf_version, pod):
  """Google's naming: tpu-vm-tf-x.y.z[-pod]-pjrt (https://cloud.google.com/tpu/docs/runtimes)."""
  return f"tpu-vm-tf-{tf_version}{'-pod' if pod else ''}-pjrt"


def _gcloud(verb, positionals, args, *flags):
  project = [f"--project={args.project}"] if args.project else []
  return Command(["gcloud", "compute", "tpus", "tpu-vm", verb, *positionals,
                  f"--zone={args.zone}", *project, *flags])


def _tpu_ssh(args, worker, shell_command):
  return _gcloud("ssh", [args.name], args, f"--worker={worker}", f"--command={shell_command}")


def project_dependencies(pyproject=os.path.join(REPO, "pyproject.toml")):
  """pyproject.toml's dependencies, less the CPU TensorFlow builds (a TPU VM has its own)."""
  with open(pyproject) as f:
    text = f.read()
  block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M).group(1)
  requirements = [r.split(";")[0].strip() for r in re.findall(r'"([^"]+)"', block)]
  name = lambda r: re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower()  # noqa: E731
  return [r for r in requirements if name(r) not in CPU_ONLY_DEPENDENCIES]


def tpu_install_shell(tf_version, pod, python=TPU_PYTHON):
  """The checkout's .venv on a TPU VM: keras 3.15 needs Python 3.11, newer than the TPU images'
  Ubuntu 22.04 python3, so apt adds it. Then tensorflow-tpu matching the runtime and lmc_tf's
  other dependencies in one resolve, and lmc_tf itself without its CPU TensorFlow dependency."""
  packages = [f"tensorflow-tpu=={tf_version}", *project_dependencies()]
  if pod:
    packages.append("cloud-tpu-client")  # TPUClusterResolver(tpu=NAME) asks the TPU API
  venv_pip = [".venv/bin/python", "-m", "pip", "install"]
  steps = [["sudo", "apt-get", "update"],
           ["sudo", "apt-get", "install", "-y", python, f"{python}-venv"],
           [python, "-m", "venv", ".venv"],
           venv_pip + ["--upgrade", "pip"],
           venv_pip + packages + ["-f", LIBTPU_TF_RELEASES],
           venv_pip + ["--no-deps", "-e", "."]]
  return " && ".join(format_command(step) for step in steps)


def tpu_commands(args):
  if args.action == "create":
    pod = slice_hosts_more_than_one(args.accelerator_type)
    flags = [f"--accelerator-type={args.accelerator_type}",
             f"--version={args.runtime_version or runtime_version(args.tf_version, pod)}"]
    if args.spot:
      flags.append("--spot")
    return [_gcloud("create", [args.name], args, *flags)]
  if args.action == "delete":
    return [_gcloud("delete", [args.name], args, "--quiet")]
  if args.action == "setup":
    pod = slice_hosts_more_than_one(args.accelerator_type)
    repo_dir = _quote_value(args.repo_dir)
    if args.repo_url:
      clone = ["git", "clone", "--depth=1", *([f"--branch={args.branch}"] if args.branch else []),
               args.repo_url, args.repo_dir]
      fetch = [_tpu_ssh(args, "all", format_command(clone))]
    else:
      fetch = [_tpu_ssh(args, "all", f"mkdir -p {repo_dir}"),
               _gcloud("scp", [*(os.path.join(REPO, p) for p in TPU_COPY),
                               f"{args.name}:{args.repo_dir}"], args, "--recurse",
                       "--worker=all")]
    return fetch + [_tpu_ssh(args, "all",
                             f"cd {repo_dir} && {tpu_install_shell(args.tf_version, pod)}")]
  # run
  pod = slice_hosts_more_than_one(args.accelerator_type)
  # A pod slice runs one TensorFlow client, on worker 0, which drives the TPU servers of every
  # host: TPUClusterResolver finds them from the TPU's name. 'local' sees only its own host's
  # chips, which is what a single-host TPU VM has.
  bindings = [binding("strategy.name", "tpu"),
              binding("strategy.tpu", args.name if pod else "local")]
  argv = main_argv(args.python, args, bindings)
  return [_tpu_ssh(args, "0" if pod else "all", remote_shell(args.repo_dir, argv))]


# -- running ------------------------------------------------------------------------------

def require_tools(commands):
  for tool in sorted({c.argv[0] for c in commands}):
    if shutil.which(tool) is None:
      hint = INSTALL_HINTS.get(tool, f"install {tool}")
      raise SystemExit(f"error: `{tool}` is not on PATH: {hint}.")


def run_in_turn(commands):
  """Runs each command to its end, output streamed; stops at the first failure."""
  for command in commands:
    print(f"+ {command}", flush=True)
    rc = subprocess.call(command.argv, env=dict(os.environ, **command.env))
    if rc:
      print(f"error: exit status {rc}: {command}", file=sys.stderr)
      return rc
  return 0


def run_together(commands, poll_s=0.2):
  """Starts every command at once (the workers of one cluster), prefixes each line of output
  with its worker, and waits. When one fails the others are stopped: they would wait for it."""
  lock = threading.Lock()
  procs, readers = [], []

  def pump(index, stream):
    for line in stream:
      with lock:
        sys.stdout.write(f"[worker {index}] {line}")
        sys.stdout.flush()

  try:
    for index, command in enumerate(commands):
      print(f"+ [worker {index}] {command}", flush=True)
      proc = subprocess.Popen(command.argv, env=dict(os.environ, **command.env),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      procs.append(proc)
      reader = threading.Thread(target=pump, args=(index, proc.stdout), daemon=True)
      reader.start()
      readers.append(reader)
    failed = None
    while failed is None and any(p.poll() is None for p in procs):
      failed = next((i for i, p in enumerate(procs) if p.poll()), None)
      time.sleep(poll_s)
    failed = next((i for i, p in enumerate(procs) if p.poll()), None)
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.terminate()
    for proc in procs:
      proc.wait()
    for reader in readers:
      reader.join()
  if failed is not None:
    print(f"error: worker {failed} exited with status {procs[failed].returncode}",
          file=sys.stderr)
    return procs[failed].returncode
  return 0


# -- command line -------------------------------------------------------------------------

def _common(parser, job=True, model_dir_help="run directory"):
  parser.add_argument("--dry_run", action="store_true",
                      help="print the commands, one per line, shell-quoted; run nothing")
  if not job:
    return
  parser.add_argument("--gin_file", action="append", required=True,
                      help="gin config (repeatable), a path relative to the checkout")
  parser.add_argument("--gin_bindings", action="append", default=[],
                      help="gin binding (repeatable), e.g. \"training.steps='2ep'\"")
  parser.add_argument("--model_dir", required=True, help=model_dir_help)
  parser.add_argument("--job", help="run this job instead of the config's experiment.job")


def build_parser():
  parser = argparse.ArgumentParser(
      prog="tools/launch.py", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  targets = parser.add_subparsers(dest="target", required=True)

  gpu = targets.add_parser(
      "gpu", help="all GPUs of this host (MirroredStrategy)",
      description="Runs lmc_tf.main here with strategy.name='mirrored': one replica per GPU, "
                  "the configured global batch split between them. Run it from the checkout.")
  _common(gpu)
  gpu.add_argument("--python", help="interpreter (default: the one running this script)")

  mw = targets.add_parser(
      "multi_worker", help="several GPU hosts (MultiWorkerMirroredStrategy)",
      description="Starts one lmc_tf.main per worker, each with its TF_CONFIG and "
                  "strategy.name='multi_worker_mirrored', over ssh or (--local) on this "
                  "machine, and waits for all. Worker 0 is the chief and writes the run "
                  "directory; put --model_dir on storage every host sees (NFS, gs://), so "
                  "every worker resumes from the same checkpoints.")
  _common(mw)
  mw.add_argument("--workers", type=parse_workers, required=True,
                  help="HOST:PORT,HOST:PORT,...: the cluster, worker 0 first; PORT is the one "
                       "TensorFlow listens on, HOST is also what ssh connects to")
  mw.add_argument("--local", action="store_true",
                  help="start every worker here as a subprocess (testing, one big host)")
  mw.add_argument("--communication", choices=("auto", "ring", "nccl"),
                  help="strategy.communication: the collective implementation (nccl for GPUs)")
  mw.add_argument("--repo_dir", help="checkout on the hosts (default: this checkout's path)")
  mw.add_argument("--python", help="interpreter (default: .venv/bin/python in --repo_dir "
                                   "over ssh, this one with --local)")

  tpu = targets.add_parser(
      "tpu", help="a Cloud TPU VM or pod slice (TPUStrategy), through gcloud",
      description="Creates, sets up, runs on and deletes a Cloud TPU VM with `gcloud compute "
                  "tpus tpu-vm`. A pod slice (more than 8 cores or chips, e.g. v4-16, "
                  "v5litepod-16) runs one client on worker 0 that drives every host; its "
                  "--model_dir must be on Cloud Storage (gs://BUCKET/...), which every host "
                  "writes to (lmc_tf uses tf.io.gfile), and so must any data not bundled.")
  actions = tpu.add_subparsers(dest="action", required=True)
  for action, text in (("create", "create the TPU VM or pod slice"),
                       ("setup", "copy this checkout (or clone --repo_url) to every worker "
                                 "and pip install tensorflow-tpu and lmc_tf there"),
                       ("run", "run lmc_tf.main with strategy.name='tpu'"),
                       ("delete", "delete the TPU (billing stops)")):
    p = actions.add_parser(action, help=text, description=text)
    p.add_argument("name", help="TPU name")
    p.add_argument("--zone", required=True, help="e.g. us-central2-b")
    p.add_argument("--project", help="Google Cloud project (default: gcloud's)")
    _common(p, job=action == "run",
            model_dir_help="run directory; on a pod slice gs://BUCKET/..., since every host "
                           "writes to it (lmc_tf uses tf.io.gfile)")
    if action != "delete":
      p.add_argument("--accelerator_type", required=True,
                     help="e.g. v4-8 (one host), v4-32, v5litepod-16 (pod slices)")
    if action in ("create", "setup"):
      p.add_argument("--tf_version", default=TPU_TF_VERSION,
                     help="TensorFlow of the runtime and of tensorflow-tpu (default "
                          f"{TPU_TF_VERSION}); `gcloud compute tpus tpu-vm versions list "
                          "--zone=ZONE` lists what a zone offers")
    if action in ("setup", "run"):
      p.add_argument("--repo_dir", default="lmc_tf",
                     help="checkout on the workers, relative to the home directory")
    if action == "create":
      p.add_argument("--runtime_version",
                     help="TPU software version (default: tpu-vm-tf-TF_VERSION[-pod]-pjrt)")
      p.add_argument("--spot", action="store_true", help="a Spot TPU (cheaper, preemptible)")
    if action == "setup":
      p.add_argument("--repo_url", help="git clone this on every worker instead of copying "
                                        "this checkout")
      p.add_argument("--branch", help="with --repo_url: the branch or tag to clone")
    if action == "run":
      p.add_argument("--python", default=".venv/bin/python",
                     help="interpreter on the workers, relative to --repo_dir (setup makes it)")
  return parser


def commands_for(args):
  if args.target == "gpu":
    return gpu_commands(args)
  if args.target == "multi_worker":
    return multi_worker_commands(args)
  return tpu_commands(args)


def main(argv=None):
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    commands = commands_for(args)
  except argparse.ArgumentTypeError as e:
    parser.error(str(e))
  if (args.target == "tpu" and args.action == "run" and not args.model_dir.startswith("gs://")
      and slice_hosts_more_than_one(args.accelerator_type)):
    print(f"warning: --model_dir={args.model_dir} is not on Cloud Storage; every host of a "
          "pod slice writes to it, so use gs://BUCKET/...", file=sys.stderr)
  if args.dry_run:
    for command in commands:
      print(command)
    return 0
  require_tools(commands)
  try:
    return run_together(commands) if args.target == "multi_worker" else run_in_turn(commands)
  except KeyboardInterrupt:
    return 130


if __name__ == "__main__":
  sys.exit(main())
