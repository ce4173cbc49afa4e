"""One call for the evaluator: copy B's weights permuted to line up with copy A's."""

import dataclasses
from typing import Any, List

from lmc_tf import errors
from lmc_tf.alignment import matching
from lmc_tf.alignment import permute
from lmc_tf.alignment import spec as spec_lib

WEIGHT_MATCHING = "weight_matching"
ACTIVATION_MATCHING = "activation_matching"
METHODS = (WEIGHT_MATCHING, ACTIVATION_MATCHING)


@dataclasses.dataclass(frozen=True)
class Alignment:
  weights_b: List[Any]  # B's weights (model.variables order), permuted onto A
  perms: List[Any]  # one index array per group of `spec`
  spec: spec_lib.PermutationSpec
  sweeps: int = 0  # weight matching's passes over the groups (0 for activation matching)

  def to_dict(self):
    """The permutation by group name, with the method's bookkeeping, for a JSON file."""
    return {"perms": permute.to_dict(self.spec, self.perms), "sweeps": self.sweeps}


def check_method(method, name="evaluate.align"):
  if method is not None and method not in METHODS:
    raise errors.ConfigError(f"{name}={method!r} must be None or one of {list(METHODS)}")
  return method


def align(model, weights_a, weights_b, method, batches=None, seed=0, max_iterations=100,
          spec=None):
  """B aligned to A by `method` ('weight_matching' or 'activation_matching').

  model: built like A and B (activation matching runs it, then restores its variables);
  weights_a, weights_b: lists of arrays in model.variables order; batches: the input batches
  activation matching observes (weight matching needs none); seed: weight matching's order
  of groups; spec: the model's PermutationSpec, derived when not given.
  """
  check_method(method)
  spec = spec or spec_lib.permutation_spec(model)
  sweeps = 0
  if method == WEIGHT_MATCHING:
    perms, sweeps = matching.weight_matching(spec, weights_a, weights_b, seed=seed,
                                             max_iterations=max_iterations)
  elif method == ACTIVATION_MATCHING:
    if batches is None:
      raise ValueError("activation matching needs batches of inputs")
    perms = matching.activation_matching(model, spec, weights_a, weights_b, batches)
  else:
    raise ValueError("align needs a method")
  return Alignment(permute.apply_permutation(spec, weights_b, perms), perms, spec, sweeps)
