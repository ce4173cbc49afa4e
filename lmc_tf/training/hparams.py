"""A run's hyperparameters (Table 1, as the `training.*` gin bindings) and its step counts."""

import contextlib
import dataclasses
from typing import Optional, Sequence, Union

import gin
import keras

from lmc_tf import errors
from lmc_tf.data import pipeline
from lmc_tf.training import schedules

Steps = Union[int, str]


@gin.configurable("training")
@dataclasses.dataclass(frozen=True)
class TrainingHParams:
  """The hyperparameters of one training run (Table 1), steps as ints or '500it' / '2ep'.

  Attributes:
    batch_size: the global batch, whatever the number of replicas.
    steps: T, the length of training.
    checkpoint_steps: steps whose checkpoints are kept (rewind points); the end is always kept.
    checkpoint_every: how often to save a resume checkpoint (only the newest is kept).
    log_every: how often to print progress and write train summaries.
    steps_per_loop: most steps in one compiled loop between host round trips.
    steps_per_program: with XLA on one device, steps per launch of the compiled program:
      their batches are read from the input pipeline first, then the program runs them in
      its own loop. Launching an XLA program costs about as much as a small model's step
      (LeNet), so several steps per launch nearly double its speed; the weights are the same
      bit for bit. 1 launches a program per step.
    programs_at_once: a group of runs trained together (instability.copies_per_program) is
      split into this many compiled programs, run at the same time on as many host
      threads, each with its own share of the runs. An XLA program runs its elementwise
      work (Adam, activations) on the one thread that launched it, so on a CPU two programs
      at once keep both cores busy where one program of all the runs leaves one idle. Each
      run's weights are the same bit for bit; only the wall time changes. One replica only
      (under several, the programs run one after another).
    eval_batch_size: batch for evaluation on the test set.
    jit_compile: compile the train and eval steps with XLA.
    mixed_precision: None (float32), 'mixed_float16' (GPUs; with dynamic loss scaling) or
      'mixed_bfloat16' (TPUs, recent GPUs and CPUs). Variables, masks and BN statistics stay
      float32; layers compute in the lower precision and the loss in float32.
  """
  batch_size: int = gin.REQUIRED
  steps: Steps = gin.REQUIRED
  checkpoint_steps: Sequence[Steps] = ()
  checkpoint_every: Steps = "1ep"
  log_every: Steps = "1ep"
  steps_per_loop: int = 1000
  steps_per_program: int = 1
  programs_at_once: int = 1
  eval_batch_size: int = 1000
  jit_compile: bool = False
  mixed_precision: Optional[str] = None


MIXED_PRECISION_POLICIES = (None, "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def dtype_policy(name):
  """Builds layers under the Keras dtype policy `name` (None: float32), then restores it."""
  if name not in MIXED_PRECISION_POLICIES:
    raise ValueError(f"training.mixed_precision={name!r} must be one of "
                     f"{MIXED_PRECISION_POLICIES}")
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name or "float32")
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A run's step counts, resolved to iterations."""
  steps_per_epoch: int
  total: int
  checkpoint_steps: tuple
  checkpoint_every: int
  log_every: int

  @classmethod
  def resolve(cls, hparams, num_train):
    """The step counts of `hparams` in iterations; every value is checked, and a bad one
    is a ConfigError naming its `training.*` binding."""
    errors.positive_int(hparams.batch_size, "training.batch_size")
    errors.positive_int(hparams.steps_per_loop, "training.steps_per_loop")
    errors.positive_int(hparams.steps_per_program, "training.steps_per_program")
    errors.positive_int(hparams.programs_at_once, "training.programs_at_once")
    errors.positive_int(hparams.eval_batch_size, "training.eval_batch_size")
    if not isinstance(hparams.jit_compile, bool):
      raise errors.ConfigError(f"training.jit_compile={hparams.jit_compile!r} must be True "
                               "or False")
    per_epoch = pipeline.steps_per_epoch(num_train, hparams.batch_size)
    parse = lambda s, name: schedules.parse_steps(s, per_epoch, f"training.{name}")  # noqa: E731
    total, every, log_every = (
        schedules.positive_steps(getattr(hparams, name), per_epoch, f"training.{name}")
        for name in ("steps", "checkpoint_every", "log_every"))
    if isinstance(hparams.checkpoint_steps, (str, int)):
      raise errors.ConfigError(f"training.checkpoint_steps={hparams.checkpoint_steps!r} must "
                               "be a list of step counts")
    kept = tuple(sorted({parse(s, "checkpoint_steps") for s in hparams.checkpoint_steps}))
    late = [s for s in kept if s > total]
    if late:
      raise ValueError(f"training.checkpoint_steps {late} lie beyond training.steps={total}")
    return cls(per_epoch, total, kept, every, log_every)


def next_boundary(step, end, keep_steps, schedule, steps_per_loop):
  """The next step at which the host must act: log, checkpoint, or finish."""
  candidates = [end, step + steps_per_loop,
                (step // schedule.log_every + 1) * schedule.log_every,
                (step // schedule.checkpoint_every + 1) * schedule.checkpoint_every]
  candidates += [s for s in keep_steps if s > step]
  return min(c for c in candidates if c > step)
