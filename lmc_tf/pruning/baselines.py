"""The baselines IMP is compared with at each level (SPEC §7).

Random pruning keeps each layer's density but draws new positions; random reinitialization
(the IMP mask with a new init seed) needs no mask of its own; SNIP (Lee et al. 2019, compared
in the Stabilizing paper's Appendix A) keeps the weights with the largest |g * w| on one
batch at initialization.
"""

import numpy as np
import tensorflow as tf

from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import magnitude
from lmc_tf.pruning import masks as masks_lib


def random_pruning(masks, seed, layers_to_ignore=()):
  """Masks with each layer's count of ones kept, at positions drawn from `seed`."""
  rng = np.random.default_rng([int(seed), 0x72616E64])
  names = set(masks_lib.prunable(masks, layers_to_ignore))
  new = {}
  for name, mask in masks.items():
    if name not in names:
      new[name] = mask
      continue
    flat = np.zeros(mask.size, dtype=np.float32)
    flat[rng.permutation(mask.size)[:int(mask.sum())]] = 1.0
    new[name] = flat.reshape(mask.shape)
  return new


def snip_scores(model, images, labels):
  """|dL/dw * w| for every prunable kernel on one batch (SNIP's connection sensitivity).

  L is the training objective, aux loss included (Inception-v3): the aux head's weights are
  prunable, and only a loss that reaches them scores them.
  """
  masked = layers.masked_layers(model)
  with tf.GradientTape() as tape:
    losses, _ = registry.per_example_loss(model, model(images, training=True), labels)
    loss = tf.reduce_mean(losses)
  grads = tape.gradient(loss, [l.kernel for l in masked])
  return {l.name: np.abs((g * l.kernel).numpy()) for l, g in zip(masked, grads)}


def snip(model, images, labels, keep, layers_to_ignore=()):
  """SNIP masks keeping `keep` prunable weights, scored at the model's current weights."""
  current = layers.get_masks(model)
  return magnitude.prune(snip_scores(model, images, labels), current, keep, layers_to_ignore)
