r"""An instability experiment grouped as its config binds it, against one run at a time.

Runs the config's `instability` and `evaluate` jobs, each from an empty directory, one
after the other: as the config binds them (copies, steps and alphas per program, programs
at once, the factored first layer), then one at a time (those five set to 1 / False) for
init 0 only, whose runs and pairs are the same work as each other init's; then training
once more one copy at a time but with the config's steps per program, which is what
grouping the copies adds on its own. It prints the wall time of each job, the one-at-a-time times scaled by the
number of inits, and the gains; and checks init 0 between the directories: every run's
final weights and metrics bit for bit, every curve point's error and loss, every pair's
instability. The README's full-experiment table
(*Many copies in one program: on this CPU*) is its output for the default config.

    .venv/bin/python benchmarks/grouped_vs_alone.py --root=/tmp/grouping     # ~55 min, 2 cores
    .venv/bin/python benchmarks/grouped_vs_alone.py \
        --gin_file=gin_configs/lenet_mnist_instability_quick.gin --root=/tmp/quick  # ~4 min
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lmc_tf import files  # noqa: E402  pylint: disable=g-import-not-at-top
from lmc_tf import layout  # noqa: E402  pylint: disable=g-import-not-at-top

ONE_AT_A_TIME = ["instability.copies_per_program = 1", "training.programs_at_once = 1",
                 "training.steps_per_program = 1", "evaluate.alphas_per_program = 1",
                 "evaluate.factor_first_layer = False", "instability.num_inits = 1"]
# One copy per program, but the config's steps per program: what grouping copies adds alone.
ALONE_IN_LOOPS = [b for b in ONE_AT_A_TIME if not b.startswith("training.steps_per_program")]


def run_job(gin_file, model_dir, job, bindings):
  """Runs one lmc_tf job in a fresh process; returns its wall time in seconds."""
  command = [sys.executable, "-m", "lmc_tf.main", f"--gin_file={gin_file}",
             f"--model_dir={model_dir}", f"--job={job}"]
  command += [f"--gin_bindings={b}" for b in bindings]
  print(f"$ {' '.join(command)}", flush=True)
  tic = time.perf_counter()
  subprocess.run(command, cwd=REPO, check=True)
  return time.perf_counter() - tic


def final_runs(model_dir):
  """{run: end step} of every run in an instability experiment's manifest."""
  manifest = files.read_json(layout.manifest(model_dir))
  runs = {p["run"]: p["end_step"] for p in manifest["parents"].values()}
  for pair in manifest["pairs"]:
    runs.update({run: pair["end_step"] for run in pair["copies"]})
  return manifest, runs


def compare(alone_dir, grouped_dir, curves=True):
  """Init 0's runs (and pairs, with `curves`), one at a time against grouped: prints what
  differs."""
  manifest, runs = final_runs(alone_dir)
  different = 0
  for run, step in runs.items():
    readers = [tf.train.load_checkpoint(layout.checkpoint(layout.run_dir(d, run), step))
               for d in (alone_dir, grouped_dir)]
    for key in readers[0].get_variable_to_shape_map():
      if key.startswith("model/") and not np.array_equal(*(r.get_tensor(key) for r in readers)):
        different += 1
    summaries = [files.read_json(layout.summary(layout.run_dir(d, run)))
                 for d in (alone_dir, grouped_dir)]
    for key in ("test_accuracy", "test_loss", "train_loss", "train_accuracy"):
      different += summaries[0][key] != summaries[1][key]
  print(f"{len(runs)} runs: {different} differing model variables or metrics "
        "(0: bit for bit)")
  if not curves:
    return
  points = errors = unstable = 0
  worst = 0.0
  for pair in manifest["pairs"]:
    curves = [files.read_json(layout.curve(d, pair["id"])) for d in (alone_dir, grouped_dir)]
    for index, point in curves[0]["points"].items():
      for split, values in point.items():
        other = curves[1]["points"][index][split]
        points += 1
        errors += values["error"] != other["error"]
        worst = max(worst, abs(values["loss"] - other["loss"]) / abs(values["loss"]))
    metrics = [files.read_json(layout.metrics(d, pair["id"])) for d in (alone_dir, grouped_dir)]
    unstable += any(metrics[0][s]["instability"] != metrics[1][s]["instability"]
                    for s in ("train", "test") if s in metrics[0])
  print(f"{points} curve points: {errors} errors differ, losses within {worst:.2g} relative; "
        f"{unstable} of {len(manifest['pairs'])} pairs' instability differ")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--gin_file", default="gin_configs/lenet_mnist_instability.gin")
  p.add_argument("--root", required=True, help="an empty or new directory for the runs")
  args = p.parse_args(argv)
  grouped, alone, loops = (os.path.abspath(os.path.join(args.root, n))
                           for n in ("grouped", "alone", "alone_in_loops"))
  for d in (grouped, alone, loops):
    if os.path.exists(d):
      raise SystemExit(f"{d} exists: give an empty --root (every run starts from nothing)")
  times = {}
  for name, model_dir, bindings in (("grouped", grouped, []),
                                    ("alone", alone, ONE_AT_A_TIME)):
    for job in ("instability", "evaluate"):
      times[name, job] = run_job(args.gin_file, model_dir, job, bindings)
  # Evaluation does not depend on training's steps per program: only training is rerun.
  times["loops", "instability"] = run_job(args.gin_file, loops, "instability", ALONE_IN_LOOPS)
  times["loops", "evaluate"] = times["alone", "evaluate"]
  inits = len(files.read_json(layout.manifest(grouped))["parents"])
  print("\n| | one at a time, one step per program | one at a time, the config's steps "
        "per program | grouped | gain over each |\n|---|---:|---:|---:|---:|")
  for job, what in (("instability", "training"), ("evaluate", "evaluation")):
    one, in_loops = (inits * times[n, job] for n in ("alone", "loops"))
    both = times["grouped", job]
    print(f"| {what} (s) | {one:,.0f} ({inits} x {times['alone', job]:,.0f}) | "
          f"{in_loops:,.0f} ({inits} x {times['loops', job]:,.0f}) | {both:,.0f} | "
          f"{one / both:.2f}x, {in_loops / both:.2f}x |")
  compare(alone, grouped)
  print("one at a time in loops against grouped:")
  compare(loops, grouped, curves=False)


if __name__ == "__main__":
  main()
