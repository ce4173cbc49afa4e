"""Many runs in one compiled program: K Trainers that share a schedule step together.

An instability experiment is many small networks on one schedule: the copies of a rewind
step start together and end together, and differ only in their start weights, data order and
augmentation. `GroupTrainer` steps K such runs in one `tf.function` (and, with
`training.jit_compile`, one XLA program): every step, each run takes its own batch from its
own iterator and applies its own gradients to its own weights, optimizer slots, BatchNorm
statistics and masks. The program is one graph of K sub-models. Their ops are independent,
so TensorFlow's executor (or XLA) runs them side by side, and the host's part of the loop
(the loop itself, iterator hand-offs, the finite checks) is paid once per K runs.

With `training.programs_at_once = L > 1` the group's runs are split into L such programs,
launched at the same time from L host threads, loop by loop (one replica only). XLA's CPU
runtime runs a program's elementwise fusions (Adam's update, the activations) one after
another on the thread that launched it, and hands only its matmuls to the intra-op pool; two
programs at once overlap one's elementwise work with the other's, which on a 2-core CPU
trains LeNet's copies faster than one program of them all (README, "Many copies in one
program: on this CPU"). The host's work after each loop (checks, checkpoints, summaries)
stays on the main thread, run by run, in the same order.

Each run's ops are the ones it runs alone, on its own inputs, so its weights after a group are
the weights it reaches alone (tests/test_group.py: bit for bit on CPU). Every run keeps its
own checkpoints, summaries and results in its own directory, through the Trainer's own host
code (runner.Trainer.after_loop, finish), so resuming, evaluating and reporting a run do not
know it trained in a group.
"""

from concurrent import futures
import time

from absl import logging
import numpy as np
import tensorflow as tf

from lmc_tf.training import progress as progress_lib
from lmc_tf.training import runner


class GroupTrainer:
  """Trains `trainers` (runner.Trainer, each begun, all at one step) to their common end."""

  def __init__(self, trainers):
    if not trainers:
      raise ValueError("a group needs at least one run")
    first = trainers[0]
    for t in trainers[1:]:
      if t.strategy is not first.strategy:
        raise ValueError("the runs of a group must share one tf.distribute strategy")
      if (t.step, t.end_step) != (first.step, first.end_step):
        raise ValueError(f"the runs of a group must share a start and an end: {t.model_dir} "
                         f"runs steps {t.step}-{t.end_step}, {first.model_dir} "
                         f"{first.step}-{first.end_step}")
      if t.hparams != first.hparams:
        raise ValueError(f"the runs of a group must share training hparams: {t.model_dir} "
                         f"and {first.model_dir} differ")
    self.trainers = list(trainers)

  @property
  def step(self):
    return self.trainers[0].step

  def programs(self):
    """The runs of each program, in order: training.programs_at_once programs (at most one
    per run), their sizes differing by at most one; one program under several replicas."""
    first = self.trainers[0]
    count = min(first.hparams.programs_at_once, len(self.trainers))
    if count > 1 and first.strategy.num_replicas_in_sync > 1:
      logging.warning(f"training.programs_at_once={count} ignored under "
                      f"{first.strategy.num_replicas_in_sync} replicas: one program")
      count = 1
    size, extra = divmod(len(self.trainers), count)
    bounds = [0]
    for p in range(count):
      bounds.append(bounds[-1] + size + (p < extra))
    return [self.trainers[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

  def _make_loop(self, programs=None):
    """loop(iterators, num_steps) -> [K, 2] totals, as runner.compiled_loop, of the whole
    group: its `programs` (self.programs()) launched together, each from its own thread."""
    programs = programs or self.programs()
    if len(programs) == 1:
      return runner.compiled_loop(self.trainers)
    return _ProgramsAtOnce([runner.compiled_loop(runs) for runs in programs],
                           [len(runs) for runs in programs])

  def train(self):
    """Trains every run to the end; returns each run's results, as Trainer.train does."""
    trainers = self.trainers
    start, end = self.step, trainers[0].end_step
    progress = progress_lib.Progress(end, start)
    metrics = [{} for _ in trainers]
    if start < end:
      lengths = runner.loop_lengths(trainers)
      iterators = tuple(t.start_training(lengths) for t in trainers)
      programs = self.programs()
      loop = self._make_loop(programs)
      started = time.time()
      sizes = "+".join(str(len(runs)) for runs in programs)
      where = ("in one program" if len(programs) == 1 else
               f"in {len(programs)} programs at once ({sizes} runs)")
      logging.info(f"Training {len(trainers)} runs {where}, steps {start}-{end}")
      try:
        for n in lengths:
          totals = np.asarray(loop(iterators, tf.constant(n, tf.int64)))
          metrics = [t.after_loop(n, float(loss), float(hits))
                     for t, (loss, hits) in zip(trainers, totals)]
          step = self.step
          if step % trainers[0].schedule.log_every == 0 or step == end:
            progress.report(step, {
                f"mean of {len(trainers)} runs: loss": sum(m["loss"] for m in metrics) /
                len(metrics), "accuracy": sum(m["accuracy"] for m in metrics) / len(metrics)})
      finally:
        if isinstance(loop, _ProgramsAtOnce):
          loop.close()
      logging.info(f"Trained {len(trainers)} runs, steps {start}-{end}, in "
                   f"{time.time() - started:.1f} s")
    return [t.finish(m) for t, m in zip(trainers, metrics)]


class _ProgramsAtOnce:
  """loop(iterators, num_steps) of several compiled loops (runner.compiled_loop), each of
  `sizes[i]` runs, launched together from their own threads; their totals in run order."""

  def __init__(self, loops, sizes):
    self.loops, self.sizes = loops, sizes
    self.pool = futures.ThreadPoolExecutor(len(loops), thread_name_prefix="lmc_tf_program")
    self.traced = False

  def __call__(self, iterators, num_steps):
    parts, start = [], 0
    for size in self.sizes:
      parts.append(tuple(iterators[start:start + size]))
      start += size
    if not self.traced:
      # Traced one after another, here: Keras and tf.function tracing share Python state.
      for loop, its in zip(self.loops, parts):
        loop.get_concrete_function(its, num_steps)
      self.traced = True
    running = [self.pool.submit(lambda f=loop, i=its: f(i, num_steps).numpy())
               for loop, its in zip(self.loops, parts)]
    futures.wait(running)  # every program has stopped before an error of one is raised
    return np.concatenate([r.result() for r in running], axis=0)

  def close(self):
    self.pool.shutdown(wait=True)
