"""LeNet-300-100's bare train step, alone and as K sub-models, outside lmc_tf's trainer.

What grouping can gain on this machine when only the arithmetic counts: fixed in-memory
batches (batch 60), plain SGD, no masks or metrics. Four forms of the step, each timed over
`--steps` steps, best of `--reps`, aggregate images/s over the K copies:

  launch     one XLA program per step, launched from a graph while-loop (as the trainer does)
  keras      the same with Keras Dense layers and keras.optimizers.SGD
  xla_loop   the whole loop inside one XLA program
  stacked    K copies as stacked variables with batched matmuls, whole loop in XLA

    python benchmarks/bare_step.py --copies=1,6 --steps=3000

The README's "Many copies in one program: on this CPU" quotes its figures beside
throughput.py's rows for the real trainer.
"""
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

_COPIES = flags.DEFINE_list("copies", ["1", "6"], "K values")
_STEPS = flags.DEFINE_integer("steps", 3000, "steps per timed call")
_REPS = flags.DEFINE_integer("reps", 3, "timed calls; the fastest is reported")
_FORMS = flags.DEFINE_list("forms", ["launch", "keras", "xla_loop", "stacked"], "step forms")

BATCH, LR, SIZES = 60, 0.1, (784, 300, 100, 10)


def _dense_params(rng, k, stacked):
  params = []
  for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
    shape = (k, fan_in, fan_out) if stacked else (fan_in, fan_out)
    bias = (k, 1, fan_out) if stacked else (fan_out,)
    params.append((tf.Variable(rng.normal(0, 0.05, shape).astype("f4")),
                   tf.Variable(np.zeros(bias, "f4"))))
  return params


def _mlp(h, params):
  for n, (w, b) in enumerate(params):
    h = tf.matmul(h, w) + b
    if n < len(params) - 1:
      h = tf.nn.relu(h)
  return h


def make_step(form, k, x, y):
  """A no-argument function doing one train step of all k copies."""
  rng = np.random.default_rng(0)
  if form == "stacked":
    params = _dense_params(rng, k, stacked=True)
    variables = [v for p in params for v in p]

    def step():
      with tf.GradientTape() as tape:
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(y, _mlp(x, params))
        loss = tf.reduce_sum(tf.reduce_mean(losses, axis=1))
      for v, g in zip(variables, tape.gradient(loss, variables)):
        v.assign_sub(LR * g)
    return step
  if form == "keras":
    models = [keras.Sequential([keras.Input((SIZES[0],))] + [
        keras.layers.Dense(n, activation="relu") for n in SIZES[1:-1]] + [
        keras.layers.Dense(SIZES[-1])]) for _ in range(k)]
    optimizers = [keras.optimizers.SGD(LR) for _ in range(k)]
    for model, optimizer in zip(models, optimizers):
      optimizer.build(model.trainable_variables)

    def step():
      for i, (model, optimizer) in enumerate(zip(models, optimizers)):
        with tf.GradientTape() as tape:
          loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
              y[i], model(x[i], training=True)))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return step
  copies = [_dense_params(rng, 1, stacked=False) for _ in range(k)]
  variables = [v for p in copies for wb in p for v in wb]

  def step():
    with tf.GradientTape() as tape:
      loss = tf.add_n([tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          y[i], _mlp(x[i], p))) for i, p in enumerate(copies)])
    for v, g in zip(variables, tape.gradient(loss, variables)):
      v.assign_sub(LR * g)
  return step


def make_loop(form, step, steps):
  if form in ("xla_loop", "stacked"):
    @tf.function(jit_compile=True)
    def loop():
      for _ in tf.range(steps):
        step()
    return loop
  compiled = tf.function(step, jit_compile=True)

  @tf.function
  def loop():
    for _ in tf.range(steps):
      compiled()
  return loop


def main(argv):
  del argv
  rng = np.random.default_rng(1)
  for form in _FORMS.value:
    for k in (int(c) for c in _COPIES.value):
      x = tf.constant(rng.normal(size=(k, BATCH, SIZES[0])).astype("f4"))
      y = tf.constant(rng.integers(0, SIZES[-1], (k, BATCH)))
      loop = make_loop(form, make_step(form, k, x, y), _STEPS.value)
      loop()  # compile, and one untimed call
      best = float("inf")
      for _ in range(_REPS.value):
        tic = time.perf_counter()
        loop()
        best = min(best, time.perf_counter() - tic)
      print(f"{form:9s} K={k}: {k * BATCH * _STEPS.value / best:10,.0f} img/s", flush=True)


if __name__ == "__main__":
  app.run(main)
