"""Permutations of a network's hidden units, applied exactly to its weights.

A permutation is a list of index arrays, one per group of a PermutationSpec, in the spec's
order; the permuted network's unit i of a group is the original's unit perm[i]. Weights are
lists of arrays in model.variables order (kernels, masks, biases, BN parameters and
statistics all move together). Permuting only reorders entries, so it is exact: a pruned
weight (mask 0, kernel 0) stays pruned and the network computes the same function.
"""

import numpy as np


def _view(array, member):
  """`array` with member's axis first and read as [repeat, block, rest]."""
  moved = np.moveaxis(array, member.axis, 0)
  return moved.reshape(member.repeat, member.block, -1)


def _unview(view, member, shape):
  moved_shape = (shape[member.axis],) + tuple(
      d for a, d in enumerate(shape) if a != member.axis)
  return np.moveaxis(view.reshape(moved_shape), 0, member.axis)


def permute_axis(array, member, perm):
  """`array` with `member`'s units reordered by `perm` (a new array)."""
  view = _view(np.asarray(array), member).copy()
  start, end = member.start, member.start + len(perm)
  view[:, start:end] = view[:, start + np.asarray(perm)]
  return _unview(view, member, np.shape(array))


def _check(spec, perms):
  if len(perms) != len(spec.groups):
    raise ValueError(f"{len(perms)} permutations for {len(spec.groups)} groups")
  for group, perm in zip(spec.groups, perms):
    perm = np.asarray(perm)
    if perm.shape != (group.size,) or not np.array_equal(np.sort(perm), np.arange(group.size)):
      raise ValueError(f"group {group.name!r}: not a permutation of {group.size} units")


def apply_permutation(spec, weights, perms, skip=None):
  """The weights of the network whose units are permuted by `perms` (new arrays).

  skip: the index of a group to leave as it is (weight matching's "all but this one").
  """
  _check(spec, perms)
  if len(weights) != spec.num_variables:
    raise ValueError(f"{len(weights)} weights for a model of {spec.num_variables} variables")
  out = [np.asarray(w) for w in weights]
  for g, (group, perm) in enumerate(zip(spec.groups, perms)):
    if g == skip:
      continue
    for member in group.members:
      out[member.variable] = permute_axis(out[member.variable], member, perm)
  return out


def identity(spec):
  return [np.arange(g.size) for g in spec.groups]


def random_permutation(spec, seed):
  rng = np.random.default_rng(seed)
  return [rng.permutation(g.size) for g in spec.groups]


def compose(first, second):
  """The permutation of applying `first`, then `second`: unit i is original unit
  first[second[i]]."""
  return [np.asarray(p)[np.asarray(q)] for p, q in zip(first, second)]


def invert(perms):
  return [np.argsort(p) for p in perms]


def is_identity(perms):
  return all(np.array_equal(p, np.arange(len(p))) for p in perms)


def to_dict(spec, perms):
  """{group name: [indices]}: the permutation as JSON can hold it."""
  _check(spec, perms)
  return {g.name: [int(i) for i in p] for g, p in zip(spec.groups, perms)}


def from_dict(spec, named):
  perms = [np.asarray(named[g.name], dtype=np.int64) for g in spec.groups]
  _check(spec, perms)
  return perms
