"""Adam, and SGD with momentum and weight decay, with PyTorch's semantics (SPEC §2); RMSProp
with TF1's, for SqueezeNet (the Stabilizing paper's Figure 6 trained it with the TPU reference).

Weight decay is an L2 term added to the gradient, as in torch.optim.SGD(weight_decay=...),
not Keras's decoupled `weight_decay`. SGD keeps PyTorch's momentum buffer
(buf = momentum * buf + g; w -= lr * buf), so an LR drop takes effect at once; Keras's SGD
folds the old rate into its velocity instead.
"""

import functools

import gin
import keras
from keras import ops
import tensorflow as tf

from lmc_tf import errors
from lmc_tf.training import schedules


class _CoupledL2:
  """Adds l2 * w to every gradient before the update.

  On one replica it also skips Keras's all-reduce of the gradients, which is the identity
  there. In a traced function TensorFlow wraps that all-reduce in a custom gradient that it
  registers for the whole process and never removes, so every traced train loop's graph,
  and with it the run's variables, stayed alive after the run: ~150 MB per ResNet-20 smoke
  run, gigabytes over a job's or a Ray worker's many runs (tests/test_runner.py).
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
      return list(grads_and_vars)
    return super()._all_reduce_sum_gradients(grads_and_vars)

  def _with_l2(self, gradient, variable):
    gradient = ops.cast(gradient, variable.dtype)
    if self.l2:
      gradient = gradient + ops.cast(self.l2, variable.dtype) * variable
    return gradient


class SGD(_CoupledL2, keras.optimizers.Optimizer):
  """torch.optim.SGD: momentum buffer of raw gradients, L2 added to the gradient."""

  def __init__(self, learning_rate, momentum=0.0, l2=0.0, nesterov=False, name="sgd",
               **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = float(momentum)
    self.l2 = float(l2)
    self.nesterov = bool(nesterov)

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    self.momentums = (self.add_optimizer_variables(variables, "momentum")
                      if self.momentum else [])

  def update_step(self, gradient, variable, learning_rate):
    gradient = self._with_l2(gradient, variable)
    learning_rate = ops.cast(learning_rate, variable.dtype)
    step = gradient
    if self.momentum:
      buf = self.momentums[self._get_variable_index(variable)]
      self.assign(buf, ops.add(ops.multiply(buf, self.momentum), gradient))
      step = ops.add(gradient, ops.multiply(buf, self.momentum)) if self.nesterov else buf
    self.assign_sub(variable, ops.multiply(step, learning_rate))

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, l2=self.l2, nesterov=self.nesterov)
    return config


class Adam(_CoupledL2, keras.optimizers.Adam):
  """keras.optimizers.Adam with an optional L2 term added to the gradient."""

  def __init__(self, learning_rate, l2=0.0, **kwargs):
    super().__init__(learning_rate=learning_rate, **kwargs)
    self.l2 = float(l2)

  def update_step(self, gradient, variable, learning_rate):
    super().update_step(self._with_l2(gradient, variable), variable, learning_rate)


class RMSProp(_CoupledL2, keras.optimizers.Optimizer):
  """tf.compat.v1.train.RMSPropOptimizer, which the TPU SqueezeNet trains with.

  ms = rho * ms + (1 - rho) * g^2; mom = momentum * mom + lr * g / sqrt(ms + epsilon);
  w -= mom. Unlike Keras's RMSprop, the mean square starts at ONES (TF1's slot init), so the
  first steps are not huge; epsilon sits inside the square root in both. The rate enters the
  momentum buffer, so a rate change takes effect gradually, as in TF1.
  """

  def __init__(self, learning_rate, rho=0.9, momentum=0.0, epsilon=1e-10, l2=0.0,
               name="rmsprop", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.rho, self.momentum = float(rho), float(momentum)
    self.epsilon, self.l2 = float(epsilon), float(l2)

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    self.mean_squares = self.add_optimizer_variables(variables, "mean_square",
                                                     initializer="ones")
    self.momentums = self.add_optimizer_variables(variables, "momentum")

  def update_step(self, gradient, variable, learning_rate):
    gradient = self._with_l2(gradient, variable)
    learning_rate = ops.cast(learning_rate, variable.dtype)
    index = self._get_variable_index(variable)
    ms, mom = self.mean_squares[index], self.momentums[index]
    self.assign(ms, ops.add(ops.multiply(ms, self.rho),
                            ops.multiply(ops.square(gradient), 1.0 - self.rho)))
    step = ops.divide(ops.multiply(gradient, learning_rate),
                      ops.sqrt(ops.add(ms, self.epsilon)))
    self.assign(mom, ops.add(ops.multiply(mom, self.momentum), step))
    self.assign_sub(variable, mom)

  def get_config(self):
    config = super().get_config()
    config.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon, l2=self.l2)
    return config


@gin.configurable("optimizer", denylist=["steps_per_epoch", "total_steps", "step", "offset"])
def make_optimizer(steps_per_epoch, total_steps, step=None, offset=0, name=gin.REQUIRED,
                   learning_rate=gin.REQUIRED, momentum=0.9, weight_decay=0.0, nesterov=False,
                   beta_1=0.9, beta_2=0.999, epsilon=1e-8, rho=0.9):
  """Builds the named optimizer ('sgd', 'adam' or 'rmsprop') on the run's learning-rate
  schedule.

  The rate follows `step`, the run's global step, when given; otherwise the optimizer's own
  iteration count. They differ for a copy started at step k: its schedule and data continue
  from k, while its optimizer state (momentum, Adam's moments and bias correction) is fresh.

  `weight_decay` is the coupled L2 coefficient of torch.optim (SPEC §2). `epsilon` defaults to
  PyTorch's 1e-8 (Keras's is 1e-7); it is also RMSProp's, where the SqueezeNet reference
  binds 1.0. `rho` is RMSProp's decay of the mean square (TF1's `decay`). `offset` restarts
  the schedule at that step (Figure 4).
  """
  errors.number_in(weight_decay, "optimizer.weight_decay", 0, float("inf"))
  errors.positive_number(learning_rate, "optimizer.learning_rate")
  errors.number_in(momentum, "optimizer.momentum", 0, 1, high_open=True)
  schedule = schedules.make_schedule(learning_rate, steps_per_epoch, total_steps, offset)
  if step is not None:
    schedule = functools.partial(schedule, step)  # Keras calls a plain callable with no args
  if name == "sgd":
    return SGD(schedule, momentum=momentum, l2=weight_decay, nesterov=nesterov)
  if name == "adam":
    return Adam(schedule, l2=weight_decay, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
  if name == "rmsprop":
    errors.number_in(rho, "optimizer.rho", 0, 1, high_open=True)
    errors.positive_number(epsilon, "optimizer.epsilon")
    return RMSProp(schedule, rho=rho, momentum=momentum, epsilon=epsilon, l2=weight_decay)
  raise ValueError(f"optimizer.name={name!r} must be 'sgd', 'adam' or 'rmsprop'")
