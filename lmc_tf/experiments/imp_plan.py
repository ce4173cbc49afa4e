"""IMP as a graph of steps (experiments/steps.py): what trains, and what it waits for.

Parents before the runs that rewind to them; IMP level n before level n + 1 (its mask is
pruned from level n's trained weights); a level's IMP run before the random-pruning and
random-reinit runs that take its mask; a subnetwork's mask and W_k before its instability
copies.
"""

import dataclasses

from lmc_tf import layout
from lmc_tf.experiments import instability
from lmc_tf.experiments import steps as steps_lib


def parent_key(seed, k):
  return f"parent-init{seed}-k{k}"


def level_key(seed, k, level, variant):
  return f"init{seed}-k{k}-level{level:02d}-{variant}"


class _Steps:
  """Steps added once each, in order; a step's dependencies must come before it.

  A training run's step also names its `group` (runs of one start and schedule: a parent's
  k, or a level's k, level and variant) and `spec`, which makes its run for
  common.train_group; `grouped` merges them K to a program.
  """

  def __init__(self):
    self.steps, self._keys = [], set()
    self.groups, self.specs = {}, {}

  def add(self, key, run, deps=(), group=None, spec=None, members=()):
    if key not in self._keys:
      self._keys.add(key)
      self.steps.append(steps_lib.Step(key, run, tuple(deps), tuple(members)))
      if group is not None:
        self.groups[key], self.specs[key] = group, spec

  def grouped(self, runs, size):
    """The steps with the runs of each group merged, `size` to a step, in an order that
    respects every dependency (a group's step waits for all its runs' dependencies)."""
    if size == 1:
      return self.steps
    by_group = {}
    for step in self.steps:
      by_group.setdefault(self.groups.get(step.key, step.key), []).append(step)
    chunks = [chunk for members in by_group.values()
              for chunk in steps_lib.chunks(members, size)]
    step_of = {m.key: "+".join(s.key for s in chunk) for chunk in chunks for m in chunk}
    merged = {}
    for chunk in chunks:
      key = step_of[chunk[0].key]
      if len(chunk) == 1:  # a step of its own (perhaps already several runs: members)
        merged[key] = dataclasses.replace(chunk[0], deps=tuple(dict.fromkeys(
            step_of[d] for d in chunk[0].deps)))
        continue
      specs = [self.specs[m.key] for m in chunk]
      run = lambda specs=specs: runs.train_together([spec() for spec in specs])  # noqa: E731
      merged[key] = steps_lib.together(
          [m.key for m in chunk], run,
          [step_of[d] for m in chunk for d in m.deps if step_of[d] != key])
    ordered, done = [], set()
    while len(ordered) < len(merged):  # the first step whose dependencies are all done
      step = next(s for k, s in merged.items() if k not in done and set(s.deps) <= done)
      ordered.append(step)
      done.add(step.key)
    return ordered


def _add_parent(out, runs, seed, k):
  out.add(parent_key(seed, k), lambda: runs.train_parent(seed, k), group=("parent", k),
          spec=lambda: runs.parent_spec(seed, k))


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
              lambda l=level, v=variant: runs.train_level(seed, k, l, v), deps,
              group=(k, level, variant),
              spec=lambda l=level, v=variant: runs.level_spec(seed, k, l, v))


def _add_sub_experiment(out, runs, seed, sub):
  """One subnetwork's instability copies, `runs.runs_per_step` to a step: the steps of
  its own instability experiment (runs.sub_experiment), which groups them alike."""
  settings = runs.settings
  # The subnetwork's mask is IMP's at k (or SNIP's at the main k); its W_k is its own
  # parent's.
  if sub.variant == "snip":
    mask_step = level_key(seed, settings.main_step, sub.level, "snip")
  else:
    mask_step = level_key(seed, sub.rewind_step, sub.level, "imp")
  _add_parent(out, runs, sub.init_seed, sub.rewind_step)
  inner = [instability.copy_key({"rewind_step": sub.rewind_step, "variant": "standard",
                                 "init_seed": sub.init_seed, "pair": pair}, copy)
           for pair in range(settings.instability_pairs) for copy in range(2)]
  for group in steps_lib.chunks(inner, runs.runs_per_step):
    keys = [f"{layout.INSTABILITY}/{sub.name}/{key}" for key in group]
    out.add("+".join(keys), lambda first=group[0]: runs.sub_experiment(seed, sub).step(
                first).run(), [mask_step, parent_key(sub.init_seed, sub.rewind_step)],
            members=keys if len(keys) > 1 else ())


def steps(runs):
  """Every step of the IMP experiment that `runs` (imp_runs.ImpRuns) names, in order; with
  runs.runs_per_step N > 1, runs of one start and schedule of several inits (the parents
  at a k; a level's runs of one variant) train N to a step (imp.copies_per_program to a
  program, training.programs_at_once programs at once)."""
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
  return out.grouped(runs, runs.runs_per_step)
