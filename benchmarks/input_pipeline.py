"""The CPU time of LeNet's input pipeline of chunked steps, and why its scaling is a table.

    .venv/bin/python benchmarks/input_pipeline.py      # ~30 s

For one copy of `gin_configs/lenet_mnist.gin` (batch 60), 6,000 steps in loops of 1,000 and
chunks of 100 (training.steps_per_program), it iterates, medians of --reps:
  - `data.train_chunks` as a train loop reads it (indices, gather; uint8 images);
  - its index stage alone, cut an epoch at a time (pipeline._train_step_chunks);
  - the same indices passed through tf.data step by step (in_chunks(_train_steps)).
and prints the CPU seconds of each (the process's, so tf.data's threads count). Then it
counts the uint8 values whose scaling, traced under XLA, differs from the pipeline's: what
the program's lookup table (pipeline.scaled) avoids.
"""

import argparse
import os
import statistics
import sys
import time

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lmc_tf import config  # noqa: E402  pylint: disable=g-import-not-at-top
from lmc_tf.data import base as data_base  # noqa: E402  pylint: disable=g-import-not-at-top
from lmc_tf.data import pipeline  # noqa: E402  pylint: disable=g-import-not-at-top

BATCH, LENGTHS, SIZE = 60, [1000] * 6, 100


def cpu_seconds(make, reps):
  times = []
  for _ in range(reps):
    ds = make()
    tic = time.process_time()
    for _ in ds:
      pass
    times.append(time.process_time() - tic)
  return statistics.median(times)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--reps", type=int, default=3)
  args = p.parse_args()
  config.parse([os.path.join(REPO, "gin_configs", "lenet_mnist.gin")], [])
  data = data_base.get_dataset()
  cases = {
      "train_chunks (what a loop reads)":
          lambda: data.train_chunks(BATCH, 1, 1, 0, LENGTHS, SIZE),
      "its indices, an epoch at a time":
          lambda: pipeline._train_step_chunks(data, BATCH, 1, 0, LENGTHS, SIZE),  # pylint: disable=protected-access
      "the indices step by step":
          lambda: pipeline.in_chunks(pipeline._train_steps(data, BATCH, 1, 0, sum(LENGTHS)),  # pylint: disable=protected-access
                                     LENGTHS, SIZE),
  }
  print(f"{sum(LENGTHS)} steps of batch {BATCH}, chunks of {SIZE}, one copy:")
  for name, make in cases.items():
    print(f"  {name}: {cpu_seconds(make, args.reps):.2f} CPU s")
  values = tf.cast(tf.range(256)[:, None], tf.uint8)
  traced = tf.function(lambda x: pipeline._scale(x, data), jit_compile=True)(values)  # pylint: disable=protected-access
  table = pipeline.scaled(values, data)
  differ = int(tf.reduce_sum(tf.cast(tf.not_equal(traced, table), tf.int32)))
  print(f"uint8 values whose scaling traced under XLA differs from the pipeline's: {differ} "
        "of 256")


if __name__ == "__main__":
  main()
