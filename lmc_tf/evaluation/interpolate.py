"""Linear interpolation of every model variable: weights, biases, masks, BN statistics."""

import tensorflow as tf

from lmc_tf.training import checkpoints


def read_variables(model, checkpoint_path):
  """All of `model`'s variables as stored in a checkpoint of a run of the same model."""
  checkpoints.restore(tf.train.Checkpoint(model=model), checkpoint_path)
  return [v.numpy() for v in model.variables]


def interpolate(weights_a, weights_b, alpha):
  """(1 - alpha) * a + alpha * b, variable by variable.

  Written this way (not a + alpha * (b - a)) so that alpha = 0 and alpha = 1 give a and b
  exactly, and the endpoints of the curve are the copies themselves.
  """
  return [((1.0 - alpha) * a + alpha * b).astype(a.dtype)
          for a, b in zip(weights_a, weights_b)]


def assign(model, weights):
  if len(weights) != len(model.variables):
    raise ValueError(f"{len(weights)} arrays for {len(model.variables)} model variables")
  for variable, value in zip(model.variables, weights):
    variable.assign(value)
