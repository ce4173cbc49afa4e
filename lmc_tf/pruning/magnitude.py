"""Global magnitude pruning (SPEC §3): the lowest-magnitude remaining weights, over all
prunable kernels at once.

Counts are exact: level L of iterative pruning keeps round(N * (1 - fraction)^L) of the N
prunable weights (computed from N, not level by level, so rounding never accumulates), and
one-shot pruning keeps round(N * density). Ties in magnitude are broken by position (layer
order, then index in the kernel), so the same weights always give the same mask.
"""

import numpy as np

from lmc_tf.pruning import masks as masks_lib


def check_fraction(value, name):
  if not 0 <= value < 1:
    raise ValueError(f"{name}={value} must lie in [0, 1)")


def check_density(value, name="target density"):
  if not 0 < value <= 1:
    raise ValueError(f"{name} {value} must lie in (0, 1]")


def keep_count(total, fraction=0.2, level=None, density=None):
  """How many of `total` prunable weights survive: iterative level, or one-shot density."""
  if density is not None:
    check_density(density)
    return int(round(total * density))
  check_fraction(fraction, "pruning fraction")
  return int(round(total * (1.0 - fraction) ** level))


def prune(weights, masks, keep, layers_to_ignore=()):
  """New masks keeping the `keep` largest-magnitude weights that are still unpruned.

  Args:
    weights: {layer name: kernel array}, the trained weights.
    masks: {layer name: current 0/1 mask}; pruned weights stay pruned.
    keep: how many prunable weights survive.
    layers_to_ignore: layers left as they are.
  """
  names = masks_lib.prunable(masks, layers_to_ignore)
  remaining = int(sum(masks[n].sum() for n in names))
  if not 0 <= keep <= remaining:
    raise ValueError(f"cannot keep {keep} weights: {remaining} remain unpruned")
  # Pruned weights score -1 so they are never picked over a live one.
  scores = np.concatenate([np.where(masks[n].ravel() > 0, np.abs(weights[n]).ravel(), -1.0)
                           for n in names])
  # Stable sort from largest to smallest: equal magnitudes keep position order.
  order = np.argsort(-scores, kind="stable")
  flat = np.zeros(scores.size, dtype=np.float32)
  flat[order[:keep]] = 1.0
  new, offset = dict(masks), 0
  for n in names:
    size = masks[n].size
    new[n] = flat[offset:offset + size].reshape(masks[n].shape)
    offset += size
  return new
