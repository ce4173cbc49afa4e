"""Finding the permutation that aligns network B to network A (Ainsworth et al. 2023, §3).

Both return permutations in permute's convention: apply_permutation(spec, weights_b, perms)
is B aligned to A (its unit i is matched to A's unit i).

Weight matching (Algorithm 2) maximises sum over variables of <W_a, P W_b> by coordinate
descent: the groups in a seeded random order, each a linear assignment problem with the
others held fixed, until a sweep changes none. Pruned networks are matched on their masked
kernels (kernel * mask); the masks themselves do not enter the objective but move with their
kernels.

Activation matching maximises, group by group, the total correlation between A's and B's
units over a few batches. A group's units are observed where conv and dense layers read
them (Spec.Point): for an ordinary layer that is its post-activation output, as in Git
Re-Basin; for a group a ResNet stage's Adds tie together, every block's output in the stage
(the merge points), pooled, since one permutation must serve them all. The covariance and
the variances are centred per point and summed over points before the correlation is taken.
"""

import keras
import numpy as np
from scipy import optimize

from lmc_tf.alignment import permute


def _matching_weights(spec, weights):
  """float64 copies, each kernel of a masked layer multiplied by its mask."""
  out = [np.asarray(w, dtype=np.float64) for w in weights]
  for mask, kernel in spec.masks:
    out[kernel] = out[kernel] * out[mask]
  return out


def _units(array, member, size):
  """[size, everything else] of `array`: row i holds what unit i of the group touches."""
  view = permute._view(array, member)[:, member.start:member.start + size]
  return np.swapaxes(view, 0, 1).reshape(size, -1)


class _WeightObjective:
  """The linear assignment cost of each group, given the permutations of the others."""

  def __init__(self, spec, weights_a, weights_b):
    self.spec = spec
    self.a = _matching_weights(spec, weights_a)
    self.b = _matching_weights(spec, weights_b)
    masks = {mask for mask, _ in spec.masks}
    self.touching = {}  # variable -> [(group index, member)]
    for g, group in enumerate(spec.groups):
      for member in group.members:
        self.touching.setdefault(member.variable, []).append((g, member))
    self.terms = [[m for m in group.members if m.variable not in masks]
                  for group in spec.groups]

  def cost(self, g, perms):
    size = self.spec.groups[g].size
    cost = np.zeros((size, size))
    for member in self.terms[g]:
      b = self.b[member.variable]
      for h, other in self.touching[member.variable]:
        if h != g:
          b = permute.permute_axis(b, other, perms[h])
      cost += _units(self.a[member.variable], member, size) @ _units(b, member, size).T
    return cost


def weight_matching(spec, weights_a, weights_b, seed=0, max_iterations=100, init=None):
  """The permutation of B's units that maximises its weights' inner product with A's.

  Returns (perms, sweeps): `sweeps` is the number of passes over the groups; if it reaches
  `max_iterations` the descent stopped before converging.
  """
  objective = _WeightObjective(spec, weights_a, weights_b)
  perms = [np.array(p) for p in (init if init is not None else permute.identity(spec))]
  rng = np.random.default_rng(seed)
  sweeps = 0
  for sweeps in range(1, max_iterations + 1):
    changed = False
    for g in rng.permutation(len(spec.groups)):
      cost = objective.cost(g, perms)
      _, cols = optimize.linear_sum_assignment(cost, maximize=True)
      rows = np.arange(len(cols))
      old, new = cost[rows, perms[g]].sum(), cost[rows, cols].sum()
      if new > old + 1e-12 * max(1.0, abs(old)):
        perms[g], changed = cols, True
    if not changed:
      break
  return perms, sweeps


def activation_probe(model, spec):
  """A model sharing `model`'s layers that returns the outputs of every layer the spec's
  groups are observed at, in the order of `probe_layers(spec)`."""
  names = probe_layers(spec)
  outputs = [model.get_layer(name).output for name in names]
  return keras.Model(model.inputs[0], outputs, name=f"{model.name}_alignment_probe")


def probe_layers(spec):
  names = []
  for group in spec.groups:
    for point in group.points:
      if point.layer not in names:
        names.append(point.layer)
  return names


class _Moments:
  """Per-unit sums for the cross-covariance of two groups of units, in float64."""

  def __init__(self, size):
    self.n = 0
    self.sum_a, self.sum_b = np.zeros(size), np.zeros(size)
    self.sum_aa, self.sum_bb = np.zeros(size), np.zeros(size)
    self.sum_ab = np.zeros((size, size))

  def add(self, a, b):
    self.n += len(a)
    self.sum_a += a.sum(0)
    self.sum_b += b.sum(0)
    self.sum_aa += (a * a).sum(0)
    self.sum_bb += (b * b).sum(0)
    self.sum_ab += a.T @ b

  def centred(self):
    """(cross-covariance [size, size], variance of A's units, of B's units), times n."""
    mean_a, mean_b = self.sum_a / self.n, self.sum_b / self.n
    return (self.sum_ab - self.n * np.outer(mean_a, mean_b),
            self.sum_aa - self.n * mean_a ** 2, self.sum_bb - self.n * mean_b ** 2)


def _point_units(activation, point, size):
  """[samples, size]: the group's units at `point`, every example and pixel a sample."""
  x = np.asarray(activation, dtype=np.float64).reshape(-1, point.repeat, point.block)
  return x[:, :, point.start:point.start + size].reshape(-1, size)


def _activations(model, probe, weights, batches):
  for variable, value in zip(model.variables, weights):
    variable.assign(value)
  outputs = []
  for batch in batches:
    result = probe(batch, training=False)
    outputs.append([np.asarray(r) for r in (result if isinstance(result, list) else [result])])
  return outputs


def activation_matching(model, spec, weights_a, weights_b, batches, epsilon=1e-12):
  """The permutation of B's units that maximises their correlation with A's units.

  model: a model built like A and B (its variables are used as scratch and restored);
  batches: an iterable of input batches (training images, read twice: once per network).
  Returns perms.
  """
  batches = list(batches)
  if not batches:
    raise ValueError("activation matching needs at least one batch")
  probe = activation_probe(model, spec)
  names = probe_layers(spec)
  saved = [v.numpy() for v in model.variables]
  try:
    acts_a = _activations(model, probe, weights_a, batches)
    acts_b = _activations(model, probe, weights_b, batches)
  finally:
    for variable, value in zip(model.variables, saved):
      variable.assign(value)
  perms = []
  for group in spec.groups:
    cov = np.zeros((group.size, group.size))
    var_a, var_b = np.zeros(group.size), np.zeros(group.size)
    for point in group.points:
      moments = _Moments(group.size)
      k = names.index(point.layer)
      for out_a, out_b in zip(acts_a, acts_b):
        moments.add(_point_units(out_a[k], point, group.size),
                    _point_units(out_b[k], point, group.size))
      c, va, vb = moments.centred()
      cov, var_a, var_b = cov + c, var_a + va, var_b + vb
    corr = cov / np.sqrt(np.outer(np.maximum(var_a, 0), np.maximum(var_b, 0)) + epsilon)
    _, cols = optimize.linear_sum_assignment(corr, maximize=True)
    perms.append(cols)
  return perms
