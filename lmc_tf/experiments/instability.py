"""The `instability` job: Algorithm 1 of the LMC paper, for every k of a rewind grid.

For each of `num_inits` init seeds, one parent run trains from W_0 to the largest k and keeps
W_k at every k of the grid. For each k, `num_pairs` pairs of copies start from W_k (masked, if
a mask is given) and train to T under different data orders and augmentations; with
`reset_schedule` they train for T steps with the learning-rate schedule restarted at k
(Figure 4). The evaluator (`--job=evaluate`) interpolates the finished pairs.

Every run directory is named by the hash of what produced it (layout.run_name), so a rerun
finds finished runs and skips them, and resumes an interrupted one from its checkpoint.

  DIR/instability.json   the plan: every parent, copy and pair, written before training
  DIR/runs/parent-<hash> DIR/runs/copy-<hash>   the training runs
"""

import time

from absl import logging
import gin

from lmc_tf import distribute
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.experiments import common
from lmc_tf.experiments import steps as steps_lib
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.pruning import masks as masks_lib
from lmc_tf.training import runner
from lmc_tf.training import schedules

VARIANTS = {False: ("standard",), True: ("reset",), "both": ("standard", "reset")}


def copy_seeds(pair, copy):
  """Data-order and augmentation seed of copy `copy` (0 or 1) of pair `pair`.

  Seed 0 is the parent's; pairs never share a seed, so every copy sees its own SGD noise.
  """
  seed = 1 + 2 * pair + copy
  return {"data_order_seed": seed, "augmentation_seed": seed}


def plan(fingerprint, rewind_steps, total_steps, steps_per_epoch, num_inits=3, num_pairs=3,
         init_seed=0, reset_schedule=False, every_epoch=False, mask_digest=None):
  """The runs and pairs of an instability experiment, named by hash (pure)."""
  if reset_schedule not in VARIANTS:
    raise ValueError(f"instability.reset_schedule={reset_schedule!r} must be False, True "
                     "or 'both'")
  errors.positive_int(num_inits, "instability.num_inits")
  errors.positive_int(num_pairs, "instability.num_pairs")
  errors.non_negative_int(init_seed, "instability.init_seed")
  rewind_steps = sorted(set(rewind_steps))
  late = [k for k in rewind_steps if not 0 <= k <= total_steps]
  if late:
    raise errors.ConfigError(f"instability.rewind_steps: steps {late} lie outside "
                             f"[0, T={total_steps}]")
  parents, pairs = {}, []
  for i in range(num_inits):
    seed = init_seed + i
    parent_spec = {"role": "parent", "train": fingerprint, "init_seed": seed,
                   "rewind_steps": rewind_steps}
    parent = layout.run_name("parent", parent_spec)
    parents[str(seed)] = {"run": parent, "init_seed": seed, "end_step": max(rewind_steps)}
    for variant in VARIANTS[reset_schedule]:
      for k in rewind_steps:
        for j in range(num_pairs):
          copies = []
          for c in range(2):
            spec = {"role": "copy", "parent": parent, "rewind_step": k, **copy_seeds(j, c)}
            # Only values that differ from the default enter the hash (as in open_lth), so
            # adding an option keeps the names of existing runs.
            # From k = 0, restarting the schedule at k is the standard run: the reset pair
            # shares its copies rather than training them again.
            if variant == "reset" and k > 0:
              spec["reset_schedule"] = True
            if every_epoch:
              spec["every_epoch"] = True
            if mask_digest:
              spec["mask"] = mask_digest
            copies.append(layout.run_name("copy", spec))
          pair_hash = layout.run_hash(copies)[:8]
          pairs.append({
              "id": f"{variant}-k{k}-init{seed}-pair{j}-{pair_hash}", "variant": variant,
              "rewind_step": k, "init_seed": seed, "pair": j, "parent": parent,
              "copies": copies,
              "start_step": k,
              "end_step": k + total_steps if variant == "reset" else total_steps,
              "seeds": [copy_seeds(j, c) for c in range(2)]})
  return {"rewind_steps": rewind_steps, "num_inits": num_inits, "num_pairs": num_pairs,
          "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
          "variants": list(VARIANTS[reset_schedule]), "every_epoch": bool(every_epoch),
          "mask": mask_digest, "parents": parents, "pairs": pairs}


def parent_key(init_seed):
  return f"parent-init{init_seed}"


def copy_key(pair, copy):
  """The step of a copy. From k = 0 the reset pairs share the standard pairs' copies."""
  variant = "standard" if pair["rewind_step"] == 0 else pair["variant"]
  return (f"{variant}-k{pair['rewind_step']}-init{pair['init_seed']}-pair{pair['pair']}"
          f"-copy{copy}")


def _move_parents(manifest, parents_dir, model_dir):
  """Points the manifest at parents that live in `parents_dir`; paths stay relative to
  model_dir, for the evaluator and the report."""
  moved = {p["run"]: files.relative(layout.run_dir(parents_dir, p["run"]), model_dir)
           for p in manifest["parents"].values()}
  for entry in list(manifest["parents"].values()) + manifest["pairs"]:
    key = "run" if "run" in entry else "parent"
    entry[key] = moved[entry[key]]


def _copies(manifest):
  """{step key: (pair, run, seeds, copy index)}: each copy once (reset pairs from k = 0
  share the standard pairs' copies)."""
  copies = {}
  for pair in manifest["pairs"]:
    for c, (run, seeds) in enumerate(zip(pair["copies"], pair["seeds"])):
      copies.setdefault(copy_key(pair, c), (pair, run, seeds, c))
  return copies


def _training_steps(model_dir, manifest, copies, masks, every_epoch, steps_per_epoch,
                    runs_per_step=1, **shared):
  """The parents' steps, then the copies' steps, which read their parents' W_k.

  With `runs_per_step` (common.runs_per_step) N > 1, runs that share a start step and a
  schedule train N at a time (common.group_step): the parents of several inits, and the
  copies of one rewind step and variant (of every init). A group's step key joins its runs'
  keys.
  """
  width = layout.rewind_width(manifest)
  parents = {}
  for parent in manifest["parents"].values():
    seed = parent["init_seed"]
    parent_dir = layout.run_dir(model_dir, parent["run"])
    parent_lineage = common.lineage(
        model_dir, parent_dir, f"parent/init={seed}", "parent", init_seed=seed,
        seeds=common.parent_seeds(seed),
        rewind_steps=manifest["rewind_steps"], mask=manifest["mask"])
    parents[seed] = (parent_dir, parent["run"], dict(
        run_dir=parent_dir, label=f"parent init {seed} to step {parent['end_step']}",
        lineage=parent_lineage, init_seed=seed, end_step=parent["end_step"],
        keep_steps=manifest["rewind_steps"], **shared))
  by_schedule = {}
  for n, (key, (pair, run, seeds, c)) in enumerate(copies.items()):
    seed, k, end = pair["init_seed"], pair["rewind_step"], pair["end_step"]
    run_dir = layout.run_dir(model_dir, run)
    variant = "standard" if k == 0 else pair["variant"]
    parent_dir, parent_run, _ = parents[seed]
    copy_lineage = common.lineage(
        model_dir, run_dir, layout.tensorboard_copy_name(pair, c, width), "copy",
        rewind_step=k, init_seed=seed, pair=pair["pair"], copy="AB"[c],
        variant=variant, seeds={"init_seed": seed, **seeds}, mask=manifest["mask"],
        parent=parent_run, start_step=k, end_step=end)
    by_schedule.setdefault((variant, k), []).append((key, parent_key(seed), dict(
        run_dir=run_dir, label=f"[{n + 1}/{len(copies)}] copy {c + 1} of {pair['id']}",
        lineage=copy_lineage, init_seed=seed,
        start_from=layout.checkpoint(parent_dir, k), start_step=k, end_step=end,
        schedule_offset=k if pair["variant"] == "reset" else 0, masks=masks,
        keep_steps=schedules.epoch_steps(k, end, steps_per_epoch) if every_epoch else (),
        **seeds, **shared)))
  strategy = shared["strategy"]
  experiment_steps = [
      _step([(parent_key(seed), (), run) for seed, (_, _, run) in group], strategy)
      for group in steps_lib.chunks(list(parents.items()), runs_per_step)]
  step_of = {m: step.key for step in experiment_steps for m in step.members or (step.key,)}
  for members in by_schedule.values():
    experiment_steps += [_step([(key, (step_of[dep],), run) for key, dep, run in group],
                               strategy)
                         for group in steps_lib.chunks(members, runs_per_step)]
  return experiment_steps


def _step(members, strategy):
  """One step that trains `members` ([(key, deps, run keywords)]) in one program."""
  runs = [{k: v for k, v in run.items() if k != "strategy"} for _, _, run in members]
  return steps_lib.together([key for key, _, _ in members], common.group_step(runs, strategy),
                            [d for _, ds, _ in members for d in ds])


@gin.configurable("instability", denylist=["model_dir", "strategy", "parents_dir", "plan_only"])
def instability(model_dir, strategy, rewind_steps=(0,), num_inits=3, num_pairs=3,
                init_seed=0, reset_schedule=False, every_epoch=False, mask_file=None,
                parents_dir=None, plan_only=False, copies_per_program=1):
  """Trains the parents and copies of an instability analysis (Algorithm 1).

  Args:
    rewind_steps: the grid of k, as ints or '500it' / '2ep'.
    num_inits, num_pairs: samples per k: init seeds init_seed, init_seed + 1, ..., and pairs
      of copies per init (the paper: 3 x 3).
    reset_schedule: False, True (copies train T steps, schedule restarted at k; Figure 4),
      or 'both'.
    every_epoch: keep each copy's checkpoint every epoch, for instability throughout training
      (Appendix C).
    mask_file: an .npz of {layer name: 0/1 mask} applied to W_k before the copies start.
    parents_dir: where the parent runs live, if not in model_dir: IMP's sub-experiments
      share the parents IMP trained (a parent's name is the hash of what it computes, so a
      finished one is found and not trained again).
    plan_only: return the experiment's steps (steps.Experiment) instead of running them, for
      the sweep launcher.
    copies_per_program: train up to this many runs that share a start and a schedule in one
      compiled program (training/group.py): the parents, and the copies of each rewind step
      and variant. Each run is still its own directory, checkpoints and results, with the
      weights it would reach alone; only the wall time changes. With
      training.programs_at_once = L, L such programs train side by side: K x L runs a step.
  """
  errors.positive_int(copies_per_program, "instability.copies_per_program")
  data = data_base.get_dataset()
  hparams = runner.TrainingHParams()
  schedule = runner.Schedule.resolve(hparams, data.num_train)
  steps = [schedules.parse_steps(k, schedule.steps_per_epoch, "instability.rewind_steps")
           for k in rewind_steps]
  if not steps:
    raise errors.ConfigError("instability.rewind_steps is empty: give at least one k")
  masks = masks_lib.load(mask_file) if mask_file else None
  if masks is not None:
    empty = sorted(name for name, m in masks.items() if not m.any())
    if len(empty) == len(masks):
      raise errors.ConfigError(f"instability.mask_file={mask_file!r} keeps no weight: "
                               "every layer it masks is pruned away")
    if empty:
      logging.warning(f"{mask_file} keeps no weight of layer(s) {empty}: no signal passes "
                      "them")
  digest = masks_lib.digest(masks) if masks is not None else None
  if masks is not None:
    # A mask that does not fit the model is an error now, not after the parents trained.
    layers.set_masks(registry.build_model(input_shape=data.image_shape,
                                          num_classes=data.num_classes), masks)
  manifest = plan(layout.training_fingerprint(), steps, schedule.total,
                  schedule.steps_per_epoch, num_inits, num_pairs, init_seed, reset_schedule,
                  every_epoch, digest)
  if parents_dir is not None:
    _move_parents(manifest, parents_dir, model_dir)
  if distribute.is_chief(strategy):
    if parents_dir is None:  # IMP's sub-experiments belong to IMP's experiment
      common.record_experiment(model_dir, "instability", {
          "rewind_steps": manifest["rewind_steps"], "init_seed": init_seed,
          "reset_schedule": reset_schedule, "every_epoch": every_epoch, "mask_file": digest})
    files.write_json_atomic(layout.manifest(model_dir), manifest)
    common.write_operative_config(model_dir)
  copies = _copies(manifest)
  experiment_steps = _training_steps(model_dir, manifest, copies, masks, every_epoch,
                                     schedule.steps_per_epoch, strategy=strategy, data=data,
                                     hparams=hparams,
                                     runs_per_step=common.runs_per_step(copies_per_program,
                                                                        hparams))
  started = time.time()

  def finish():
    # Each run's summary sums the processes that trained it (killed and resumed ones too).
    runs = [p["run"] for p in manifest["parents"].values()] + [
        run for _, run, _, _ in copies.values()]
    training = sum(files.read_json(layout.summary(layout.run_dir(model_dir, run))).get(
        "wall_time_s", 0.0) for run in runs)
    # A run trained in a group counts the group's wall time: the sum counts a group K times.
    shared = " (runs trained together each count their group's time)" if (
        common.runs_per_step(copies_per_program, hparams) > 1) else ""
    logging.info(f"Instability runs done in {time.time() - started:.0f} s here, "
                 f"{training:.0f} s of training in all{shared}: "
                 f"{len(manifest['parents'])} parent(s), {len(copies)} copies. "
                 "Next: --job=evaluate, then --job=report.")
    return {"manifest": layout.manifest(model_dir), "pairs": len(manifest["pairs"]),
            "wall_time_s": round(training, 1)}

  experiment = steps_lib.Experiment(experiment_steps, finish)
  return experiment if plan_only else experiment.run()
