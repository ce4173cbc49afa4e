"""One group of K runs of a config on its real data, from empty directories: where the time goes.

    .venv/bin/python benchmarks/run_phases.py --copies=3 --steps=6000it

Builds K Trainers (init seeds 0..K-1, data order and augmentation seeds 1..K), begins them
and trains them together (group.GroupTrainer; one Trainer.train for K = 1), as the
instability job trains a group. It prints the seconds spent building, beginning and
training, and the images/s of the compiled loops alone (every copy's images counted; the
first loop, which compiles, is timed apart). Rerun it alternating K = 1 and K = 3 to compare:
on a 2-core VM one run's figure moves by 10 % or more.

With --groups=N it trains N such groups one after another, as a job does: each group takes
the builds (model, optimizer, traced and compiled loops) the group before it released
(runner.BUILDS), unless --no-reuse; the later groups' figures show what that saves.
"""

import argparse
import os
import tempfile
import time

import tensorflow as tf

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.data import base as data_base
from lmc_tf.data import pipeline
from lmc_tf.training import group
from lmc_tf.training import runner


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--gin_file", default="gin_configs/lenet_mnist.gin")
  p.add_argument("--copies", type=int, default=3)
  p.add_argument("--steps", default="6000it", help="training.steps")
  p.add_argument("--groups", type=int, default=1, help="groups trained one after another")
  p.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                 help="each group reuses the builds the one before released")
  p.add_argument("--fixed_input", action="store_true",
                 help="each run reads its first chunk over and over (steps_per_program > 1): "
                      "the loops without the input pipeline's work, to compare")
  p.add_argument("--gin_bindings", action="append", default=[],
                 help="more bindings, e.g. training.programs_at_once=2 (repeatable)")
  args = p.parse_args()
  config.parse([args.gin_file], [f"training.steps = '{args.steps}'", *args.gin_bindings])
  program_times = []  # per compiled loop (one per program), the seconds of each call
  make_loop = runner.compiled_loop

  def timed_loop(trainers):
    loop = make_loop(trainers)
    times = []
    program_times.append(times)

    def run(*loop_args):
      tic = time.perf_counter()
      totals = loop(*loop_args).numpy()
      times.append(time.perf_counter() - tic)
      return totals
    run.get_concrete_function = loop.get_concrete_function  # the group traces it first
    return run
  runner.compiled_loop = timed_loop
  host_times = []
  after_loop = runner.Trainer.after_loop

  def timed_after_loop(self, *a, **k):
    tic = time.perf_counter()
    out = after_loop(self, *a, **k)
    host_times.append(time.perf_counter() - tic)
    return out
  runner.Trainer.after_loop = timed_after_loop

  if args.fixed_input:
    train_chunks = pipeline.train_chunks

    def fixed_chunks(data, batch_size, order_seed, augmentation_seed, start, lengths, size,
                     *rest):
      first = next(iter(train_chunks(data, batch_size, order_seed, augmentation_seed, start,
                                     lengths, size, *rest)))
      return tf.data.Dataset.from_tensors(first).repeat(sum(-(-n // size) for n in lengths))
    pipeline.train_chunks = fixed_chunks
  strategy = distribute.get_strategy()
  data = data_base.get_dataset()
  root = tempfile.mkdtemp(prefix="run_phases-")
  for g in range(args.groups):
    del program_times[:], host_times[:]
    tic = time.perf_counter()
    trainers = [runner.Trainer(os.path.join(root, f"group{g}", f"run{i}"), init_seed=i,
                               data_order_seed=i + 1, augmentation_seed=i + 1,
                               strategy=strategy, data=data, reuse=args.reuse)
                for i in range(args.copies)]
    built = time.perf_counter() - tic
    for t in trainers:
      t.begin()
    begun = time.perf_counter() - tic - built
    lengths = runner.loop_lengths(trainers)
    trainer = trainers[0] if args.copies == 1 else group.GroupTrainer(trainers)
    tic = time.perf_counter()
    trainer.train()
    trained = time.perf_counter() - tic
    for t in trainers:
      t.release()
    images = args.copies * trainers[0].hparams.batch_size * sum(lengths[1:])
    # Programs at once run their loops on their own threads: the group's loops take as long
    # as the slowest program's.
    loop_times = [max(calls) for calls in zip(*program_times)]
    rate = images / sum(loop_times[1:]) if len(loop_times) > 1 else float("nan")
    which = f"group {g + 1}/{args.groups}: " if args.groups > 1 else ""
    first = "first loop, compiling" if g == 0 or not args.reuse else "first loop"
    print(f"{which}K={args.copies}, {sum(lengths)} steps: build {built:.2f} s, begin "
          f"{begun:.2f} s, train {trained:.2f} s ({first}, {loop_times[0]:.2f} s); later "
          f"loops {rate:,.0f} images/s; {len(loop_times)} loops, host work after them "
          f"{sum(host_times):.2f} s", flush=True)
  print(f"runs in {root}")


if __name__ == "__main__":
  main()
