"""Step counts ('500it', '2ep') and the learning-rate schedules of Table 1.

The schedule follows the paper's reference code: lr(t) = base * warmup(t) * drops(t), with
warmup(t) = min(1, t / warmup_steps) and drops(t) = factor ** (number of drop steps <= t); or
a decay from base to `decay_to` over training: linear for Inception-v3, exponential for
SqueezeNet (the Stabilizing paper's Figure 6).
"""

import re

import gin
import keras
import tensorflow as tf

from lmc_tf.errors import ConfigError
from lmc_tf.errors import number_in

_STEPS = re.compile(r"^\s*(?:(\d+)\s*ep)?\s*(?:(\d+)\s*it)?\s*$")


def parse_steps(value, steps_per_epoch, name="step count"):
  """Iterations from an int or a string like '500it', '2ep' or '2ep100it'; `name` (the
  binding) is named in the error."""
  if isinstance(value, (bool, float)) or value is None:
    raise ConfigError(f"{name}={value!r} must be an int or look like '500it', '2ep' "
                      "or '2ep100it'")
  if isinstance(value, int):
    steps = value
  else:
    match = _STEPS.match(str(value))
    if not match or not any(match.groups()):
      raise ConfigError(f"{name}={value!r} must be an int or look like '500it', '2ep' "
                        "or '2ep100it'")
    epochs, iters = (int(g) if g else 0 for g in match.groups())
    steps = epochs * steps_per_epoch + iters
  if steps < 0:
    raise ConfigError(f"{name}={value!r} is negative")
  return steps


def positive_steps(value, steps_per_epoch, name):
  """parse_steps, for a count that must be at least one step."""
  steps = parse_steps(value, steps_per_epoch, name)
  if steps <= 0:
    raise ConfigError(f"{name}={value!r} must be positive (at least one step)")
  return steps


LINEAR, EXPONENTIAL = "linear", "exponential"


class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Warmup, step drops and a linear or exponential decay, as a function of the global step."""

  def __init__(self, base_lr, warmup_steps=0, drop_steps=(), drop_factor=0.1,
               total_steps=None, decay_to=None, offset=0, decay=LINEAR):
    self.base_lr = float(base_lr)
    self.warmup_steps = int(warmup_steps)
    self.drop_steps = tuple(int(s) for s in drop_steps)
    self.drop_factor = float(drop_factor)
    self.total_steps = total_steps
    self.decay_to = decay_to
    self.offset = int(offset)  # Figure 4: copies restart the schedule at step k
    self.decay = decay

  def __call__(self, step):
    t = tf.cast(step, tf.float32) - float(self.offset)
    lr = tf.constant(self.base_lr, tf.float32)
    if self.warmup_steps:
      lr *= tf.minimum(1.0, t / float(self.warmup_steps))
    if self.drop_steps:
      drops = tf.reduce_sum(tf.cast(t >= tf.constant(self.drop_steps, tf.float32), tf.float32))
      lr *= tf.pow(self.drop_factor, drops)
    if self.decay_to is not None:
      frac = tf.clip_by_value(t / float(self.total_steps), 0.0, 1.0)
      if self.decay == EXPONENTIAL:  # continuous: base * (decay_to / base) ** (t / T)
        lr *= tf.pow(float(self.decay_to) / self.base_lr, frac)
      else:
        lr = lr + (float(self.decay_to) - self.base_lr) * frac
    return lr

  def get_config(self):
    return dict(base_lr=self.base_lr, warmup_steps=self.warmup_steps,
                drop_steps=self.drop_steps, drop_factor=self.drop_factor,
                total_steps=self.total_steps, decay_to=self.decay_to, offset=self.offset,
                decay=self.decay)


@gin.configurable("lr_schedule", denylist=["base_lr", "steps_per_epoch", "total_steps", "offset"])
def make_schedule(base_lr, steps_per_epoch, total_steps, offset=0, warmup="0it", drops=(),
                  drop_factor=0.1, decay_to=None, decay=LINEAR):
  """The schedule of a run, with steps given as ints or '500it' / '2ep'.

  Args:
    warmup: length of the linear warmup from 0 to the base rate.
    drops: steps at which the rate is multiplied by `drop_factor`.
    decay_to: if set, the rate decays from the base rate to this value at the end.
    decay: how: 'linear' (Inception-v3) or 'exponential', lr(t) = base * (decay_to / base) **
      (t / T), continuous (SqueezeNet: 0.66 to 6.6e-5, x0.1 every 37.5 of its 150 epochs).
  """
  warmup_steps = parse_steps(warmup, steps_per_epoch, "lr_schedule.warmup")
  drop_steps = sorted(parse_steps(d, steps_per_epoch, "lr_schedule.drops") for d in drops)
  number_in(drop_factor, "lr_schedule.drop_factor", 0, 1, low_open=True)
  late = [s for s in drop_steps if s > total_steps]
  if warmup_steps > total_steps or late:
    raise ConfigError(
        f"lr_schedule: warmup={warmup!r} and drops={list(drops)!r} must lie within training "
        f"(T={total_steps} steps); " + (f"the warmup ({warmup_steps}) ends beyond it"
                                        if warmup_steps > total_steps else
                                        f"drops {late} lie beyond it"))
  if decay not in (LINEAR, EXPONENTIAL):
    raise ConfigError(f"lr_schedule.decay={decay!r} must be {LINEAR!r} or {EXPONENTIAL!r}")
  if decay_to is not None:
    number_in(decay_to, "lr_schedule.decay_to", 0, float("inf"),
              low_open=decay == EXPONENTIAL)  # an exponential decay never reaches 0
  return PaperSchedule(base_lr, warmup_steps, drop_steps, drop_factor, total_steps,
                       decay_to, offset, decay)


def epoch_steps(start, end, steps_per_epoch):
  """The epoch boundaries a run from `start` to `end` passes after its start (Appendix C)."""
  return [s for s in range(start + 1, end + 1) if s % steps_per_epoch == 0]
