r"""The evaluator on a trained instability experiment: one pair per program, several pairs
per program, and one pair with the first layer factored.

Each setting evaluates its own copy of the experiment (hard links of the runs, so nothing
trained is copied or touched; curves and metrics are written fresh because the grid
differs from any saved one), one after the other in fresh processes. It prints each
`--job=evaluate`'s wall time and whether the several-pairs curves equal the one-pair ones
bit for bit. The README's figures (*Many copies in one program*, alphas_per_program) are
its output on the full LeNet experiment that `grouped_vs_alone.py` trains:

    .venv/bin/python benchmarks/pairs_per_program.py --experiment=/tmp/grouping/grouped \
        --root=/tmp/pairs                                              # ~5 min, 2 cores
"""

import argparse
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lmc_tf import files  # noqa: E402  pylint: disable=g-import-not-at-top
from lmc_tf import layout  # noqa: E402  pylint: disable=g-import-not-at-top


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--experiment", required=True, help="a trained instability experiment")
  p.add_argument("--gin_file", default="gin_configs/lenet_mnist_instability.gin",
                 help="the config it was trained with")
  p.add_argument("--num_alphas", type=int, default=10)
  p.add_argument("--pairs", type=int, default=3, help="pairs per program in the 2nd run")
  p.add_argument("--root", required=True, help="an empty or new directory for the copies")
  args = p.parse_args(argv)
  if not files.exists(layout.manifest(args.experiment)):
    raise SystemExit(f"{args.experiment}: no instability manifest (train it first)")
  n = args.num_alphas
  settings = {"one pair": (n, False), f"{args.pairs} pairs": (args.pairs * n, False),
              "one pair, factored": (n, True)}
  times, dirs = {}, {}
  for name, (per_program, factor) in settings.items():
    model_dir = os.path.abspath(os.path.join(args.root, name.replace(" ", "_").replace(",", "")))
    if os.path.exists(model_dir):
      raise SystemExit(f"{model_dir} exists: give an empty --root")
    os.makedirs(os.path.dirname(model_dir), exist_ok=True)
    subprocess.run(["cp", "-al", os.path.abspath(args.experiment), model_dir], check=True)
    command = [sys.executable, "-m", "lmc_tf.main", f"--gin_file={args.gin_file}",
               f"--model_dir={model_dir}", "--job=evaluate",
               f"--gin_bindings=evaluate.num_alphas = {n}",
               f"--gin_bindings=evaluate.alphas_per_program = {per_program}",
               f"--gin_bindings=evaluate.factor_first_layer = {factor}"]
    print(f"$ {' '.join(command)}", flush=True)
    tic = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    times[name], dirs[name] = time.perf_counter() - tic, model_dir
  pairs = files.read_json(layout.manifest(args.experiment))["pairs"]
  same = sum(files.read_json(layout.curve(dirs["one pair"], pair["id"]))
             == files.read_json(layout.curve(dirs[f"{args.pairs} pairs"], pair["id"]))
             for pair in pairs)
  print(f"\n{len(pairs)} pairs x {n} alphas:")
  for name, seconds in times.items():
    print(f"  {name}: {seconds:.0f} s")
  print(f"  {same} of {len(pairs)} curves bit for bit the same, {args.pairs} pairs against one")


if __name__ == "__main__":
  main()
