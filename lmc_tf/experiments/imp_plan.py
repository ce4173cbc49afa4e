"""IMP as a graph of steps (experiments/steps.py): what trains, and what it waits for.

Parents before the runs that rewind to them; IMP level n before level n + 1 (its mask is
pruned from level n's trained weights); a level's IMP run before the random-pruning and
random-reinit runs that take its mask; a subnetwork's mask and W_k before its instability
copies.
"""

from lmc_tf import layout
from lmc_tf.experiments import instability
from lmc_tf.experiments import steps as steps_lib


def parent_key(seed, k):
  return f"parent-init{seed}-k{k}"


def level_key(seed, k, level, variant):
  return f"init{seed}-k{k}-level{level:02d}-{variant}"


class _Steps:
  """Steps added once each, in order; a step's dependencies must come before it."""

  def __init__(self):
    self.steps, self._keys = [], set()

  def add(self, key, run, deps=()):
    if key not in self._keys:
      self._keys.add(key)
      self.steps.append(steps_lib.Step(key, run, tuple(deps)))


def _add_parent(out, runs, seed, k):
  out.add(parent_key(seed, k), lambda: runs.train_parent(seed, k))


def _add_levels(out, runs, seed, k):
  """The parent at k, then every level's IMP run and, at the main k, its baselines."""
  settings = runs.settings
  _add_parent(out, runs, seed, k)
  for level in range(settings.levels + 1):
    for variant in settings.variants_at(k, level):
      deps = [parent_key(seed, k)]
      if variant == "imp" and level:
        deps.append(level_key(seed, k, level - 1, "imp"))  # level n before n + 1
      if variant in ("random_pruning", "random_reinit"):
        deps.append(level_key(seed, k, level, "imp"))  # IMP's mask at this level
      if variant == "random_reinit":
        _add_parent(out, runs, settings.run_seed(variant, seed), k)
        deps.append(parent_key(settings.run_seed(variant, seed), k))
      out.add(level_key(seed, k, level, variant),
              lambda l=level, v=variant: runs.train_level(seed, k, l, v), deps)


def _add_sub_experiment(out, runs, seed, sub):
  """One subnetwork's instability copies, each a step of its own."""
  settings = runs.settings
  # The subnetwork's mask is IMP's at k (or SNIP's at the main k); its W_k is its own
  # parent's.
  if sub.variant == "snip":
    mask_step = level_key(seed, settings.main_step, sub.level, "snip")
  else:
    mask_step = level_key(seed, sub.rewind_step, sub.level, "imp")
  _add_parent(out, runs, sub.init_seed, sub.rewind_step)
  for pair in range(settings.instability_pairs):
    for copy in range(2):
      inner = instability.copy_key({"rewind_step": sub.rewind_step, "variant": "standard",
                                    "init_seed": sub.init_seed, "pair": pair}, copy)
      out.add(f"{layout.INSTABILITY}/{sub.name}/{inner}",
              lambda inner=inner: runs.sub_experiment(seed, sub).step(inner).run(),
              [mask_step, parent_key(sub.init_seed, sub.rewind_step)])


def steps(runs):
  """Every step of the IMP experiment that `runs` (imp_runs.ImpRuns) names, in order."""
  settings = runs.settings
  out = _Steps()
  for seed in settings.seeds:
    for k in settings.rewind_steps:
      _add_levels(out, runs, seed, k)
    for level in settings.instability_levels:
      for k in settings.instability_steps:
        for variant in settings.variants_at(settings.main_step, level):
          sub = layout.SubExperiment(variant, level, settings.run_seed(variant, seed), k)
          _add_sub_experiment(out, runs, seed, sub)
  return out.steps
