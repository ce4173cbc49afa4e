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
program: on this CPU"). Each program's thread also does its runs' host work (checks,
checkpoints, summaries after each loop, and the final evaluation), so that one program's
host work overlaps the other's steps; the programs are traced one after another first.
The jobs' runs reuse finished runs' builds (runner.BUILDS), so a program of builds that
already trained together is not traced or compiled again.

Each run's ops are the ones it runs alone, on its own inputs, so its weights after a group are
the weights it reaches alone (tests/test_group.py: bit for bit on CPU). Every run keeps its
own checkpoints, summaries and results in its own directory, through the Trainer's own host
code (runner.Trainer.after_loop, finish), so resuming, evaluating and reporting a run do not
know it trained in a group.
"""

from concurrent import futures
import threading
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

  def _make_loop(self):
    """loop(iterators, num_steps) -> [K, 2] totals of the whole group in one program."""
    return runner.compiled_loop(self.trainers)

  def train(self):
    """Trains every run to the end; returns each run's results, as Trainer.train does."""
    trainers = self.trainers
    start, end = self.step, trainers[0].end_step
    if start >= end:
      return [t.finish({}) for t in trainers]
    lengths = runner.loop_lengths(trainers)
    programs = self.programs()
    iterators = [t.start_training(lengths) for t in trainers]
    parts, first = [], 0
    for runs in programs:
      parts.append(tuple(iterators[first:first + len(runs)]))
      first += len(runs)
    loops = [runner.compiled_loop(runs) for runs in programs]
    started = time.time()
    sizes = "+".join(str(len(runs)) for runs in programs)
    where = ("in one program" if len(programs) == 1 else
             f"in {len(programs)} programs at once ({sizes} runs)")
    logging.info(f"Training {len(trainers)} runs {where}, steps {start}-{end}")
    if len(programs) == 1:
      results = self._train_program("", trainers, loops[0], parts[0], lengths)
    else:
      results = self._train_at_once(programs, loops, parts, lengths)
    logging.info(f"Trained {len(trainers)} runs, steps {start}-{end}, in "
                 f"{time.time() - started:.1f} s")
    return results

  def _train_at_once(self, programs, loops, parts, lengths):
    """Each program's loops, host work and final evaluation on its own thread; the results
    in run order. An error in one program stops the others at the end of their current
    loop (each run's last checkpoint stands, so a rerun resumes), then is raised here."""
    num_steps = tf.constant(lengths[0], tf.int64)
    for loop, its in zip(loops, parts):
      # Traced one after another, here: Keras and tf.function tracing share Python state.
      loop.get_concrete_function(its, num_steps)
    stop = threading.Event()

    def train(p):
      try:
        return self._train_program(f"program {p + 1}/{len(programs)}, ", programs[p],
                                   loops[p], parts[p], lengths, stop)
      except BaseException:
        stop.set()
        raise
    with futures.ThreadPoolExecutor(len(programs), "lmc_tf_program") as pool:
      running = [pool.submit(train, p) for p in range(len(programs))]
      futures.wait(running)
    errors = [r.exception() for r in running if r.exception() is not None]
    real = [e for e in errors if not isinstance(e, _Stopped)]
    if real or errors:
      raise (real or errors)[0]
    return [summary for r in running for summary in r.result()]

  def _train_program(self, label, runs, loop, iterators, lengths, stop=None):
    """Trains `runs` (one program's) by `loop` through `lengths`; returns their results."""
    end = runs[0].end_step
    progress = progress_lib.Progress(end, runs[0].step)
    metrics = [{} for _ in runs]
    for n in lengths:
      if stop is not None and stop.is_set():
        raise _Stopped()
      totals = np.asarray(loop(iterators, tf.constant(n, tf.int64)))
      metrics = [t.after_loop(n, float(loss), float(hits))
                 for t, (loss, hits) in zip(runs, totals)]
      step = runs[0].step
      if step % runs[0].schedule.log_every == 0 or step == end:
        progress.report(step, {
            f"{label}mean of {len(runs)} runs: loss": sum(m["loss"] for m in metrics) /
            len(metrics), "accuracy": sum(m["accuracy"] for m in metrics) / len(metrics)})
    return [t.finish(m) for t, m in zip(runs, metrics)]


class _Stopped(Exception):
  """A program stopped because another program of its group failed."""
