"""The step loop (SPEC §5): train under a tf.distribute strategy, checkpoint, resume.

Every step runs inside a `tf.function` through `strategy.run`; `steps_per_loop` steps run in
one compiled loop (as in orbit), so Python is not on the hot path. With XLA on one device,
`steps_per_program` of them run per launch of the XLA program (compiled_loop). A run killed at any point
resumes from its last checkpoint and ends with the weights of an uninterrupted run, because
the data order and augmentation are pure functions of (seed, step) (data/pipeline.py).
"""

import os
import threading
import time

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.data import pipeline
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.training import checkpoints
from lmc_tf.training import evaluate
from lmc_tf.training import hparams as hparams_lib
from lmc_tf.training import optimizers
from lmc_tf.training import progress as progress_lib
from lmc_tf.training import summaries

# The hyperparameters live in hparams.py; they are this module's names too.
TrainingHParams = hparams_lib.TrainingHParams
Schedule = hparams_lib.Schedule
dtype_policy = hparams_lib.dtype_policy
MIXED_PRECISION_POLICIES = hparams_lib.MIXED_PRECISION_POLICIES


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss or weights; no checkpoint of it was written."""


class _Build:
  """What a Trainer builds and a finished run can hand on (BUILDS): the model, the step
  counter, the optimizer with its slots, the test-set evaluator, and the optimizer's starting
  values. `key` is what they depend on: the strategy, the data, the hparams and schedule,
  the schedule's offset and the gin config (the model, the optimizer, the learning rate)."""

  def __init__(self, key, strategy, data, hparams, schedule, schedule_offset, init_seed):
    self.key, self.strategy, self.data, self.hparams = key, strategy, data, hparams
    with strategy.scope(), dtype_policy(hparams.mixed_precision):
      self.model = self._new_model(init_seed)
      self.global_step = tf.Variable(
          0, dtype=tf.int64, trainable=False, name="global_step",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.optimizer = optimizers.make_optimizer(
          schedule.steps_per_epoch, schedule.total, self.global_step, offset=schedule_offset)
      if hparams.mixed_precision == "mixed_float16":
        if not tf.config.list_logical_devices("GPU"):
          logging.warning("training.mixed_precision='mixed_float16' is for GPUs; float16 convs "
                          "are far slower than float32 on CPUs (use 'mixed_bfloat16' there)")
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
      # Build the slots now, so checkpoints hold the same objects whether or not a step ran.
      self.optimizer.build(self.model.trainable_variables)
    self._optimizer_start = [v.numpy() for v in self.optimizer.variables]
    self.evaluator = evaluate.SplitEvaluator(strategy, self.model, data, "test",
                                             hparams.eval_batch_size)

  def _new_model(self, init_seed):
    return registry.build_model(init_seed=init_seed, input_shape=self.data.image_shape,
                                num_classes=self.data.num_classes)

  def reset(self):
    """Sets the optimizer's variables to their starting values and the step to 0, as in a
    fresh build; the model's are reset_model's."""
    for v, value in zip(self.optimizer.variables, self._optimizer_start):
      v.assign(value)
    self.global_step.assign(0)

  def reset_model(self, init_seed):
    """Sets the model's variables (weights, masks, BatchNorm statistics, seed states) to
    what a fresh build for `init_seed` holds, from a model built for it."""
    with self.strategy.scope(), dtype_policy(self.hparams.mixed_precision):
      fresh = self._new_model(init_seed)
    mine, theirs = self.model.variables, fresh.variables
    if [tuple(v.shape) for v in mine] != [tuple(v.shape) for v in theirs]:
      raise ValueError("a reused build's model does not match a fresh one")
    for v, value in zip(mine, theirs):
      v.assign(value)

  def train_step(self, images, labels):
    batch = float(self.hparams.batch_size)
    with tf.GradientTape() as tape:
      # Cross-entropy, plus the weighted aux loss for Inception-v3; accuracy is the main head's.
      losses, logits = registry.per_example_loss(
          self.model, self.model(images, training=True), labels)
      # Each replica's share of the global-batch mean; the optimizer sums across replicas.
      loss = tf.reduce_sum(losses) / batch
      scaled_loss = self.optimizer.scale_loss(loss)  # the loss itself unless float16
    variables = self.model.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
                      tf.float32)
    return tf.reduce_sum(losses), tf.reduce_sum(correct)


class BuildPool:
  """The builds of finished runs, for the next runs of the same build (Trainer `reuse`),
  and the compiled loops traced on them (compiled_loop): a run that reuses a build skips
  building its model, tracing its train loop and compiling it (XLA). The pool holds one
  key's builds; a run of another key empties it."""

  def __init__(self):
    self._lock = threading.Lock()
    self._key, self._free, self._loops = None, [], {}

  def take(self, key):
    """A free build of `key`, or None (the caller builds one, and gives it back later)."""
    with self._lock:
      if key != self._key:
        self._key, self._free, self._loops = key, [], {}
      return self._free.pop(0) if self._free else None

  def give(self, build):
    with self._lock:
      if build.key == self._key and build not in self._free:
        self._free.append(build)

  def loop(self, builds, key, make):
    """The loop `make()` of `builds` (which hold the pool's key) under `key`: traced once
    for as long as the pool keeps the key; `make()` itself for other builds."""
    with self._lock:
      pooled = all(b.key == self._key for b in builds)
      if pooled and key in self._loops:
        return self._loops[key]
    loop = make()
    with self._lock:
      if pooled and all(b.key == self._key for b in builds):
        self._loops[key] = loop
    return loop

  def clear(self):
    with self._lock:
      self._key, self._free, self._loops = None, [], {}


BUILDS = BuildPool()


class Trainer:
  """One training run in `model_dir`: build, restore, train, evaluate on the test set.

  A run starts from its init (`init_seed`) or, for the copies of instability analysis and IMP,
  from the model state in another run's checkpoint (`start_from`, taken at `start_step` = k):
  weights, BatchNorm statistics and masks, with a fresh optimizer, as the paper's reference
  code does. It trains to `end_step` (default T). The learning rate follows the schedule at
  `global step - schedule_offset` (Figure 4 restarts it at k).

  Layout of `model_dir`:
    checkpoints/ckpt-<step>         kept: checkpoint_steps, keep_steps, the start and the end
    checkpoints/resume/ckpt-<step>  the newest periodic checkpoint, for resuming
    events/                         TensorBoard, unless `events_dir` puts it elsewhere
                                    (an experiment's runs: <experiment>/tensorboard/<name>)

  With `reuse`, the run takes the model, optimizer and step counter of a finished run of the
  same build (BUILDS) and resets them to the values a fresh build would have; its compiled
  loop is then the one already traced and compiled on them. `release()` hands them on.
  """

  def __init__(self, model_dir, *, init_seed=0, data_order_seed=0, augmentation_seed=0,
               strategy=None, data=None, hparams=None, masks=None, start_from=None,
               start_step=0, end_step=None, schedule_offset=0, keep_steps=(), events_dir=None,
               reuse=False):
    self.model_dir = model_dir
    self.events_dir = events_dir or layout.events(model_dir)
    self.clock = progress_lib.WallClock(layout.wall_time(model_dir), write=False)
    self.seeds = dict(init_seed=int(init_seed), data_order_seed=int(data_order_seed),
                      augmentation_seed=int(augmentation_seed))
    self.strategy = strategy or distribute.get_strategy()
    self.data = data or data_base.get_dataset()
    self.hparams = hparams or TrainingHParams()
    self.schedule = Schedule.resolve(self.hparams, self.data.num_train)
    self.start_from, self.start_step = start_from, int(start_step)
    self.end_step = self.schedule.total if end_step is None else int(end_step)
    if not 0 <= self.start_step <= self.end_step:
      raise ValueError(f"start step {self.start_step} must lie in [0, {self.end_step}]")
    self.keep_steps = tuple(sorted(set(self.schedule.checkpoint_steps) | set(keep_steps)
                                   | {self.start_step, self.end_step}))
    self.masks = masks
    self._density = None
    self.is_chief = distribute.is_chief(self.strategy)
    self.clock.write = self.is_chief  # the clock started first; only the chief writes
    if self.hparams.batch_size % self.strategy.num_replicas_in_sync:
      raise ValueError(f"training.batch_size={self.hparams.batch_size} is not divisible by "
                       f"the {self.strategy.num_replicas_in_sync} replicas")

    key = (id(self.strategy), id(self.data), self.hparams, self.schedule, int(schedule_offset),
           gin.config_str())
    self._reuse = reuse
    self.build = BUILDS.take(key) if reuse else None
    # The init seed a reused build's model values still have to be reset to: begin() does
    # it, unless it restores a checkpoint, which sets every model variable (a copy's start
    # W_k, a resumed run's own), so the copies of instability and IMP build no model.
    self._model_unset = None
    if self.build is None:
      self.build = _Build(key, self.strategy, self.data, self.hparams, self.schedule,
                          schedule_offset, init_seed)
    else:
      self.build.reset()
      self._model_unset = int(init_seed)
    self.model, self.optimizer = self.build.model, self.build.optimizer
    self.global_step = self.build.global_step
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          step=self.global_step)
    write_dir = model_dir if self.is_chief else os.path.join(
        model_dir, f".worker-{distribute.worker_id(self.strategy)}-tmp")
    self._write_dir = write_dir
    self.kept = tf.train.CheckpointManager(
        self.checkpoint, layout.checkpoint_dir(write_dir), max_to_keep=None,
        checkpoint_name=layout.CHECKPOINT_PREFIX)
    self.resume = tf.train.CheckpointManager(
        self.checkpoint, layout.resume_dir(write_dir), max_to_keep=1,
        checkpoint_name=layout.CHECKPOINT_PREFIX)
    self.summary_writer = (tf.summary.create_file_writer(self.events_dir) if self.is_chief
                           else tf.summary.create_noop_writer())
    self.evaluator = self.build.evaluator
    self.steps_per_program = self._steps_per_program()

  @property
  def step(self):
    return int(self.global_step.numpy())

  def density(self):
    """The fraction of prunable weights kept; masks do not change once the run began."""
    if self._density is None:
      self._density = layers.density(self.model)
    return self._density

  def release(self):
    """Hands this finished run's build on to the next run of the same build (with `reuse`);
    the Trainer is not used after it."""
    if self._reuse:
      BUILDS.give(self.build)

  # -- checkpoints ------------------------------------------------------------------------

  def _saved_checkpoints(self):
    """This run's checkpoints whose files exist, newest first."""
    paths = {p for m in (self.kept, self.resume) for p in m.checkpoints}
    return sorted((p for p in paths if files.exists(p + ".index")), key=layout.checkpoint_step,
                  reverse=True)

  def begin(self):
    """Restores this run's newest intact checkpoint, or else sets up its start; returns the
    step. A checkpoint that cannot be read is named, set aside, and the next one tried."""
    set_aside = []
    self.clock.resume()
    for path in self._saved_checkpoints():
      try:
        checkpoints.check_readable(path)
      except checkpoints.UnreadableCheckpointError as e:
        aside = checkpoints.set_aside(path) if self.is_chief else path
        logging.warning(f"{e}; set aside as {aside}.*")
        set_aside.append(path)
        continue
      checkpoints.restore(self.checkpoint, path)
      self._model_unset = None
      logging.info(f"Resuming from {path} (step {self.step})")
      return self.step
    if set_aside:
      logging.warning(f"no intact checkpoint in {self.model_dir}: the run restarts from step "
                      f"{self.start_step}")
    if self.start_from is not None:
      checkpoints.restore(tf.train.Checkpoint(model=self.model), self.start_from)
    elif self._model_unset is not None:
      self.build.reset_model(self._model_unset)
    self._model_unset = None
    if self.masks is not None:
      layers.set_masks(self.model, self.masks)
    self.global_step.assign(self.start_step)
    self._save(kept=True)  # the starting point: W_0 of a parent, W_k (masked) of a copy
    return self.step

  def _finite(self):
    """Whether every float variable a checkpoint holds is finite: the model's (weights,
    masks, BN statistics) and the optimizer's (momentum overflows before the weights do)."""
    # Eager, once per compiled loop: a tf.function here would be traced again for every run.
    return all(bool(tf.reduce_all(tf.math.is_finite(v)))
               for v in [*self.model.variables, *self.optimizer.variables]
               if tf.as_dtype(v.dtype).is_floating)

  def _save(self, kept):
    manager = self.kept if kept else self.resume
    manager.save(checkpoint_number=self.step)
    self.clock.record(self.step)

  def _record_run_config(self, start):
    """Writes run_config.json: how the run is spread over devices and hosts.

    The global batch is the configured one whatever the replica count. A streamed dataset
    (ImageNet) shards its input by host, so its data order depends on the number of input
    pipelines: resuming on a different number of hosts gives a different (equally valid) run.
    """
    replicas = self.strategy.num_replicas_in_sync
    run_config = {"strategy": type(self.strategy).__name__, "replicas": replicas,
                  "global_batch": self.hparams.batch_size,
                  "per_replica_batch": self.hparams.batch_size // replicas,
                  "input_pipelines": self._input_pipelines,
                  "hosts": distribute.num_workers(self.strategy),
                  "data_order_depends_on_input_pipelines":
                      self.data.order_depends_on_input_pipelines}
    path = layout.run_config(self.model_dir)
    if start > self.start_step and tf.io.gfile.exists(path):
      before = files.read_json(path)
      if (run_config["data_order_depends_on_input_pipelines"]
          and before.get("input_pipelines") != run_config["input_pipelines"]):
        logging.warning(f"{self.model_dir} started with {before.get('input_pipelines')} input "
                        f"pipeline(s) and resumes with {run_config['input_pipelines']}; from step "
                        f"{start} its data order differs from an uninterrupted run's")
    if self.is_chief:
      files.write_json_atomic(path, run_config)

  # -- the loop ---------------------------------------------------------------------------

  def _use_xla(self):
    if not self.hparams.jit_compile:
      return False
    if self.strategy.num_replicas_in_sync > 1 and all(
        "CPU" in d.upper() for d in self.strategy.extended.worker_devices):
      # XLA places one compiled function on CPU:0 and cannot reach the other logical CPUs'
      # variables (TF's known XLA issue "tf.Variable on a different device").
      logging.warning("training.jit_compile ignored: XLA cannot mirror over logical CPU devices")
      return False
    return True

  def _steps_per_program(self):
    """training.steps_per_program where XLA compiles the step on one device, else 1.

    Without XLA the graph loop already runs the steps back to back (nothing to amortise);
    across replicas the step counter is a mirrored variable that a replica's program cannot
    advance in its own loop.
    """
    wanted = self.hparams.steps_per_program
    if wanted > 1 and self._use_xla() and self.strategy.num_replicas_in_sync > 1:
      logging.warning(f"training.steps_per_program={wanted} ignored under "
                      f"{self.strategy.num_replicas_in_sync} replicas: one step per program")
      return 1
    return wanted if self._use_xla() else 1

  def _make_loop(self):
    """loop(iterator, num_steps) -> (sum of the loss, number correct) over the steps."""
    loop = compiled_loop([self])
    return lambda iterator, num_steps: tf.unstack(loop((iterator,), num_steps)[0])

  def _dataset(self, start_step, lengths=None):
    """The train batches from `start_step` to the end; in chunks for loops of `lengths`
    (default: one loop to the end) when several steps run per program."""
    def dataset_fn(ctx):
      self._input_pipelines = ctx.num_input_pipelines
      where = (self.hparams.batch_size, self.seeds["data_order_seed"],
               self.seeds["augmentation_seed"], start_step)
      if self.steps_per_program > 1:
        return self.data.train_chunks(*where, lengths or [self.end_step - start_step],
                                      self.steps_per_program, ctx)
      return self.data.train_batches(*where, self.end_step - start_step, ctx)
    return self.strategy.distribute_datasets_from_function(dataset_fn)

  def train(self):
    """Trains from the current step to `end_step`; returns the final train/test metrics."""
    start, end = self.step, self.end_step
    progress = progress_lib.Progress(end, start)
    train_metrics = {}
    if start < end:
      lengths = loop_lengths([self])
      iterator = self.start_training(lengths)
      loop = self._make_loop()
      started = time.time()
      for n in lengths:
        loss_sum, correct = loop(iterator, tf.constant(n, tf.int64))
        train_metrics = self.after_loop(n, float(loss_sum), float(correct), progress)
      logging.info(f"Trained steps {start}-{end} in {time.time() - started:.1f} s")
    return self.finish(train_metrics)

  # -- the host's part of the loop, shared with group.GroupTrainer ------------------------

  def start_training(self, lengths):
    """The distributed iterator from the current step, for compiled loops of `lengths`
    steps; records run_config.json."""
    if self._model_unset is not None:
      raise RuntimeError("a run that reuses a build trains after begin()")
    if sum(lengths) != self.end_step - self.step:
      raise ValueError(f"loops of {sum(lengths)} steps do not reach step {self.end_step} "
                       f"from step {self.step}")
    iterator = iter(self._dataset(self.step, lengths))
    self._record_run_config(self.step)
    return iterator

  def after_loop(self, n, loss_sum, correct, progress=None):
    """What the host does after a compiled loop of `n` steps (the global step already
    advanced): check the loss and weights, save, log. Returns the loop's train metrics."""
    step, schedule = self.step, self.schedule
    examples = n * self.hparams.batch_size
    if not np.isfinite(loss_sum) or not self._finite():
      # The loss is computed before the update, so the weights are checked too: no
      # checkpoint of non-finite weights is ever written.
      raise NonFiniteLossError(
          f"non-finite training loss or weights between steps {step - n} and {step} in "
          f"{self.model_dir}; nothing after step {step - n} was saved. Lower the learning "
          "rate or check the data.")
    train_metrics = {"loss": loss_sum / examples, "accuracy": 100.0 * correct / examples}
    if step == self.end_step and self.is_chief:
      # Written before the final checkpoint, so a run killed after it still reports them.
      files.write_json_atomic(layout.final_train_metrics(self.model_dir), train_metrics)
    if step in self.keep_steps:
      self._save(kept=True)
    elif step % schedule.checkpoint_every == 0:
      self._save(kept=False)
    if step % schedule.log_every == 0 or step == self.end_step:
      lr = float(self.optimizer.learning_rate)
      with self.summary_writer.as_default(step=step):
        for name, value in {**train_metrics, "lr": lr, "density": self.density()}.items():
          tf.summary.scalar(f"train/{name}", value,
                            description=summaries.DESCRIPTIONS[name])
      if progress is not None:
        progress.report(step, train_metrics)
    return train_metrics

  def finish(self, train_metrics):
    """Evaluates the trained run on the test set and returns its results (the summary)."""
    writer = self.summary_writer
    if not train_metrics and files.exists(layout.final_train_metrics(self.model_dir)):
      train_metrics = files.read_json(layout.final_train_metrics(self.model_dir))
    writer.flush()
    # The kept final checkpoint supersedes the resume ones.
    checkpoints.remove_resume_checkpoints(layout.resume_dir(self._write_dir))
    test = self.evaluator()
    if self.is_chief:
      with writer.as_default(step=self.step):
        for name in ("accuracy", "loss"):
          tf.summary.scalar(f"test/{name}", test[name],
                            description=summaries.DESCRIPTIONS[f"test/{name}"])
      writer.flush()
    if not self.is_chief:
      files.rmtree(self._write_dir)
    return {"final_step": self.step, "test_accuracy": test["accuracy"],
            "test_loss": test["loss"], "density": self.density(),
            **{f"train_{k}": v for k, v in train_metrics.items()},
            "wall_time_s": round(self.clock.record(self.step), 1)}


# -- the compiled loop, of one run or of a group (group.GroupTrainer) ---------------------

def loop_lengths(trainers):
  """The steps of each compiled loop that takes `trainers` (all at one step) to their end:
  a loop ends wherever any of them must log, checkpoint or finish."""
  step, end, lengths = trainers[0].step, trainers[0].end_step, []
  while step < end:
    boundary = min(hparams_lib.next_boundary(step, t.end_step, t.keep_steps, t.schedule,
                                             t.hparams.steps_per_loop) for t in trainers)
    lengths.append(boundary - step)
    step = boundary
  return lengths


def compiled_loop(trainers):
  """The compiled train loop of `trainers` (runs that share a strategy, a step and hparams):
  loop(iterators, num_steps) -> [len(trainers), 2], each run's sum of the loss and number of
  correct examples over `num_steps` steps of every run.

  Each step, every run takes a batch from its own iterator and steps its own model: one
  program of K sub-models (group.py). With training.steps_per_program = S > 1 (XLA, one
  device), the loop first reads the next S steps' batches of every run, then launches one
  XLA program that runs them in its own loop, so the launch (which costs about a LeNet step:
  benchmarks/throughput.py) is paid once per S steps. The ops of a step, their inputs and the
  order of the sums are the same either way, so the weights are too (tests/test_group.py).
  """
  first = trainers[0]
  builds = [t.build for t in trainers]
  # A run's masks are fixed once it begins, so a mask of all ones (every unpruned run's) stays
  # so for the loop's life: its multiply is left out of the trace (layers.full_masks_skipped).
  full = [layers.full_masks(t.model) for t in trainers]
  use_xla = first._use_xla()  # pylint: disable=protected-access
  make = lambda: _compiled_loop(builds, full, first.strategy, first.steps_per_program, use_xla)
  if not all(t._reuse for t in trainers):  # pylint: disable=protected-access
    return make()
  key = (tuple(id(b) for b in builds), tuple(tuple(id(l) for l in f) for f in full),
         first.steps_per_program, use_xla)
  return BUILDS.loop(builds, key, make)


def _compiled_loop(builds, full, strategy, per_program, use_xla):
  """compiled_loop of the runs of `builds`; it holds the builds, not the Trainers, so the
  loop of reused builds serves every run that takes them."""

  def step(batches):
    per_run = []
    for b, skipped, (images, labels) in zip(builds, full, batches):
      with layers.full_masks_skipped(skipped):
        per_run.append(tf.stack(b.train_step(images, labels)))
    return tf.stack(per_run)

  if per_program == 1:
    step_fn = (tf.function(lambda *b: step(b), jit_compile=True) if use_xla
               else lambda *b: step(b))

    @tf.function
    def loop(iterators, num_steps):
      totals = tf.zeros([len(builds), 2])
      for _ in tf.range(num_steps):
        per_run = strategy.run(step_fn, args=tuple(next(it) for it in iterators))
        for b in builds:
          b.global_step.assign_add(1)
        totals += strategy.reduce("SUM", per_run, axis=None)
      return totals
    return loop

  @tf.function(jit_compile=True)
  def program(chunks, count, totals):
    for i in tf.range(count):
      per_run = step(tuple((pipeline.scaled(images[i], b.data), labels[i])
                           for b, (images, labels) in zip(builds, chunks)))
      for b in builds:
        b.global_step.assign_add(1)
      totals += per_run
    return totals

  @tf.function
  def chunked_loop(iterators, num_steps):
    # Each iterator yields chunks of `per_program` steps (data.train_chunks), cut at the
    # ends of the loops, so a loop of num_steps takes whole chunks.
    totals = tf.zeros([len(builds), 2])
    done = tf.constant(0, tf.int64)
    while done < num_steps:
      chunks = tuple(next(it) for it in iterators)
      count = tf.reduce_sum(tf.cast(chunks[0][2], tf.int64))
      totals = program(tuple((images, labels) for images, labels, _ in chunks), count,
                       totals)
      done += count
    tf.debugging.assert_equal(done, num_steps, "a chunk spans two compiled loops")
    return totals
  return chunked_loop
