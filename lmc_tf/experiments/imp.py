"""The `imp` job: iterative magnitude pruning with rewinding (Algorithm 2) and its baselines.

For each init seed: a parent trains W_0 to W_k (k = `rewind_step`; k = 0 is the original
lottery ticket procedure). Level 0 trains the full network from W_k to T. Level L + 1 prunes
the lowest-magnitude surviving weights of level L's trained network (globally, 20% of what
remains, or one shot to `density`), rewinds the survivors to W_k, and trains m * W_k to T.
At every level the baselines train at the same density:
  random_pruning  the IMP mask's per-layer densities at new random positions;
  random_reinit   the IMP mask on a network of a new init seed (rewound to its own step k);
  snip            |g * w| on one batch at init, at the IMP level's global density.
Every level and baseline run uses the parent's data order, so the distance between a level's
subnetwork and the full network trained from the same W_k measures stability to pruning
(Stabilizing paper). Runs are hash-named; finished levels are skipped on a rerun.

  DIR/masks/init<s>/<variant>_level<L>.npz (+ .json sparsity report)
  DIR/imp.json     the levels, their densities and run directories, as they finish
  DIR/summary.json per level: density, test accuracy of IMP and each baseline, stability to
                   pruning, and the instability of the subnetworks where it was measured
  DIR/instability/<variant>-level<L>-init<s>-k<k>/   instability of the subnetwork rewound
                   to k, at the chosen levels (--job=evaluate)
"""

import os
import time

import gin
import numpy as np
import tensorflow as tf

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import distances
from lmc_tf.experiments import instability
from lmc_tf.experiments import jobs
from lmc_tf.experiments import rundirs
from lmc_tf.experiments import steps as steps_lib
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import baselines
from lmc_tf.pruning import magnitude
from lmc_tf.pruning import masks as masks_lib
from lmc_tf.training import runner
from lmc_tf.training import schedules

BASELINES = ("random_pruning", "random_reinit", "snip")
RECORD = "imp.json"
INSTABILITY_DIR = "instability"
REINIT_OFFSET = 10_000  # random_reinit of init seed s uses init seed s + REINIT_OFFSET


def _run_spec(fingerprint, variant, init_seed, rewind_step, mask_digest):
  return {"role": variant, "train": fingerprint, "init_seed": init_seed,
          "rewind_step": rewind_step, "mask": mask_digest}


class _Imp:
  """The runs of one IMP experiment, each found on disk by the hash of what it computes.

  Every step below reads its inputs from files that the steps it depends on wrote (masks,
  checkpoints, summaries), so it runs the same in this process or in a Ray worker.
  """

  def __init__(self, model_dir, strategy, data, hparams, fingerprint, end, levels, keep_at,
               ignore):
    self.model_dir, self.strategy, self.data, self.hparams = model_dir, strategy, data, hparams
    self.fingerprint, self.end, self.levels = fingerprint, end, levels
    self.keep_at, self.ignore = keep_at, ignore
    self.chief = distribute.is_chief(strategy)
    self._scratch = None
    self._sub_experiments = {}

  @property
  def scratch(self):
    """A model to read checkpoints into (built once, on first use)."""
    if self._scratch is None:
      with self.strategy.scope():
        self._scratch = registry.build_model(input_shape=self.data.image_shape,
                                             num_classes=self.data.num_classes)
    return self._scratch

  def path(self, *parts):
    return os.path.join(self.model_dir, *parts)

  # -- names ------------------------------------------------------------------------------

  def parent_run(self, init_seed, k):
    spec = {"role": "parent", "train": self.fingerprint, "init_seed": init_seed,
            "rewind_steps": [k]}
    return f"runs/parent-{rundirs.run_hash(spec)}"

  def run_name(self, variant, init_seed, k, masks):
    return "runs/{}-{}".format(variant, rundirs.run_hash(_run_spec(
        self.fingerprint, variant, init_seed, k, masks_lib.digest(masks))))

  @staticmethod
  def mask_file(seed, k, variant, level):
    return os.path.join("masks", f"init{seed}-k{k}", f"{variant}_level{level:02d}.npz")

  # -- steps ------------------------------------------------------------------------------

  def train_parent(self, init_seed, k):
    """Trains W_0 to W_k of `init_seed` (k = 0: just saves W_0)."""
    return instability.training_step(
        self.path(self.parent_run(init_seed, k)), f"parent init {init_seed} to step {k}",
        init_seed=init_seed, end_step=k, keep_steps=[k], strategy=self.strategy,
        data=self.data, hparams=self.hparams)()

  def masks(self, seed, k, variant, level):
    """The mask of `variant` at `level`, from its file, or computed and saved (atomically)."""
    path = self.path(self.mask_file(seed, k, variant, level))
    if tf.io.gfile.exists(path):
      return masks_lib.load(path)
    if variant == "imp":
      if level == 0:
        masks = {l.name: np.ones(l.mask.shape, np.float32)
                 for l in layers.masked_layers(self.scratch)}
      else:
        previous = self.masks(seed, k, "imp", level - 1)
        kernels, _ = self.final_kernels(self.run_name("imp", seed, k, previous))
        masks = magnitude.prune(kernels, previous, self.keep_at(level), self.ignore)
    elif variant == "random_pruning":
      masks = baselines.random_pruning(self.masks(seed, k, "imp", level), seed * 1000 + level,
                                       self.ignore)
    elif variant == "snip":
      masks = _snip_masks(self.data, self.hparams, seed, self.keep_at(level), self.ignore)
    else:
      raise ValueError(f"no mask file of its own for {variant!r}")
    if self.chief:
      masks_lib.save(path, masks)
      rundirs.write_json_atomic(path[:-4] + ".json",
                                masks_lib.sparsity_report(masks, self.ignore))
    return masks

  def train_level(self, seed, k, level, variant):
    """Trains `variant`'s subnetwork at `level` from W_k to T (random_reinit: IMP's mask on
    the init of seed + REINIT_OFFSET, rewound to its own W_k)."""
    masks = self.masks(seed, k, "imp" if variant == "random_reinit" else variant, level)
    run_seed = seed + REINIT_OFFSET if variant == "random_reinit" else seed
    density = masks_lib.density(masks, self.ignore)
    return instability.training_step(
        self.path(self.run_name(variant, run_seed, k, masks)),
        f"init {seed} k {k} level {level}/{self.levels} ({100 * density:.1f}%) {variant}",
        init_seed=run_seed,
        start_from=self.path(self.parent_run(run_seed, k), "checkpoints", f"ckpt-{k}"),
        start_step=k, masks=masks, strategy=self.strategy, data=self.data,
        hparams=self.hparams)()

  def final_kernels(self, run):
    from lmc_tf.evaluation import interpolate  # pylint: disable=g-import-not-at-top
    model = self.scratch
    interpolate.read_variables(model, self.path(run, "checkpoints", f"ckpt-{self.end}"))
    return ({l.name: l.kernel.numpy() for l in layers.masked_layers(model)},
            distances.masked_trainable(model))

  def subnetwork(self, seed, main_k, k, level, variant):
    """(mask file, init seed) of `variant`'s subnetwork at `level` rewound to `k`.

    IMP and random reinitialization take the mask IMP found rewinding to k; random pruning
    draws that mask's per-layer densities at new positions; SNIP's mask does not depend on k.
    """
    if variant in ("imp", "random_reinit"):
      mask_file = self.mask_file(seed, k, "imp", level)
    elif variant == "random_pruning":
      mask_file = self.mask_file(seed, k, variant, level)
      self.masks(seed, k, variant, level)  # drawn from the mask IMP found at k
    else:
      mask_file = self.mask_file(seed, main_k, variant, level)
    return mask_file, seed + REINIT_OFFSET if variant == "random_reinit" else seed

  def sparse_instability(self, name, mask_file, run_seed, k, num_pairs):
    """The instability experiment of one subnetwork from k (Figures 5 to 8), planned once
    per process: its copies are separate steps."""
    if name not in self._sub_experiments:
      target = self.path(INSTABILITY_DIR, name)
      print(f"Instability of {name}: {target}", flush=True)
      self._sub_experiments[name] = instability.instability(
          target, self.strategy, rewind_steps=[k], num_inits=1, num_pairs=num_pairs,
          init_seed=run_seed, reset_schedule=False, every_epoch=False,
          mask_file=self.path(mask_file), parents_dir=self.model_dir, plan_only=True)
    return self._sub_experiments[name]

  # -- results ----------------------------------------------------------------------------

  def level_entries(self, seed, k, variants_at):
    """imp.json's entries for (seed, k): every level whose IMP run has finished."""
    entries, full_masked = [], None
    for level in range(self.levels + 1):
      path = self.path(self.mask_file(seed, k, "imp", level))
      if not tf.io.gfile.exists(path):
        break
      masks = masks_lib.load(path)
      entry = {"level": level, "density": masks_lib.density(masks, self.ignore), "runs": {},
               "test_accuracy": {}, "mask_files": {}}
      for variant in variants_at(level):
        own = "imp" if variant == "random_reinit" else variant
        file = self.mask_file(seed, k, own, level)
        if not tf.io.gfile.exists(self.path(file)):
          continue
        run_seed = seed + REINIT_OFFSET if variant == "random_reinit" else seed
        run = self.run_name(variant, run_seed, k, masks_lib.load(self.path(file)))
        if not rundirs.is_finished(self.path(run)):
          continue
        if variant != "random_reinit":
          entry["mask_files"][variant] = file
        entry["runs"][variant] = run
        entry["test_accuracy"][variant] = rundirs.read_json(
            self.path(run, "summary.json"))["test_accuracy"]
      if "imp" not in entry["runs"]:
        break
      _, sub = self.final_kernels(entry["runs"]["imp"])
      if level == 0:
        full_masked = sub
      else:
        entry["stability_to_pruning"] = _stability_to_pruning(full_masked, sub, masks,
                                                              self.scratch)
      entries.append(entry)
    return entries


def _stability_to_pruning(masked_full, masked_sub, masks, model):
  """Distance between the subnetwork trained alone and the full network trained from the same
  W_k with the same data order, both seen through the subnetwork's mask (Stabilizing paper)."""
  by_var = {id(l.kernel): masks[l.name] for l in layers.masked_layers(model)}
  full = [w * by_var[id(v)] if id(v) in by_var else w
          for w, v in zip(masked_full, model.trainable_variables)]
  cosine, angle = distances.cosine(full, masked_sub)
  return {"l2": distances.l2(full, masked_sub), "angle_deg": angle, "cosine": cosine}


def _parent_key(seed, k):
  return f"parent-init{seed}-k{k}"


def _level_key(seed, k, level, variant):
  return f"init{seed}-k{k}-level{level:02d}-{variant}"


@jobs.register("imp")
@gin.configurable("imp", denylist=["model_dir", "strategy", "plan_only"])
def imp(model_dir, strategy, levels=15, rewind_steps=(0,), num_inits=1, init_seed=0,
        pruning_fraction=0.2, density=None, layers_to_ignore=None, baselines_to_run=BASELINES,
        instability_levels=(), instability_rewind_steps=None, instability_pairs=3,
        plan_only=False):
  """IMP with rewinding, and its baselines at every level.

  Args:
    levels: pruning levels after the full network (iterative: density 0.8^L at level L).
    rewind_steps: the k to rewind to, as ints or '500it' / '2ep'. The first is the main
      experiment (baselines, instability, Table 2); IMP alone runs at the others, for the
      extreme sparsity of Appendix A (the best accuracy over k at each density, Figure 10).
    num_inits, init_seed: init seeds init_seed, init_seed + 1, ...
    pruning_fraction: share of the remaining prunable weights removed per level.
    density: if set, prune one shot to this density (levels is then 1).
    layers_to_ignore: prunable layers left dense; None takes the model's default (SPEC §3).
    baselines_to_run: any of 'random_pruning', 'random_reinit', 'snip'.
    instability_levels: levels whose subnetworks (IMP and every baseline) get an instability
      experiment in DIR/instability/ (train here; then --job=evaluate and --job=report).
    instability_rewind_steps: the k grid of those experiments (default: the first k).
    instability_pairs: pairs of copies per init in those experiments.
    plan_only: return the experiment's steps (steps.Experiment) instead of running them, for
      the sweep launcher.
  """
  magnitude.check_fraction(pruning_fraction, "imp.pruning_fraction")
  unknown = sorted(set(baselines_to_run) - set(BASELINES))
  if unknown:
    raise ValueError(f"imp.baselines_to_run: unknown {unknown}; choose from {BASELINES}")
  if density is not None:
    magnitude.keep_count(1, density=density)  # validates
    levels = 1
  data = data_base.get_dataset()
  hparams = runner.TrainingHParams()
  schedule = runner.Schedule.resolve(hparams, data.num_train)
  ks = [schedules.parse_steps(k, schedule.steps_per_epoch) for k in rewind_steps]
  late = [k for k in ks if k > schedule.total]
  if not ks or late:
    raise ValueError(f"imp.rewind_steps {list(rewind_steps)}: need at least one, and none "
                     f"beyond T={schedule.total}")
  instability_ks = sorted({schedules.parse_steps(k, schedule.steps_per_epoch)
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
  model = registry.build_model(input_shape=data.image_shape, num_classes=data.num_classes)
  ignore = tuple(registry.spec(_model_name()).layers_to_ignore
                 if layers_to_ignore is None else layers_to_ignore)
  ones = layers.get_masks(model)
  total = sum(ones[n].size for n in masks_lib.prunable(ones, ignore))  # checks the names
  del model

  def keep_at(level):
    if density is not None:
      return magnitude.keep_count(total, density=density)
    return magnitude.keep_count(total, pruning_fraction, level)

  chief = distribute.is_chief(strategy)
  if chief:
    rundirs.write_text_atomic(os.path.join(model_dir, config.OPERATIVE_CONFIG),
                              config.operative_config())
  exp = _Imp(model_dir, strategy, data, hparams, rundirs.training_fingerprint(),
             schedule.total, levels, keep_at, ignore)
  baselines_order = [b for b in ("random_pruning", "snip", "random_reinit")
                     if b in baselines_to_run]

  def variants_at(k, level):
    return ["imp"] + (baselines_order if level and k == ks[0] else [])

  steps, keys = [], set()

  def add(key, run, deps=()):
    if key not in keys:
      keys.add(key)
      steps.append(steps_lib.Step(key, run, tuple(deps)))

  for i in range(num_inits):
    seed = init_seed + i
    for k in ks:
      add(_parent_key(seed, k), lambda s=seed, k=k: exp.train_parent(s, k))
      for level in range(levels + 1):
        for variant in variants_at(k, level):
          deps = [_parent_key(seed, k)]
          if variant == "imp" and level:
            deps.append(_level_key(seed, k, level - 1, "imp"))  # level n before n + 1
          if variant in ("random_pruning", "random_reinit"):
            deps.append(_level_key(seed, k, level, "imp"))  # IMP's mask at this level
          if variant == "random_reinit":
            add(_parent_key(seed + REINIT_OFFSET, k),
                lambda s=seed + REINIT_OFFSET, k=k: exp.train_parent(s, k))
            deps.append(_parent_key(seed + REINIT_OFFSET, k))
          add(_level_key(seed, k, level, variant),
              lambda s=seed, k=k, l=level, v=variant: exp.train_level(s, k, l, v), deps)
    for level in instability_levels:
      for k in instability_ks:
        for variant in variants_at(ks[0], level):
          run_seed = seed + REINIT_OFFSET if variant == "random_reinit" else seed
          name = f"{variant}-level{level:02d}-init{run_seed}-k{k}"
          # The subnetwork's mask is IMP's at k (or SNIP's at the main k); its W_k is its
          # own parent's.
          mask_step = _level_key(seed, k if variant != "snip" else ks[0], level,
                                 "imp" if variant != "snip" else "snip")
          add(_parent_key(run_seed, k), lambda s=run_seed, k=k: exp.train_parent(s, k))
          for pair in range(instability_pairs):
            for copy in range(2):
              inner = instability.copy_key({"rewind_step": k, "variant": "standard",
                                            "init_seed": run_seed, "pair": pair}, copy)

              def run_copy(s=seed, k=k, l=level, v=variant, name=name, inner=inner):
                mask_file, run_seed = exp.subnetwork(s, ks[0], k, l, v)
                return exp.sparse_instability(name, mask_file, run_seed, k,
                                              instability_pairs).step(inner).run()
              add(f"{INSTABILITY_DIR}/{name}/{inner}", run_copy,
                  [mask_step, _parent_key(run_seed, k)])
  started = time.time()

  def finish():
    record = {"rewind_steps": ks, "total_steps": schedule.total, "levels": levels,
              "layers_to_ignore": list(ignore), "prunable_weights": int(total), "inits": {}}
    for i in range(num_inits):
      seed = init_seed + i
      record["inits"][str(seed)] = {
          str(k): exp.level_entries(seed, k, lambda level, k=k: variants_at(k, level))
          for k in ks}
    summary = summarize(model_dir, record)
    if chief:
      rundirs.write_json_atomic(os.path.join(model_dir, RECORD), record)
      rundirs.write_json_atomic(os.path.join(model_dir, "summary.json"), summary)
    print(f"IMP done in {time.time() - started:.0f} s. Table 2 row (mean over inits):",
          flush=True)
    for line in table_lines(summary):
      print("  " + line, flush=True)
    return summary

  experiment = steps_lib.Experiment(steps, finish)
  return experiment if plan_only else experiment.run()


def _model_name():
  return gin.query_parameter("model.name")


def _snip_masks(data, hparams, seed, keep, ignore):
  """SNIP at the init of `seed`, scored on the first training batch of the run's data order."""
  fresh = registry.build_model(init_seed=seed, input_shape=data.image_shape,
                               num_classes=data.num_classes)
  images, labels = next(iter(data.train_batches(hparams.batch_size, 0, 0, 0, 1)))
  return baselines.snip(fresh, images, labels, keep, ignore)


def sub_experiments(model_dir):
  """Names of the instability experiments under DIR/instability/, in order."""
  root = os.path.join(model_dir, INSTABILITY_DIR)
  if not os.path.isdir(root):
    return []
  return sorted(n for n in os.listdir(root)
                if os.path.exists(os.path.join(root, n, instability.MANIFEST)))


def _collect(record, k):
  """{level: {"densities", "acc": {variant: [per init]}, "stp": [...]}} at rewind step k."""
  by_level = {}
  for by_k in record["inits"].values():
    for entry in by_k.get(str(k), []):
      slot = by_level.setdefault(entry["level"], {"densities": [], "acc": {}, "stp": []})
      slot["densities"].append(entry["density"])
      for variant, acc in entry["test_accuracy"].items():
        slot["acc"].setdefault(variant, []).append(acc)
      if "stability_to_pruning" in entry:
        slot["stp"].append(entry["stability_to_pruning"])
  return by_level


def _sparse_instability_of(model_dir, level):
  """{variant: {k: mean test instability}} from the level's finished instability runs."""
  inst = {}
  for name in sub_experiments(model_dir):
    variant, _, rest = name.partition("-level")
    path = os.path.join(model_dir, INSTABILITY_DIR, name, "summary.json")
    if rest.startswith(f"{level:02d}-") and os.path.exists(path):
      test = rundirs.read_json(path).get("test", {})
      inst.setdefault(variant, {}).update({k: v["instability_mean"] for k, v in test.items()})
  return inst


def summarize(model_dir, record):
  """DIR/summary.json: per level (at the first rewind step), mean accuracies over inits,
  matching, stability to pruning and instability where measured; the best IMP accuracy over
  all rewind steps, and the extreme sparsity of Appendix A."""
  ks = record["rewind_steps"]
  by_level = _collect(record, ks[0])
  full = by_level.get(0, {}).get("acc", {}).get("imp")
  full_mean = float(np.mean(full)) if full else None
  imp_by_k = {k: {level: float(np.mean(slot["acc"]["imp"]))
                  for level, slot in _collect(record, k).items()} for k in ks}
  levels = []
  for level, slot in sorted(by_level.items()):
    out = {"level": level, "density": float(np.mean(slot["densities"])),
           "test_accuracy": {v: float(np.mean(a)) for v, a in slot["acc"].items()},
           "test_accuracy_sd": {v: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0
                                for v, a in slot["acc"].items()},
           "samples": len(slot["densities"])}
    if full_mean is not None:
      out["matching"] = {v: bool(a >= full_mean - 0.2) for v, a in out["test_accuracy"].items()}
    if slot["stp"]:
      out["stability_to_pruning"] = {key: float(np.mean([s[key] for s in slot["stp"]]))
                                     for key in ("l2", "angle_deg")}
    best = {k: imp_by_k[k][level] for k in ks if level in imp_by_k[k]}
    out["imp_by_rewind_step"] = {str(k): v for k, v in best.items()}
    out["best_rewind_step"] = max(best, key=best.get)
    inst = _sparse_instability_of(model_dir, level)
    if inst:
      out["instability"] = inst
    levels.append(out)
  extreme = None
  if full_mean is not None:
    matching = [l for l in levels if max(l["imp_by_rewind_step"].values()) >= full_mean - 0.2]
    if matching:
      sparsest = min(matching, key=lambda l: l["density"])
      extreme = {"level": sparsest["level"], "density": sparsest["density"],
                 "rewind_step": sparsest["best_rewind_step"]}
  return {"full_network_accuracy": full_mean, "rewind_steps": ks, "rewind_step": ks[0],
          "extreme_sparsity": extreme, "levels": levels}


def table_lines(summary):
  """Table 2 of the LMC paper from the summary: the last level, against the full network."""
  if not summary["levels"]:
    return []
  last = summary["levels"][-1]
  acc = last["test_accuracy"]
  full = summary["full_network_accuracy"]
  cells = [f"density {100 * last['density']:.1f}%", f"Full {full:.2f}"]
  for variant, name in (("imp", "IMP"), ("random_pruning", "Rand Prune"),
                        ("random_reinit", "Rand Reinit"), ("snip", "SNIP")):
    if variant in acc:
      cells.append(f"{name} {acc[variant]:.2f}")
  if "imp" in acc:
    cells.append(f"Δ IMP {acc['imp'] - full:+.2f}")
    cells.append(f"Matching? {'Y' if acc['imp'] >= full - 0.2 else 'N'}")
  return [" | ".join(cells)]
