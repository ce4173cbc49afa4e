"""Distances between networks (Appendices B and G; the Stabilizing paper)."""

import numpy as np

from lmc_tf.models import layers


def masked_trainable(model):
  """The trainable weights with each kernel multiplied by its mask, as numpy arrays."""
  masks = {id(l.kernel): l.mask for l in layers.masked_layers(model)}
  return [(v * masks[id(v)]).numpy() if id(v) in masks else v.numpy()
          for v in model.trainable_variables]


def _flat(arrays):
  return np.concatenate([np.ravel(a).astype(np.float64) for a in arrays])


def l2(a, b):
  """Euclidean distance between two weight lists."""
  return float(np.linalg.norm(_flat(a) - _flat(b)))


def cosine(a, b):
  """Cosine distance 1 - cos(a, b) and the angle in degrees between two weight lists."""
  fa, fb = _flat(a), _flat(b)
  cos = float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb)))
  cos = min(1.0, max(-1.0, cos))
  return 1.0 - cos, float(np.degrees(np.arccos(cos)))


def disagreements(predictions_a, predictions_b):
  """How many examples the two networks label differently."""
  return int(np.sum(np.asarray(predictions_a) != np.asarray(predictions_b)))


def loss_l2(losses_a, losses_b):
  """L2 norm of the difference of per-example losses."""
  return float(np.linalg.norm(np.asarray(losses_a, np.float64) - np.asarray(losses_b,
                                                                            np.float64)))
