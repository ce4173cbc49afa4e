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

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import distances
from lmc_tf.experiments import instability
from lmc_tf.experiments import jobs
from lmc_tf.experiments import rundirs
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


class _SubnetworkTrainer:
  """Trains subnetworks of one init seed from W_k, each once (hash-named run dirs)."""

  def __init__(self, model_dir, strategy, data, hparams, fingerprint, k, end):
    self.model_dir, self.strategy, self.data, self.hparams = model_dir, strategy, data, hparams
    self.fingerprint, self.k, self.end = fingerprint, k, end

  def parent(self, init_seed):
    spec = {"role": "parent", "train": self.fingerprint, "init_seed": init_seed,
            "rewind_steps": [self.k]}
    run = f"runs/parent-{rundirs.run_hash(spec)}"
    instability.train_run(
        os.path.join(self.model_dir, run), f"parent init {init_seed} to step {self.k}",
        init_seed=init_seed, end_step=self.k, keep_steps=[self.k], strategy=self.strategy,
        data=self.data, hparams=self.hparams)
    return run

  def train(self, variant, init_seed, masks, label):
    """Trains masks * W_k of `init_seed`'s parent to T; returns (run, summary)."""
    parent = self.parent(init_seed)
    run = "runs/{}-{}".format(variant, rundirs.run_hash(_run_spec(
        self.fingerprint, variant, init_seed, self.k, masks_lib.digest(masks))))
    summary = instability.train_run(
        os.path.join(self.model_dir, run), label, init_seed=init_seed,
        start_from=os.path.join(self.model_dir, parent, "checkpoints", f"ckpt-{self.k}"),
        start_step=self.k, masks=masks, strategy=self.strategy, data=self.data,
        hparams=self.hparams)
    return run, summary


def _final_kernels(model, run_dir, step):
  from lmc_tf.evaluation import interpolate  # pylint: disable=g-import-not-at-top
  interpolate.read_variables(model, os.path.join(run_dir, "checkpoints", f"ckpt-{step}"))
  return ({l.name: l.kernel.numpy() for l in layers.masked_layers(model)},
          distances.masked_trainable(model))


def _stability_to_pruning(masked_full, masked_sub, masks, model):
  """Distance between the subnetwork trained alone and the full network trained from the same
  W_k with the same data order, both seen through the subnetwork's mask (Stabilizing paper)."""
  by_var = {id(l.kernel): masks[l.name] for l in layers.masked_layers(model)}
  full = [w * by_var[id(v)] if id(v) in by_var else w
          for w, v in zip(masked_full, model.trainable_variables)]
  cosine, angle = distances.cosine(full, masked_sub)
  return {"l2": distances.l2(full, masked_sub), "angle_deg": angle, "cosine": cosine}


def _levels(trainer, model, seed, levels, keep_at, ignore, baselines_to_run, data, hparams,
            chief, on_level):
  """IMP from init `seed` rewinding to trainer.k: trains every level and its baselines.

  `model` is scratch space for reading checkpoints; level 0 is the dense network.
  """
  model_dir, k = trainer.model_dir, trainer.k
  masks = {l.name: np.ones(l.mask.shape, np.float32) for l in layers.masked_layers(model)}
  per_level, full_masked = [], None
  mask_dir = os.path.join(model_dir, "masks", f"init{seed}-k{k}")
  for level in range(levels + 1):
    if level:
      kernels, _ = _final_kernels(model, os.path.join(model_dir, per_level[-1]["runs"]["imp"]),
                                  trainer.end)
      masks = magnitude.prune(kernels, masks, keep_at(level), ignore)
    entry = {"level": level, "density": masks_lib.density(masks, ignore), "runs": {},
             "test_accuracy": {}, "mask_files": {}}
    variant_masks = {"imp": masks}
    if level:
      if "random_pruning" in baselines_to_run:
        variant_masks["random_pruning"] = baselines.random_pruning(
            masks, seed * 1000 + level, ignore)
      if "snip" in baselines_to_run:
        variant_masks["snip"] = _snip_masks(data, hparams, seed, keep_at(level), ignore)
    for variant, m in variant_masks.items():
      path = os.path.join(mask_dir, f"{variant}_level{level:02d}.npz")
      if chief and not os.path.exists(path):
        masks_lib.save(path, m)
        rundirs.write_json_atomic(path[:-4] + ".json", masks_lib.sparsity_report(m, ignore))
      entry["mask_files"][variant] = os.path.relpath(path, model_dir)
    to_train = list(variant_masks.items())
    if level and "random_reinit" in baselines_to_run:
      to_train.append(("random_reinit", masks))
    for variant, m in to_train:
      run_seed = seed + REINIT_OFFSET if variant == "random_reinit" else seed
      label = (f"init {seed} k {k} level {level}/{levels} ({100 * entry['density']:.1f}%) "
               f"{variant}")
      entry["runs"][variant], summary = trainer.train(variant, run_seed, m, label)
      entry["test_accuracy"][variant] = summary["test_accuracy"]
    _, sub = _final_kernels(model, os.path.join(model_dir, entry["runs"]["imp"]), trainer.end)
    if level == 0:
      full_masked = sub
    else:
      entry["stability_to_pruning"] = _stability_to_pruning(full_masked, sub, masks, model)
    per_level.append(entry)
    on_level(per_level)
  return per_level


@jobs.register("imp")
@gin.configurable("imp", denylist=["model_dir", "strategy"])
def imp(model_dir, strategy, levels=15, rewind_steps=(0,), num_inits=1, init_seed=0,
        pruning_fraction=0.2, density=None, layers_to_ignore=None, baselines_to_run=BASELINES,
        instability_levels=(), instability_rewind_steps=None, instability_pairs=3):
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

  def keep_at(level):
    if density is not None:
      return magnitude.keep_count(total, density=density)
    return magnitude.keep_count(total, pruning_fraction, level)

  chief = distribute.is_chief(strategy)
  if chief:
    rundirs.write_text_atomic(os.path.join(model_dir, config.OPERATIVE_CONFIG),
                              config.operative_config())
  fingerprint = rundirs.training_fingerprint()
  started = time.time()
  record = {"rewind_steps": ks, "total_steps": schedule.total, "levels": levels,
            "layers_to_ignore": list(ignore), "prunable_weights": int(total), "inits": {}}

  def save(per_level, seed, k):
    record["inits"].setdefault(str(seed), {})[str(k)] = per_level
    if chief:
      rundirs.write_json_atomic(os.path.join(model_dir, RECORD), record)

  for i in range(num_inits):
    seed = init_seed + i
    by_k = {}
    for k in ks:
      trainer = _SubnetworkTrainer(model_dir, strategy, data, hparams, fingerprint, k,
                                   schedule.total)
      by_k[k] = _levels(trainer, model, seed, levels, keep_at, ignore,
                        baselines_to_run if k == ks[0] else (), data, hparams, chief,
                        lambda entries, s=seed, k=k: save(entries, s, k))
    for level in instability_levels:
      for k in instability_ks:
        for variant, mask_file, run_seed in _subnetworks(model_dir, by_k, ks[0], k, level,
                                                         seed, ignore, chief):
          _sparse_instability(model_dir, strategy, variant, level, k, mask_file, run_seed,
                              instability_pairs)
  summary = summarize(model_dir, record)
  if chief:
    rundirs.write_json_atomic(os.path.join(model_dir, "summary.json"), summary)
  print(f"IMP done in {time.time() - started:.0f} s. Table 2 row (mean over inits):",
        flush=True)
  for line in table_lines(summary):
    print("  " + line, flush=True)
  return summary


def _model_name():
  return gin.query_parameter("model.name")


def _snip_masks(data, hparams, seed, keep, ignore):
  """SNIP at the init of `seed`, scored on the first training batch of the run's data order."""
  fresh = registry.build_model(init_seed=seed, input_shape=data.image_shape,
                               num_classes=data.num_classes)
  images, labels = next(iter(data.train_batches(hparams.batch_size, 0, 0, 0, 1)))
  return baselines.snip(fresh, images, labels, keep, ignore)


def _subnetworks(model_dir, by_k, main_k, k, level, seed, ignore, chief):
  """(variant, mask file, init seed) of each subnetwork at `level` rewound to `k`.

  IMP and random reinitialization take the mask IMP found rewinding to k; random pruning
  draws that mask's per-layer densities at new positions; SNIP's mask does not depend on k.
  The variants are those trained at the main rewind step.
  """
  main, entry = by_k[main_k][level], by_k[k][level]
  for variant in main["runs"]:
    if variant in ("imp", "random_reinit"):
      mask_file = entry["mask_files"]["imp"]
    elif variant == "random_pruning" and k != main_k:
      mask_file = os.path.join(os.path.dirname(entry["mask_files"]["imp"]),
                               f"random_pruning_level{level:02d}.npz")
      path = os.path.join(model_dir, mask_file)
      if chief and not os.path.exists(path):
        imp_mask = masks_lib.load(os.path.join(model_dir, entry["mask_files"]["imp"]))
        random = baselines.random_pruning(imp_mask, seed * 1000 + level, ignore)
        masks_lib.save(path, random)
        rundirs.write_json_atomic(path[:-4] + ".json", masks_lib.sparsity_report(random, ignore))
    else:
      mask_file = main["mask_files"][variant]
    yield variant, mask_file, seed + REINIT_OFFSET if variant == "random_reinit" else seed


def _sparse_instability(model_dir, strategy, variant, level, k, mask_file, seed, num_pairs):
  """Trains the copies of one subnetwork's instability experiment from k (Figures 5 to 8)."""
  name = f"{variant}-level{level:02d}-init{seed}-k{k}"
  target = os.path.join(model_dir, INSTABILITY_DIR, name)
  print(f"Instability of {variant} at level {level} rewound to k = {k}: {target}", flush=True)
  instability.instability(target, strategy, rewind_steps=[k], num_inits=1,
                          num_pairs=num_pairs, init_seed=seed,
                          mask_file=os.path.join(model_dir, mask_file), parents_dir=model_dir)


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
