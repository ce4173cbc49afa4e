"""Many runs in one compiled program: K Trainers that share a schedule step together.

An instability experiment is many small networks on one schedule: the copies of a rewind
step start together and end together, and differ only in their start weights, data order and
augmentation. `GroupTrainer` steps K such runs in one `tf.function` (and, with
`training.jit_compile`, one XLA program): every step, each run takes its own batch from its
own iterator and applies its own gradients to its own weights, optimizer slots, BatchNorm
statistics and masks. The program is one graph of K sub-models. Their ops are independent,
so TensorFlow's executor (or XLA) runs them side by side, and the host's part of the loop
(the loop itself, iterator hand-offs, the finite checks) is paid once per K runs.

Each run's ops are the ones it runs alone, on its own inputs, so its weights after a group are
the weights it reaches alone (tests/test_group.py: bit for bit on CPU). Every run keeps its
own checkpoints, summaries and results in its own directory, through the Trainer's own host
code (runner.Trainer.after_loop, finish), so resuming, evaluating and reporting a run do not
know it trained in a group.
"""

import time

from absl import logging
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

  def _make_loop(self):
    return runner.compiled_loop(self.trainers)

  def train(self):
    """Trains every run to the end; returns each run's results, as Trainer.train does."""
    trainers = self.trainers
    start, end = self.step, trainers[0].end_step
    progress = progress_lib.Progress(end, start)
    metrics = [{} for _ in trainers]
    if start < end:
      lengths = runner.loop_lengths(trainers)
      iterators = tuple(t.start_training(lengths) for t in trainers)
      loop = self._make_loop()
      started = time.time()
      logging.info(f"Training {len(trainers)} runs in one program, steps {start}-{end}")
      for n in lengths:
        totals = loop(iterators, tf.constant(n, tf.int64)).numpy()
        metrics = [t.after_loop(n, float(loss), float(hits))
                   for t, (loss, hits) in zip(trainers, totals)]
        step = self.step
        if step % trainers[0].schedule.log_every == 0 or step == end:
          progress.report(step, {
              f"mean of {len(trainers)} runs: loss": sum(m["loss"] for m in metrics) /
              len(metrics), "accuracy": sum(m["accuracy"] for m in metrics) / len(metrics)})
      logging.info(f"Trained {len(trainers)} runs, steps {start}-{end}, in "
                   f"{time.time() - started:.1f} s")
    return [t.finish(m) for t, m in zip(trainers, metrics)]
