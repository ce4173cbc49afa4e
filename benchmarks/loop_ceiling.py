r"""How fast can LeNet's copies train on this machine at all: the ceiling of grouped training.

    .venv/bin/python benchmarks/loop_ceiling.py            # ~4 min on 2 cores

The instability job's grouped LeNet loops (one copy per XLA program, two programs at once:
`benchmarks/run_phases.py`) run at about 110k images/s on the project's 2-core VM. This
script measures, on synthetic in-memory data and outside lmc_tf, what bounds that figure:

- `matmul`: LeNet's first-layer product, [B, 784] x [784, 300], 1,000 times in one XLA
  program, in one program or in two launched at once from two threads. That layer is 88 %
  of LeNet's arithmetic, so its rate at B = 60 is about the best a batch-60 step can do.
- `train`: K LeNet-300-100 copies trained with Adam, 100 steps per XLA launch, in L programs
  launched at once, written two ways:
  - `separate`: each copy its own variables and matmuls (what lmc_tf's grouped loop does);
  - `stacked`: the K copies' variables stacked on a leading axis, one batched matmul per
    layer and one Adam update for all of them (the vectorised alternative issue 18 names).

Each configuration runs `--reps` times, interleaved, after a warm-up; it prints each rep and
a table of medians: images/s counting every copy's images, and GFLOP/s at 1.13 MFLOP per
image (the forward and weight-gradient products of the three layers and the input gradients
of the last two).
"""

import argparse
import os
import platform
import statistics
import threading
import time

import numpy as np
import tensorflow as tf

DIMS = (784, 300, 100, 10)
# Multiply-adds per image x 2: the forward products, the weight gradients, and the input
# gradients of the layers after the first.
FLOP_PER_IMAGE = 2 * (2 * sum(a * b for a, b in zip(DIMS[:-1], DIMS[1:]))
                      + sum(a * b for a, b in zip(DIMS[1:-1], DIMS[2:])))


def _adam(variables, gradients, m, v, t, lr=1.2e-3, b1=0.9, b2=0.999, eps=1e-8):
  """Keras's Adam step (bias correction folded into the rate)."""
  t = tf.cast(t, tf.float32)
  rate = lr * tf.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
  for w, g, mw, vw in zip(variables, gradients, m, v):
    mw.assign_add((g - mw) * (1.0 - b1))
    vw.assign_add((tf.square(g) - vw) * (1.0 - b2))
    w.assign_sub(mw * rate / (tf.sqrt(vw) + eps))


def _weights(rng, shape_prefix):
  kernels = [tf.Variable(rng.normal(0, 0.05, (*shape_prefix, a, b)).astype(np.float32))
             for a, b in zip(DIMS[:-1], DIMS[1:])]
  biases = [tf.Variable(np.zeros((*shape_prefix, b), np.float32)) for b in DIMS[1:]]
  return kernels + biases


def _slots(variables):
  return ([tf.Variable(tf.zeros_like(w)) for w in variables],
          [tf.Variable(tf.zeros_like(w)) for w in variables])


def train_program(layout, copies, batch, steps, rng):
  """A program that trains `copies` LeNets for `steps` steps on its [steps, copies, batch,
  784] images; returns it and its inputs."""
  step = tf.Variable(0, dtype=tf.int64)
  images = tf.constant(rng.random((steps, copies, batch, DIMS[0]), np.float32))
  labels = tf.constant(rng.integers(0, 10, (steps, copies, batch)).astype(np.int32))
  depth = len(DIMS) - 1
  if layout == "stacked":
    weights = _weights(rng, (copies,))
    m, v = _slots(weights)

    @tf.function(jit_compile=True)
    def program(x, y):
      totals = tf.zeros([copies])
      for i in tf.range(steps):
        with tf.GradientTape() as tape:
          h = x[i]
          for layer in range(depth):
            h = tf.einsum("kbi,kio->kbo", h, weights[layer]) + weights[depth + layer][:, None]
            if layer < depth - 1:
              h = tf.nn.relu(h)
          per_copy = tf.reduce_sum(
              tf.nn.sparse_softmax_cross_entropy_with_logits(y[i], h), -1)
          loss = tf.reduce_sum(per_copy) / batch
        gradients = tape.gradient(loss, weights)
        step.assign_add(1)
        _adam(weights, gradients, m, v, step)
        totals += per_copy
      return totals
  else:
    weights = [_weights(rng, ()) for _ in range(copies)]
    slots = [_slots(w) for w in weights]

    @tf.function(jit_compile=True)
    def program(x, y):
      totals = tf.zeros([copies])
      for i in tf.range(steps):
        step.assign_add(1)
        per_copy = []
        for c, (w, (m, v)) in enumerate(zip(weights, slots)):
          with tf.GradientTape() as tape:
            h = x[i, c]
            for layer in range(depth):
              h = tf.matmul(h, w[layer]) + w[depth + layer]
              if layer < depth - 1:
                h = tf.nn.relu(h)
            total = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y[i, c], h))
            loss = total / batch
          _adam(w, tape.gradient(loss, w), m, v, step)
          per_copy.append(total)
        totals += tf.stack(per_copy)
      return totals
  return program, (images, labels)


def matmul_program(batch, repeats, rng):
  x = tf.constant(rng.random((batch, DIMS[0]), np.float32))
  w = tf.Variable(rng.random((DIMS[0], DIMS[1]), np.float32))

  @tf.function(jit_compile=True)
  def program(x):
    acc = tf.zeros([batch, DIMS[1]])
    for i in tf.range(repeats):
      acc += tf.matmul(x + tf.cast(i, tf.float32), w)
    return acc
  return program, (x,)


def at_once(programs, calls):
  """Seconds for `calls` calls of every (program, inputs), each on its own thread."""
  def run(program, inputs):
    for _ in range(calls):
      program(*inputs).numpy()
  threads = [threading.Thread(target=run, args=p) for p in programs]
  tic = time.perf_counter()
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  return time.perf_counter() - tic


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--batch", type=int, default=60)
  p.add_argument("--steps", type=int, default=100, help="train steps per XLA launch")
  p.add_argument("--calls", type=int, default=20, help="launches per rep")
  args = p.parse_args()
  rng = np.random.default_rng(0)
  print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TF {tf.__version__}; batch {args.batch}, {FLOP_PER_IMAGE / 1e6:.2f} MFLOP per image")

  # name -> (programs, images per rep or None, FLOP per rep)
  cases = {}
  for batch in sorted({args.batch, 2 * args.batch}):
    for count in (1, 2):
      programs = [matmul_program(batch, 1000, rng) for _ in range(count)]
      cases[f"matmul B={batch}, {count} program(s)"] = (
          programs, None, count * args.calls * 1000 * 2 * batch * DIMS[0] * DIMS[1])
  for layout, copies, count in [("separate", 1, 1), ("separate", 2, 1), ("stacked", 2, 1),
                                ("separate", 1, 2), ("separate", 2, 2), ("stacked", 2, 2),
                                ("stacked", 6, 1)]:
    programs = [train_program(layout, copies, args.batch, args.steps, rng)
                for _ in range(count)]
    images = count * copies * args.calls * args.steps * args.batch
    cases[f"train {layout}, K={copies} per program, {count} program(s)"] = (
        programs, images, images * FLOP_PER_IMAGE)
  for name, (programs, _, _) in cases.items():
    at_once(programs, 1)  # tracing and XLA compiling
  seconds = {name: [] for name in cases}
  for rep in range(args.reps):
    for name, (programs, images, _) in cases.items():
      seconds[name].append(at_once(programs, args.calls))
      rate = f"{images / seconds[name][-1]:,.0f} img/s" if images else ""
      print(f"rep {rep + 1}/{args.reps} {name}: {seconds[name][-1]:.2f} s {rate}", flush=True)
  print(f"\n| case | images/s | GFLOP/s |\n|---|---:|---:|")
  for name, (_, images, flop) in cases.items():
    median = statistics.median(seconds[name])
    rate = f"{images / median:,.0f}" if images else ""
    print(f"| {name} | {rate} | {flop / median / 1e9:.0f} |")


if __name__ == "__main__":
  main()
