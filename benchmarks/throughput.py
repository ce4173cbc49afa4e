r"""Training and evaluation throughput of lmc_tf's own code paths (GitHub issue 6, "Speed").

    .venv/bin/python benchmarks/throughput.py --models=lenet_300_100,resnet20 --jit=both \
        --torch_python=$HOME/torchenv/bin/python --torch_bench=../shared/bench/torch_bench.py

What it times, on synthetic uint8 data handed to lmc_tf as a `data.base.ImageDataset`:
  train/<model>  images/s of `runner.Trainer`'s compiled loop (`_make_loop()` fed by
                 `_dataset()`, so the tf.data pipeline is included) at the Table 1 batch size;
                 one rep = one `loop(iterator, steps)` call, as `Trainer.train` makes them.
  eval/<model>   images/s of `evaluate.SplitEvaluator` over the test split (batch 1000).
  sweep/<model>  seconds for one 30-alpha interpolation sweep over 10,000 test images:
                 30 x the median time of `evaluator.Sweeper.sweep` at one alpha (interpolate,
                 assign, evaluate, write the curve point).

With --copies=1,2,6,9 (benchmarks/group_bench.py), also for every model and K:
  train/<model> K=<K>   aggregate images/s of K copies in one `group.GroupTrainer` loop
                        (instability.copies_per_program = K), every copy's images counted;
                        with --programs_at_once=2, also "K=<K> L=2": 2 programs of K copies
                        launched together from two threads (training.programs_at_once);
  sweep30/<model> M=<K> seconds for a whole 30-alpha sweep over 10,000 test images,
                        measured K alphas per program (evaluate.alphas_per_program = K);
                        with --factor_first_layer, LeNet's also with its first layer
                        factored (evaluate.factor_first_layer), named "... factored".

With --steps_per_program=1,100, the train rows (jit on) also with S steps per XLA launch
(training.steps_per_program = S), named "... S=<S>".

With --torch_python and --torch_bench, the PyTorch reference (../shared/bench/torch_bench.py)
runs as `--serve` subprocesses, and their reps alternate with ours round by round, so that
the machine's noise hits both sides alike: compare the ratios.
"""

import argparse
import contextlib
import dataclasses
import gzip
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import gin  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lmc_tf import config  # noqa: E402
from lmc_tf import distribute  # noqa: E402
from lmc_tf.data import base as data_base  # noqa: E402
from lmc_tf.data import cifar10  # noqa: E402,F401  (registers the 'cifar10' configurable)
from lmc_tf.data import mnist  # noqa: E402
from lmc_tf.evaluation import barrier  # noqa: E402
from lmc_tf.evaluation import evaluator as evaluator_lib  # noqa: E402
from lmc_tf.models import layers  # noqa: E402
from lmc_tf.models import registry  # noqa: E402
from lmc_tf.training import evaluate  # noqa: E402
from lmc_tf.training import runner  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import group_bench  # noqa: E402  pylint: disable=g-import-not-at-top

# Each benchmark builds its own Trainer, hence its own loop: the retracing warning is expected.
tf.get_logger().setLevel("ERROR")

NUM_ALPHAS = 30
EVAL_BATCH = 1000

# Table 1: each model's dataset, batch and optimizer, and the default number of train steps
# in one timed rep (about a second or more on a 2-core machine).
SGD = ("optimizer.name = 'sgd'", "optimizer.learning_rate = 0.1",
       "optimizer.momentum = 0.9", "optimizer.weight_decay = 1e-4")
MODELS = {
    "lenet_300_100": dict(dataset="mnist", batch=60, steps=1000, jit=True, optimizer=(
        "optimizer.name = 'adam'", "optimizer.learning_rate = 1.2e-3")),
    "resnet20": dict(dataset="cifar10", batch=128, steps=20, jit=False, optimizer=SGD),
    "vgg16": dict(dataset="cifar10", batch=128, steps=5, jit=False, optimizer=SGD),
}
# jit: training.jit_compile as the model's gin config binds it (--jit=config): XLA speeds up
# LeNet on CPU and slows the conv nets (README, Speed).
# The real datasets' shapes and sizes; the synthetic files have the same.
DATASETS = {"mnist": dict(shape=(28, 28, 1), num_train=60000),
            "cifar10": dict(shape=(32, 32, 3), num_train=50000)}
# Our benchmark <-> the torch_bench.py task that does the same work.
TORCH_TASKS = {"train/resnet20": "resnet_train", "train/lenet_300_100": "lenet_train",
               "sweep/resnet20": "resnet_eval"}


# -- the machine ------------------------------------------------------------------------------

def machine():
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  flags = ""
  try:
    with open("/proc/cpuinfo") as f:
      flags = next((l for l in f if l.startswith("flags")), "")
  except OSError:
    pass
  return {"cpu": cpu, "cores": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
          "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count(),
          "avx512": " avx512f" in flags, "python": platform.python_version(),
          "tensorflow": tf.__version__, "keras": keras.__version__,
          "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
          "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


# -- synthetic data and models ----------------------------------------------------------------

def _write_idx(path, array):
  """An idx file of uint8 (mnist.read_idx's format), gzipped."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
  with gzip.open(path, "wb", compresslevel=1) as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def synthetic_files(dataset, directory, num_train=None, num_test=10000, seed=0):
  """Random uint8 images and labels in the files the real loader reads; returns gin bindings
  that point the loader at them.

  Going through lmc_tf's own loader keeps its standardisation and augmentation (CIFAR-10's
  pad-crop-flip) in the timed pipeline.
  """
  shape, n = DATASETS[dataset]["shape"], num_train or DATASETS[dataset]["num_train"]
  rng = np.random.default_rng(seed)
  arrays = {"x_train": rng.integers(0, 256, (n,) + shape, dtype=np.uint8),
            "y_train": rng.integers(0, 10, n, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (num_test,) + shape, dtype=np.uint8),
            "y_test": rng.integers(0, 10, num_test, dtype=np.uint8)}
  if dataset == "mnist":
    for key, name in mnist.FILES.items():
      array = arrays[key][..., 0] if key.startswith("x") else arrays[key]
      _write_idx(os.path.join(directory, name), array)
    return ["dataset.name = 'mnist'", "mnist.source = 'files'",
            f"mnist.data_dir = '{directory}'"]
  path = os.path.join(directory, "cifar10.npz")
  np.savez(path, **arrays)
  return ["dataset.name = 'cifar10'", "cifar10.source = 'files'", f"cifar10.path = '{path}'"]


def random_masks(model, density, seed=0):
  """A 0/1 mask of `density` on every prunable layer, like torch_bench.py's."""
  rng = np.random.default_rng(seed)
  return {l.name: (rng.random(tuple(l.kernel.shape)) < density).astype(np.float32)
          for l in layers.masked_layers(model)}


def supports_mixed_precision():
  return "mixed_precision" in {f.name for f in dataclasses.fields(runner.TrainingHParams)}


def bind(model_name, data_bindings, total_steps=1, jit=False, mixed_precision=None,
         augment=True, steps_per_program=1, programs_at_once=1):
  """gin: the model's Table 1 row on the synthetic files, with `total_steps` of training."""
  spec = MODELS[model_name]
  bindings = [
      *data_bindings,
      f"model.name = '{model_name}'",
      *spec["optimizer"],
      f"training.batch_size = {spec['batch']}",
      f"training.steps = {total_steps}",
      f"training.eval_batch_size = {EVAL_BATCH}",
      f"training.jit_compile = {bool(jit)}",
      f"training.steps_per_program = {int(steps_per_program)}",
      f"training.programs_at_once = {int(programs_at_once)}",
  ]
  if spec["dataset"] == "cifar10":
    bindings.append(f"cifar10.augment = {bool(augment)}")
  if mixed_precision:
    bindings.append(f"training.mixed_precision = '{mixed_precision}'")
  gin.clear_config()
  config.parse([], bindings)


# -- our benchmarks ---------------------------------------------------------------------------

class Bench:
  """One thing to time: `rep(arg)` -> {"sec", "items", ...}; `info` from its warm-up."""

  side = "ours"

  def __init__(self, name, jit, info, rep):
    self.name, self.jit, self.info, self._rep = name, jit, info, rep
    self.results = []

  def cpu_seconds(self):
    """CPU time of the process that runs the rep, all threads."""
    t = os.times()
    return t.user + t.system

  def rep(self, arg=None):
    cpu = self.cpu_seconds()
    result = self._rep(arg)
    # Cores busy during the rep: about 2 on an idle 2-core machine; less means other
    # processes took the CPU (or threads sat waiting).
    result["cores_used"] = round((self.cpu_seconds() - cpu) / result["sec"], 2)
    self.results.append(result)
    return result

  def close(self):
    pass


def loop_lengths(steps, reps):
  """The loops a benchmark runs: one step, an untimed warm-up, then the timed reps."""
  return [1] + [steps] * (1 + reps)


def train_bench(model_name, data, data_bindings, jit, steps, reps, density, mixed_precision,
                augment, workdir, steps_per_program=1):
  """`Trainer`'s compiled loop and its tf.data pipeline, one `loop` call per rep."""
  lengths = loop_lengths(steps, reps)
  bind(model_name, data_bindings, sum(lengths), jit, mixed_precision, augment,
       steps_per_program)
  model_dir = tempfile.mkdtemp(prefix=f"train_{model_name}_", dir=workdir)
  trainer = runner.Trainer(model_dir, data=data)
  layers.set_masks(trainer.model, random_masks(trainer.model, density))
  iterator = trainer.start_training(lengths)
  loop = trainer._make_loop()  # pylint: disable=protected-access
  batch = trainer.hparams.batch_size

  def run(n):
    loss, _ = loop(iterator, tf.constant(n, tf.int64))
    return float(loss) / (n * batch)  # float() waits for the loop to finish

  info = {"model": model_name, "batch": batch, "steps_per_rep": steps, "jit": bool(jit),
          "xla_used": trainer._use_xla(),  # pylint: disable=protected-access
          "steps_per_program": trainer.steps_per_program,
          "mixed_precision": mixed_precision, "augment": data.augment is not None,
          "params": int(sum(np.prod(v.shape) for v in trainer.model.trainable_variables)),
          "num_train": data.num_train}
  tic = time.perf_counter()
  run(1)
  info["first_step_s"] = round(time.perf_counter() - tic, 2)
  run(steps)
  info["items_per_rep"] = steps * batch

  def rep(_):
    tic = time.perf_counter()
    loss = run(steps)
    return {"sec": time.perf_counter() - tic, "items": steps * batch, "loss": loss}

  return Bench(f"train/{model_name}", jit, info, rep)


def _policy(mixed_precision):
  """The runner's dtype policy scope, where it has one."""
  scope = getattr(runner, "dtype_policy", None)
  return scope(mixed_precision) if scope and mixed_precision else contextlib.nullcontext()


def eval_bench(model_name, data, data_bindings, density, mixed_precision):
  """`SplitEvaluator` over the 10,000-image test split; one rep = one pass."""
  bind(model_name, data_bindings, mixed_precision=mixed_precision)
  strategy = distribute.get_strategy()
  with strategy.scope(), _policy(mixed_precision):
    model = registry.build_model(init_seed=0, input_shape=data.image_shape,
                                 num_classes=data.num_classes)
  layers.set_masks(model, random_masks(model, density))
  split = evaluate.SplitEvaluator(strategy, model, data, "test", EVAL_BATCH)
  tic = time.perf_counter()
  split()
  info = {"model": model_name, "batch": EVAL_BATCH, "examples": split.num_examples,
          "mixed_precision": mixed_precision,
          "first_rep_s": round(time.perf_counter() - tic, 2)}
  tic = time.perf_counter()
  split()
  # Small models pass over the split in a few ms: repeat it so a rep lasts about a second.
  passes = max(1, round(1.0 / (time.perf_counter() - tic)))
  info["passes_per_rep"] = passes

  def rep(_):
    tic = time.perf_counter()
    for _ in range(passes):
      result = split()
    return {"sec": time.perf_counter() - tic, "items": passes * split.num_examples,
            "acc": result["accuracy"]}

  return Bench(f"eval/{model_name}", None, info, rep)


def perturbed(model, scale=0.05, seed=1):
  """A second endpoint: every variable but the masks moved by noise (variances kept > 0)."""
  rng = np.random.default_rng(seed)
  masks = {id(l.mask) for l in layers.masked_layers(model)}
  weights = []
  for v in model.variables:
    w = v.numpy()
    if id(v) not in masks and np.issubdtype(w.dtype, np.floating):
      w = w + scale * rng.standard_normal(w.shape).astype(w.dtype)
      if "variance" in v.path:
        w = np.abs(w)
    weights.append(w)
  return weights


def sweep_bench(model_name, data, data_bindings, density, workdir):
  """`Sweeper.sweep` at one alpha per rep, on the test split, batch 1000."""
  bind(model_name, data_bindings)
  sweeper = evaluator_lib.Sweeper(distribute.get_strategy(), data, ("test",), None, EVAL_BATCH)
  layers.set_masks(sweeper.model, random_masks(sweeper.model, density))
  weights_a = [v.numpy() for v in sweeper.model.variables]
  weights_b = perturbed(sweeper.model)
  curves = tempfile.mkdtemp(prefix="sweep_", dir=workdir)
  count = [0]

  def one(alpha):
    count[0] += 1
    path = os.path.join(curves, f"curve{count[0]}.json")  # fresh: sweep() resumes otherwise
    return sweeper.sweep(weights_a, weights_b, [alpha], path)[0]

  tic = time.perf_counter()
  one(0.0)
  info = {"model": model_name, "batch": EVAL_BATCH, "examples": data.num_test,
          "interp_vars": len(weights_a), "first_rep_s": round(time.perf_counter() - tic, 2)}
  one(1.0)

  def rep(alpha):
    alpha = 0.5 if alpha is None else alpha
    tic = time.perf_counter()
    point = one(alpha)
    return {"sec": time.perf_counter() - tic, "items": data.num_test,
            "error": point["test"]["error"]}

  return Bench(f"sweep/{model_name}", None, info, rep)


# -- the PyTorch reference --------------------------------------------------------------------

class TorchBench(Bench):
  """A torch_bench.py worker in --serve mode (proto.py: READY, then one RESULT per line)."""

  side = "torch"

  def __init__(self, name, python, script, task, compile_, steps, density, log_dir):
    cmd = [python, script, "--task", task, "--compile", str(int(compile_)), "--serve",
           "--density", str(density)]
    if steps:
      cmd += ["--steps", str(steps)]
    self._log_path = os.path.join(log_dir, f"torch_{task}_compile{int(compile_)}.log")
    self._log = open(self._log_path, "w")
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=self._log, text=True, bufsize=1)
    try:
      info = json.loads(self._expect("READY"))
    except BaseException:
      self.proc.kill()
      self._log.close()
      raise
    super().__init__(name, None, info, self._remote_rep)
    self.compile = bool(compile_)

  def _expect(self, tag):
    while True:
      line = self.proc.stdout.readline()
      if not line:
        self._log.flush()
        with open(self._log_path) as f:
          tail = f.read()[-3000:]
        raise RuntimeError(f"torch worker exited before {tag}; its stderr ends:\n{tail}")
      if line.startswith(tag + " "):
        return line[len(tag) + 1:]

  def cpu_seconds(self):
    with open(f"/proc/{self.proc.pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

  def _remote_rep(self, arg):
    self.proc.stdin.write(json.dumps(arg) + "\n")
    self.proc.stdin.flush()
    return json.loads(self._expect("RESULT"))

  def close(self):
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)
      except (OSError, subprocess.TimeoutExpired):
        self.proc.kill()
    self._log.close()


# -- running and reporting --------------------------------------------------------------------

def rate(result):
  return result["items"] / result["sec"]


def value(bench, task, stat):
  """The row's figure: images/s (train, eval) or seconds per 30-alpha sweep (sweep).

  stat='median' is the headline; stat='best' (fastest rep) is the least disturbed one, worth
  a look when the machine is shared.
  """
  if not bench.results:
    return None
  if task.startswith("sweep"):
    seconds = [r["sec"] for r in bench.results]
    # sweep/: one alpha per rep; sweep30/: a whole sweep per rep.
    scale = NUM_ALPHAS if task.startswith("sweep/") else 1
    return scale * (statistics.median(seconds) if stat == "median" else min(seconds))
  rates = [rate(r) for r in bench.results]
  return statistics.median(rates) if stat == "median" else max(rates)


def label(bench):
  if bench.side == "torch":
    return f"torch {'compile' if bench.compile else 'eager'}"
  return "ours" + ("" if bench.jit is None else f" jit={'on' if bench.jit else 'off'}")


def alternate(groups, reps):
  """Round by round, one rep of every bench of a group in turn (start rotated per round)."""
  alphas = [float(a) for a in barrier.alphas(NUM_ALPHAS)]
  rounds = max(reps.values())
  for r in range(rounds):
    for task, benches in groups.items():
      if r >= reps[task]:
        continue
      shift = r % len(benches)
      for bench in benches[shift:] + benches[:shift]:
        arg = alphas[(r * 7 + 3) % NUM_ALPHAS] if task.startswith("sweep/") else None
        result = bench.rep(arg)
        extra = f" ({NUM_ALPHAS * result['sec']:.1f} s per sweep)" if task.startswith(
            "sweep/") else (" (a whole sweep)" if task.startswith("sweep30/") else "")
        print(f"[round {r + 1}/{reps[task]}] {task:22s} {label(bench):16s} "
              f"{result['sec']:7.3f} s  {rate(result):9.1f} img/s  "
              f"{result['cores_used']:.2f} cores{extra}", flush=True)


def table(groups, stat="median"):
  """Rows: task, ours, torch eager, torch.compile, ours vs torch.compile."""
  rows = []
  for task, benches in groups.items():
    is_sweep = task.startswith("sweep")
    torch_by = {b.compile: value(b, task, stat) for b in benches if b.side == "torch"}
    for bench in (b for b in benches if b.side == "ours"):
      ours = value(bench, task, stat)
      compiled = torch_by.get(True)
      ratio = None
      if ours and compiled:
        ratio = compiled / ours if is_sweep else ours / compiled
      rows.append({"task": task + (" (s)" if is_sweep else " (img/s)"),
                   "ours": label(bench)[len("ours "):] or "-", "stat": stat,
                   "ours_value": ours, "torch_eager": torch_by.get(False),
                   "torch_compile": compiled, "speedup_vs_compile": ratio,
                   "reps": len(bench.results),
                   "ours_cores_used": statistics.median(
                       r["cores_used"] for r in bench.results)})
  return rows


def format_table(rows, stat="median"):
  def fmt(v, digits=1):
    if v is None:
      return "—"
    return f"{v:,.{digits}f}" if v < 1e4 else f"{v:,.0f}"
  head = ["task", "ours", f"ours ({stat})", "torch eager", "torch.compile",
          "ours vs torch.compile"]
  lines = [[r["task"], r["ours"], fmt(r["ours_value"]), fmt(r["torch_eager"]),
            fmt(r["torch_compile"]),
            "—" if r["speedup_vs_compile"] is None else f"{r['speedup_vs_compile']:.2f}x"]
           for r in rows]
  widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
  out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
         "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
  out += ["| " + " | ".join(str(x).ljust(w) for x, w in zip(line, widths)) + " |"
          for line in lines]
  return "\n".join(out)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default="",
                 help="comma-separated registry names (default: every one of "
                      f"{', '.join(MODELS)} that the registry has)")
  p.add_argument("--measure", default="train,eval,sweep",
                 help="which of train, eval, sweep to time (sweep needs resnet20)")
  p.add_argument("--steps", type=int, default=0,
                 help="train steps per rep (0: per model, "
                      + ", ".join(f"{m} {s['steps']}" for m, s in MODELS.items()) + ")")
  p.add_argument("--reps", type=int, default=5, help="timed train reps")
  p.add_argument("--eval_reps", type=int, default=3, help="timed eval passes over 10k images")
  p.add_argument("--sweep_reps", type=int, default=3,
                 help="timed alphas of the sweep (the sweep's time is 30 x their median)")
  p.add_argument("--sweep_model", default="resnet20")
  p.add_argument("--jit", choices=["both", "on", "off", "config"], default="both",
                 help="training.jit_compile for the train benchmarks (config: as each "
                      "model's gin config binds it, on for LeNet, off for the conv nets)")
  p.add_argument("--mixed_precision", default="",
                 choices=["", "mixed_bfloat16", "mixed_float16"],
                 help="bind training.mixed_precision (if the runner has it); eval and train")
  p.add_argument("--noaugment", dest="augment", action="store_false",
                 help="CIFAR-10 without pad-crop-flip (torch_bench.py has no augmentation)")
  p.add_argument("--density", type=float, default=0.2,
                 help="fraction of ones in each random mask (as torch_bench.py)")
  p.add_argument("--train_examples", type=int, default=0,
                 help="synthetic training set size (0: the real dataset's)")
  p.add_argument("--torch_python", default="",
                 help="python of a venv with torch (e.g. ~/torchenv/bin/python)")
  p.add_argument("--torch_bench", default="", help="path to torch_bench.py")
  p.add_argument("--torch_compile", choices=["both", "on", "off"], default="both")
  p.add_argument("--copies", default="",
                 help="comma-separated K: also time K copies trained in one program and the "
                      "30-alpha sweep at K alphas per program (e.g. 1,2,6,9)")
  p.add_argument("--steps_per_program", default="1",
                 help="comma-separated S: train rows with S steps per XLA launch "
                      "(training.steps_per_program; jit on only), e.g. 1,100")
  p.add_argument("--programs_at_once", default="1",
                 help="comma-separated L: with --copies, train rows of L programs of K copies "
                      "each launched together (training.programs_at_once), named "
                      "'... K=<K> L=<L>', every one of the K x L copies' images counted")
  p.add_argument("--factor_first_layer", action="store_true",
                 help="also time each sweep30 row with evaluate.factor_first_layer (models "
                      "whose first layer is dense: LeNet), named '... factored'")
  p.add_argument("--json", default="", help="write machine, settings and every rep here")
  args = p.parse_args(argv)
  if bool(args.torch_python) != bool(args.torch_bench):
    p.error("--torch_python and --torch_bench go together")
  args.mixed_precision = args.mixed_precision or None
  if args.mixed_precision and not supports_mixed_precision():
    p.error("--mixed_precision: this lmc_tf has no training.mixed_precision binding")
  return args


def main(argv=None):
  args = parse_args(argv)
  started = time.time()
  available = registry.names()
  models = [m for m in args.models.split(",") if m] or [m for m in MODELS if m in available]
  for m in models:
    if m not in MODELS:
      raise SystemExit(f"--models: {m!r} has no Table 1 row here; known: {sorted(MODELS)}")
    if m not in available:
      raise SystemExit(f"--models: {m!r} is not in the registry ({available})")
  measure = set(args.measure.split(","))
  copies = [int(k) for k in args.copies.split(",") if k]
  per_program = [int(s) for s in args.steps_per_program.split(",") if s] or [1]
  at_once = [int(n) for n in args.programs_at_once.split(",") if n] or [1]
  this = sys.modules[__name__]
  compiles = {"both": [False, True], "on": [True], "off": [False]}[args.torch_compile]

  info = machine()
  print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
  if inspect.signature(evaluate.SplitEvaluator).parameters.get("jit_compile") is None:
    print("note: SplitEvaluator has no jit_compile; eval and sweep run as plain tf.function",
          flush=True)

  workdir = tempfile.mkdtemp(prefix="lmc_tf_throughput_")
  groups, reps, files = {}, {}, {}
  try:
    for m in models:
      steps = args.steps or MODELS[m]["steps"]
      dataset = MODELS[m]["dataset"]
      if dataset not in files:
        print(f"writing synthetic {dataset} files ...", flush=True)
        os.makedirs(os.path.join(workdir, dataset))
        files[dataset] = synthetic_files(dataset, os.path.join(workdir, dataset),
                                         args.train_examples or None)
      data_bindings = files[dataset]
      bind(m, data_bindings, augment=args.augment)
      data = data_base.get_dataset()

      def add(name, build):
        print(f"building {name} ...", flush=True)
        bench = build()
        print(f"  ready: {json.dumps(bench.info)}", flush=True)
        groups.setdefault(name, []).append(bench)

      jits = {"both": [False, True], "on": [True], "off": [False],
              "config": [MODELS[m]["jit"]]}[args.jit]
      # (jit, S): S > 1 only where XLA compiles the step.
      variants = [(jit, s) for s in per_program for jit in jits if jit or s == 1]
      suffix = lambda s: "" if s == 1 else f" S={s}"  # noqa: E731
      if "train" in measure:
        for jit, s in variants:
          name = f"train/{m}{suffix(s)}"
          add(name, lambda jit=jit, s=s: train_bench(
              m, data, data_bindings, jit, steps, args.reps, args.density,
              args.mixed_precision, args.augment, workdir, s))
          reps[name] = args.reps
      if "eval" in measure:
        add(f"eval/{m}", lambda: eval_bench(m, data, data_bindings, args.density,
                                            args.mixed_precision))
        reps[f"eval/{m}"] = args.eval_reps
      if "sweep" in measure and m == args.sweep_model:
        add(f"sweep/{m}", lambda: sweep_bench(m, data, data_bindings, args.density, workdir))
        reps[f"sweep/{m}"] = args.sweep_reps
      for k in copies:
        if "train" in measure:
          for (jit, s), n in ((v, n) for v in variants for n in at_once):
            name = f"train/{m} K={k}{'' if n == 1 else f' L={n}'}{suffix(s)}"
            add(name, lambda jit=jit, k=k, s=s, n=n: group_bench.group_train_bench(
                this, m, data, data_bindings, jit, steps, args.reps, args.density,
                args.mixed_precision, args.augment, workdir, k, s, n))
            reps[name] = args.reps
        if "sweep" in measure:
          add(f"sweep30/{m} M={k}", lambda k=k: group_bench.group_sweep_bench(
              this, m, data, data_bindings, args.density, workdir, k))
          reps[f"sweep30/{m} M={k}"] = args.sweep_reps
          # LeNet, the one model here with a dense first layer (MNIST is its dataset).
          if args.factor_first_layer and k > 1 and MODELS[m]["dataset"] == "mnist":
            name = f"sweep30/{m} M={k} factored"
            add(name, lambda k=k: group_bench.group_sweep_bench(
                this, m, data, data_bindings, args.density, workdir, k, factored=True))
            reps[name] = args.sweep_reps
    if args.torch_python:
      for name in list(groups):
        task = TORCH_TASKS.get(name)
        if task is None:
          continue
        model = name.split("/", 1)[1]
        steps = (args.steps or MODELS[model]["steps"]) if name.startswith("train/") else 0
        for compile_ in compiles:
          print(f"starting torch {task} compile={int(compile_)} ...", flush=True)
          bench = TorchBench(name, args.torch_python, args.torch_bench, task, compile_,
                             steps, args.density, workdir)
          print(f"  ready: {json.dumps(bench.info)}", flush=True)
          groups[name].append(bench)
      info["torch"] = next((b.info.get("torch") for g in groups.values() for b in g
                            if b.side == "torch"), None)

    alternate(groups, reps)
    rows = table(groups)
    print()
    print(format_table(rows))
    best = table(groups, "best")
    print("\nThe fastest rep of each (the least disturbed by other processes):")
    print(format_table(best, "best"))
    print("(train and eval: images/s, higher is better; sweep: seconds for 30 alphas over "
          "10,000 images = 30 x the median (best: fastest) alpha, lower is better. Last "
          "column: how many times faster ours is than torch.compile.)")
    wall = time.time() - started
    info["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, TF {info['tensorflow']}"
          + (f", torch {info['torch']}" if info.get("torch") else "")
          + f"; load average {info['load_avg_1min']} at start, "
          f"{info['load_avg_1min_end']} at end; wall time {wall:.0f} s", flush=True)
    if args.json:
      out = {"machine": info, "args": vars(args), "wall_s": wall, "table": rows,
             "table_best": best,
             "benches": [{"task": t, "who": label(b), "info": b.info, "reps": b.results}
                         for t, bs in groups.items() for b in bs]}
      with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
      print(f"wrote {args.json}", flush=True)
  finally:
    for benches in groups.values():
      for bench in benches:
        bench.close()
    shutil.rmtree(workdir, ignore_errors=True)
  return groups


if __name__ == "__main__":
  benchmarks = main()  # held, so that returning from main() destroys nothing
  sys.stdout.flush()
  sys.stderr.flush()
  # Skip tearing down the benchmarks' TF objects: destroying a tf.data iterator waits for its
  # autotune thread, which took up to a minute per long-lived iterator on TF 2.21.
  os._exit(0)
