"""IMP's hyperparameters, resolved and checked before anything trains (Algorithm 2)."""

import dataclasses
from typing import Optional, Tuple

from lmc_tf import errors
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import magnitude
from lmc_tf.pruning import masks as masks_lib
from lmc_tf.training import schedules

BASELINES = ("random_pruning", "random_reinit", "snip")
# The order baselines train in: random reinitialization last, as it needs a parent of its own.
_BASELINE_ORDER = ("random_pruning", "snip", "random_reinit")
REINIT_OFFSET = 10_000  # random_reinit of init seed s uses init seed s + REINIT_OFFSET


@dataclasses.dataclass(frozen=True)
class ImpSettings:
  """What an IMP experiment runs, with steps resolved and every value checked.

  rewind_steps[0] is the main experiment's k (baselines, instability, Table 2); IMP alone runs
  at the others. instability_steps are the k of the subnetworks' instability experiments.
  """
  levels: int
  rewind_steps: Tuple[int, ...]
  seeds: Tuple[int, ...]
  total_steps: int
  baselines: Tuple[str, ...]
  layers_to_ignore: Tuple[str, ...]
  prunable_weights: int
  pruning_fraction: float
  density: Optional[float]
  instability_levels: Tuple[int, ...]
  instability_steps: Tuple[int, ...]
  instability_pairs: int
  stability_baselines: bool = False

  @property
  def main_step(self):
    return self.rewind_steps[0]

  def keep_at(self, level):
    """How many prunable weights survive at `level`."""
    if self.density is not None:
      return magnitude.keep_count(self.prunable_weights, density=self.density)
    return magnitude.keep_count(self.prunable_weights, self.pruning_fraction, level)

  def variants_at(self, rewind_step, level):
    """IMP, and the baselines at every level after the full network at the main k; with
    stability_baselines, also at the instability levels at every instability k (the Stabilizing
    paper's Figure 4: random pruning's accuracy and stability to pruning against k)."""
    if not level:
      return ["imp"]
    if rewind_step == self.main_step or (
        self.stability_baselines and level in self.instability_levels
        and rewind_step in self.instability_steps):
      return ["imp"] + list(self.baselines)
    return ["imp"]

  @staticmethod
  def run_seed(variant, init_seed):
    """The init seed a variant's run starts from: random reinitialization draws a new one."""
    return init_seed + REINIT_OFFSET if variant == "random_reinit" else init_seed

  @staticmethod
  def mask_owner(variant):
    """The variant whose mask a variant trains: random reinitialization takes IMP's."""
    return "imp" if variant == "random_reinit" else variant


def resolve(data, schedule, model_name, *, levels, rewind_steps, num_inits, init_seed,
            pruning_fraction, density, layers_to_ignore, baselines_to_run, instability_levels,
            instability_rewind_steps, instability_pairs, stability_baselines=False):
  """Checks the `imp.*` bindings against the data, schedule and model; returns ImpSettings."""
  errors.non_negative_int(levels, "imp.levels")
  errors.positive_int(num_inits, "imp.num_inits")
  errors.non_negative_int(init_seed, "imp.init_seed")
  errors.positive_int(instability_pairs, "imp.instability_pairs")
  errors.number_in(pruning_fraction, "imp.pruning_fraction", 0, 1, high_open=True)
  unknown = sorted(set(baselines_to_run) - set(BASELINES))
  if unknown:
    raise ValueError(f"imp.baselines_to_run: unknown {unknown}; choose from {BASELINES}")
  if density is not None:
    errors.number_in(density, "imp.density", 0, 1, low_open=True)
    levels = 1
  ks = [schedules.parse_steps(k, schedule.steps_per_epoch, "imp.rewind_steps")
        for k in rewind_steps]
  late = [k for k in ks if k > schedule.total]
  if not ks or late:
    raise ValueError(f"imp.rewind_steps {list(rewind_steps)}: need at least one, and none "
                     f"beyond T={schedule.total}")
  instability_ks = sorted({schedules.parse_steps(k, schedule.steps_per_epoch,
                                                "imp.instability_rewind_steps")
                           for k in (instability_rewind_steps or [ks[0]])})
  # The subnetwork rewound to k is the one IMP found rewinding to k (Algorithm 2), so its
  # instability can only be measured at a k IMP ran at.
  missing = sorted(set(instability_ks) - set(ks))
  if missing:
    raise ValueError(f"imp.instability_rewind_steps {missing} are not in imp.rewind_steps "
                     f"{ks}: IMP must run at every k whose subnetworks are analysed")
  bad = [l for l in instability_levels if not 0 <= l <= levels]
  if bad:
    raise ValueError(f"imp.instability_levels {bad} outside [0, {levels}]")
  if stability_baselines and not (instability_levels and baselines_to_run):
    raise errors.ConfigError(
        "imp.stability_baselines=True trains the baselines at the instability levels at every "
        "instability k: it needs imp.instability_levels and imp.baselines_to_run")
  ignore = tuple(registry.spec(model_name).layers_to_ignore
                 if layers_to_ignore is None else layers_to_ignore)
  ones = layers.get_masks(registry.build_model(input_shape=data.image_shape,
                                               num_classes=data.num_classes))
  # masks_lib.prunable raises on an ignored layer the model does not have.
  total = sum(ones[n].size for n in masks_lib.prunable(ones, ignore))
  settings = ImpSettings(
      levels=levels, rewind_steps=tuple(ks),
      seeds=tuple(init_seed + i for i in range(num_inits)), total_steps=schedule.total,
      baselines=tuple(b for b in _BASELINE_ORDER if b in baselines_to_run),
      layers_to_ignore=ignore, prunable_weights=int(total),
      pruning_fraction=pruning_fraction, density=density,
      instability_levels=tuple(instability_levels), instability_steps=tuple(instability_ks),
      instability_pairs=instability_pairs, stability_baselines=bool(stability_baselines))
  if levels and settings.keep_at(levels) < 1:
    what = f"imp.density={density}" if density is not None else (
        f"{levels} levels of imp.pruning_fraction={pruning_fraction}")
    raise errors.ConfigError(f"{what} leaves no weight of the {total} prunable ones at "
                             f"level {levels}: prune less")
  return settings
