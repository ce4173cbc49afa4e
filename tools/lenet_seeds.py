"""Table 1's LeNet row: trains gin_configs/lenet_mnist.gin for several init seeds and prints
test accuracy mean +- sd and wall time, as quoted in the README.

  .venv/bin/python tools/lenet_seeds.py [--seeds 0 1 2] [--root runs/lenet_seeds]

Each seed uses the same value for init_seed and data_order_seed. Finished runs are reused.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--root", default=os.path.join(REPO, "runs", "lenet_seeds"))
  parser.add_argument("--gin_file", default=os.path.join(REPO, "gin_configs", "lenet_mnist.gin"))
  args = parser.parse_args()
  rows = []
  for seed in args.seeds:
    model_dir = os.path.join(args.root, f"seed_{seed}")
    summary = os.path.join(model_dir, "summary.json")
    if not os.path.exists(summary):
      subprocess.run([sys.executable, "-m", "lmc_tf.main", f"--gin_file={args.gin_file}",
                      f"--model_dir={model_dir}", f"--gin_bindings=train.init_seed={seed}",
                      f"--gin_bindings=train.data_order_seed={seed}"], check=True, cwd=REPO)
    with open(summary) as f:
      rows.append((seed, json.load(f)))
  print("\n| init seed | test accuracy | final step | wall time (s) |")
  print("|---|---|---|---|")
  for seed, r in rows:
    print(f"| {seed} | {r['test_accuracy']:.2f}% | {r['final_step']} | {r['wall_time_s']} |")
  accs = [r["test_accuracy"] for _, r in rows]
  sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
  print(f"| mean ± sd | {statistics.mean(accs):.2f} ± {sd:.2f} | | |")


if __name__ == "__main__":
  main()
