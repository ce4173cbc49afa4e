"""The runs of one IMP experiment, each found on disk by the hash of what it computes.

Every method below reads its inputs from files that the steps it depends on wrote (masks,
checkpoints, summaries), so it runs the same in this process or in a Ray worker.
"""

from absl import logging
import numpy as np

from lmc_tf import distribute
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.evaluation import distances
from lmc_tf.evaluation import interpolate
from lmc_tf.experiments import common
from lmc_tf.experiments import instability
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import baselines
from lmc_tf.pruning import magnitude
from lmc_tf.pruning import masks as masks_lib


class ImpRuns:
  """Names, masks and training of IMP's parents, levels and baselines (imp_settings)."""

  def __init__(self, model_dir, strategy, data, hparams, fingerprint, settings,
               copies_per_program=1):
    self.model_dir, self.strategy, self.data, self.hparams = model_dir, strategy, data, hparams
    self.fingerprint, self.settings = fingerprint, settings
    self.copies_per_program = copies_per_program
    self.chief = distribute.is_chief(strategy)
    self._scratch = None
    self._sub_experiments = {}

  @property
  def runs_per_step(self):
    """Runs of one start and schedule trained together (common.runs_per_step)."""
    return common.runs_per_step(self.copies_per_program, self.hparams)

  @property
  def scratch(self):
    """A model to read checkpoints into (built once, on first use)."""
    if self._scratch is None:
      with self.strategy.scope():
        self._scratch = registry.build_model(input_shape=self.data.image_shape,
                                             num_classes=self.data.num_classes)
    return self._scratch

  def path(self, relative):
    return layout.run_dir(self.model_dir, relative)

  # -- names ------------------------------------------------------------------------------

  def parent_run(self, init_seed, k):
    return layout.run_name("parent", {"role": "parent", "train": self.fingerprint,
                                      "init_seed": init_seed, "rewind_steps": [k]})

  def run_name(self, variant, init_seed, k, masks):
    return layout.run_name(variant, {
        "role": variant, "train": self.fingerprint, "init_seed": init_seed,
        "rewind_step": k, "mask": masks_lib.digest(masks)})

  def level_run(self, seed, k, level, variant):
    """The run of `variant` at `level` if its mask exists, else None."""
    mask_path = self.path(layout.mask_file(seed, k, self.settings.mask_owner(variant), level))
    if not files.exists(mask_path):
      return None
    return self.run_name(variant, self.settings.run_seed(variant, seed), k,
                         masks_lib.load(mask_path))

  # -- steps ------------------------------------------------------------------------------

  def train_parent(self, init_seed, k):
    """Trains W_0 to W_k of `init_seed` (k = 0: just saves W_0)."""
    return self.train_together([self.parent_spec(init_seed, k)])

  def parent_spec(self, init_seed, k):
    """The training run of W_0 to W_k of `init_seed`, as common.train_group takes it."""
    run_dir = self.path(self.parent_run(init_seed, k))
    lineage = common.lineage(
        self.model_dir, run_dir, f"parent/init={init_seed}/{layout.rewind_name(k)}", "parent",
        init_seed=init_seed, rewind_step=k,
        seeds=common.parent_seeds(init_seed))
    return dict(run_dir=run_dir, label=f"parent init {init_seed} to step {k}", lineage=lineage,
                init_seed=init_seed, end_step=k, keep_steps=[k], data=self.data,
                hparams=self.hparams)

  def train_together(self, specs):
    """Trains runs of one start and schedule in one program (imp.copies_per_program);
    returns whether any had to train."""
    return common.group_step(specs, self.strategy)()

  def masks(self, seed, k, variant, level):
    """The mask of `variant` at `level`, from its file, or computed and saved (atomically)."""
    path = self.path(layout.mask_file(seed, k, variant, level))
    if files.exists(path):
      return masks_lib.load(path)
    ignore = self.settings.layers_to_ignore
    if variant == "imp" and level == 0:
      masks = {l.name: np.ones(l.mask.shape, np.float32)
               for l in layers.masked_layers(self.scratch)}
    elif variant == "imp":
      previous = self.masks(seed, k, "imp", level - 1)
      kernels, _ = self.final_kernels(self.run_name("imp", seed, k, previous))
      masks = magnitude.prune(kernels, previous, self.settings.keep_at(level), ignore)
    elif variant == "random_pruning":
      masks = baselines.random_pruning(self.masks(seed, k, "imp", level), seed * 1000 + level,
                                       ignore)
    elif variant == "snip":
      masks = self._snip_masks(seed, self.settings.keep_at(level))
    else:
      raise ValueError(f"no mask file of its own for {variant!r}")
    if self.chief:
      masks_lib.save(path, masks)
      files.write_json_atomic(layout.sparsity_report(path),
                              masks_lib.sparsity_report(masks, ignore))
    return masks

  def _snip_masks(self, seed, keep):
    """SNIP at the init of `seed`, scored on the first training batch of the run's order."""
    fresh = registry.build_model(init_seed=seed, input_shape=self.data.image_shape,
                                 num_classes=self.data.num_classes)
    images, labels = next(iter(self.data.train_batches(self.hparams.batch_size, 0, 0, 0, 1)))
    return baselines.snip(fresh, images, labels, keep, self.settings.layers_to_ignore)

  def train_level(self, seed, k, level, variant):
    """Trains `variant`'s subnetwork at `level` from W_k to T (random_reinit: IMP's mask on
    the init of seed + REINIT_OFFSET, rewound to its own W_k)."""
    return self.train_together([self.level_spec(seed, k, level, variant)])

  def level_spec(self, seed, k, level, variant):
    """The training run of train_level, as common.train_group takes it (its mask made)."""
    masks = self.masks(seed, k, self.settings.mask_owner(variant), level)
    run_seed = self.settings.run_seed(variant, seed)
    density = masks_lib.density(masks, self.settings.layers_to_ignore)
    run_dir = self.path(self.run_name(variant, run_seed, k, masks))
    lineage = common.lineage(
        self.model_dir, run_dir,
        f"level={level:02d}/init={seed}/{layout.rewind_name(k)}/{variant}", variant,
        level=level, density=float(density), init_seed=seed, rewind_step=k, variant=variant,
        seeds=common.parent_seeds(run_seed),
        mask=layout.mask_file(seed, k, self.settings.mask_owner(variant), level),
        parent=self.parent_run(run_seed, k))
    return dict(
        run_dir=run_dir,
        label=f"init {seed} k {k} level {level}/{self.settings.levels} ({100 * density:.1f}%) "
              f"{variant}", lineage=lineage,
        init_seed=run_seed, start_from=layout.checkpoint(self.path(self.parent_run(run_seed, k)),
                                                         k),
        start_step=k, masks=masks, data=self.data, hparams=self.hparams)

  def final_kernels(self, run):
    """The masked layers' trained kernels by name, and every trainable variable masked."""
    model = self.scratch
    interpolate.read_variables(model, layout.checkpoint(self.path(run),
                                                        self.settings.total_steps))
    return ({l.name: l.kernel.numpy() for l in layers.masked_layers(model)},
            distances.masked_trainable(model))

  def subnetwork_mask(self, seed, sub):
    """The mask file of sub-experiment `sub`'s subnetwork, from IMP of init `seed`.

    IMP and random reinitialization take the mask IMP found rewinding to k; random pruning
    draws that mask's per-layer densities at new positions; SNIP's mask does not depend on k.
    """
    if sub.variant in ("imp", "random_reinit"):
      return layout.mask_file(seed, sub.rewind_step, "imp", sub.level)
    if sub.variant == "random_pruning":
      self.masks(seed, sub.rewind_step, sub.variant, sub.level)  # drawn from IMP's mask at k
      return layout.mask_file(seed, sub.rewind_step, sub.variant, sub.level)
    return layout.mask_file(seed, self.settings.main_step, sub.variant, sub.level)

  def sub_experiment(self, seed, sub):
    """The instability experiment of one subnetwork from k (Figures 5 to 8), planned once
    per process: its copies are steps, `copies_per_program` to a step."""
    if sub.name not in self._sub_experiments:
      target = sub.directory(self.model_dir)
      logging.info(f"Instability of {sub.name}: {target}")
      self._sub_experiments[sub.name] = instability.instability(
          target, self.strategy, rewind_steps=[sub.rewind_step], num_inits=1,
          num_pairs=self.settings.instability_pairs, init_seed=sub.init_seed,
          reset_schedule=False, every_epoch=False,
          mask_file=self.path(self.subnetwork_mask(seed, sub)), parents_dir=self.model_dir,
          plan_only=True, copies_per_program=self.copies_per_program)
    return self._sub_experiments[sub.name]

  # -- results ----------------------------------------------------------------------------

  def level_entries(self, seed, k):
    """imp.json's entries for (seed, k): every level whose IMP run has finished."""
    entries, full_masked = [], None
    for level in range(self.settings.levels + 1):
      mask_path = self.path(layout.mask_file(seed, k, "imp", level))
      if not files.exists(mask_path):
        break
      masks = masks_lib.load(mask_path)
      entry = {"level": level, "density": masks_lib.density(masks,
                                                            self.settings.layers_to_ignore),
               "runs": {}, "test_accuracy": {}, "mask_files": {}}
      for variant in self.settings.variants_at(k, level):
        run = self.level_run(seed, k, level, variant)
        if run is None or not layout.is_finished(self.path(run)):
          continue
        if variant != "random_reinit":
          entry["mask_files"][variant] = layout.mask_file(seed, k, variant, level)
        entry["runs"][variant] = run
        entry["test_accuracy"][variant] = files.read_json(
            layout.summary(self.path(run)))["test_accuracy"]
      if "imp" not in entry["runs"]:
        break
      if level == 0:
        _, full_masked = self.final_kernels(entry["runs"]["imp"])
      else:
        entry["stability_to_pruning_of"] = self._stability_to_pruning(seed, k, level, entry,
                                                                      full_masked)
        entry["stability_to_pruning"] = entry["stability_to_pruning_of"]["imp"]
      entries.append(entry)
    return entries

  def _stability_to_pruning(self, seed, k, level, entry, full_masked):
    """{variant: distance to the full network} of the level's runs that share its init and
    data order (random reinitialization has neither)."""
    out = {}
    for variant, run in entry["runs"].items():
      if variant == "random_reinit":
        continue
      masks = masks_lib.load(self.path(layout.mask_file(seed, k, variant, level)))
      _, sub = self.final_kernels(run)
      out[variant] = stability_to_pruning(full_masked, sub, masks, self.scratch)
    return out


def stability_to_pruning(masked_full, masked_sub, masks, model):
  """Distance between the subnetwork trained alone and the full network trained from the same
  W_k with the same data order, both seen through the subnetwork's mask (Stabilizing paper)."""
  by_var = {id(l.kernel): masks[l.name] for l in layers.masked_layers(model)}
  full = [w * by_var[id(v)] if id(v) in by_var else w
          for w, v in zip(masked_full, model.trainable_variables)]
  cosine, angle = distances.cosine(full, masked_sub)
  return {"l2": distances.l2(full, masked_sub), "angle_deg": angle, "cosine": cosine}
