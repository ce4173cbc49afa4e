"""The `evaluate` job: a separate process that sweeps alpha over finished pairs of copies.

    python -m lmc_tf.main --gin_file=X.gin --model_dir=DIR --job=evaluate

It reads DIR/instability.json (the instability job writes it before training), finds the
pairs whose two copies have finished, and interpolates each one (evaluation/evaluator.py).
With `watch=True` it keeps polling for pairs until all are done or `timeout_s` passes, so it
can run beside training. After each pair it refreshes DIR/summary.json. In an IMP experiment
it evaluates the instability experiment of every subnetwork (DIR/instability/*).
"""

import os
import time

from absl import logging
import gin

from lmc_tf import distribute
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.alignment import align as align_lib
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import bn_modes as bn_modes_lib
from lmc_tf.evaluation import evaluator
from lmc_tf.evaluation import pair_alignment
from lmc_tf.evaluation import tensorboard_views
from lmc_tf.experiments import common
from lmc_tf.reporting import figures
from lmc_tf.reporting import tables
from lmc_tf.training import checkpoints
from lmc_tf.training import runner

SPLITS = ("train", "test")


def _by_variant(all_metrics, summary):
  for variant, by_split in tables.aggregate(all_metrics).items():
    target = summary if variant == "standard" else summary.setdefault(variant, {})
    for split, by_k in by_split.items():
      target[split] = {str(k): stats for k, stats in by_k.items()}
  return summary


def _by_mode(metrics_by_key, align, summary):
  """The summary entries of one alignment: its paper's mode at the top, others under
  "bn_modes"."""
  default = list(metrics_by_key.get((align, layout.DEFAULT_BN_MODE), {}).values())
  _by_variant(default, summary)
  others = {mode: _by_variant(list(m.values()), {})
            for (a, mode), m in metrics_by_key.items()
            if a == align and mode != layout.DEFAULT_BN_MODE and m}
  if others:
    summary["bn_modes"] = others
  return summary


def summarize(metrics_by_key, manifest):
  """DIR/summary.json: per split and rewind step, the instability statistics (SPEC §6), of
  the paper's BN mode at the top and of any other under "bn_modes"; with copy B aligned, the
  same under "aligned" and the method. `metrics_by_key` is {(align, mode): {pair: metrics}}."""
  done = max((len(m) for m in metrics_by_key.values()), default=0)
  summary = _by_mode(metrics_by_key, None,
                     {"pairs_done": done, "pairs_total": len(manifest["pairs"])})
  aligned = {a: _by_mode(metrics_by_key, a, {}) for a in dict.fromkeys(
      a for a, _ in metrics_by_key if a is not None)}
  aligned = {a: v for a, v in aligned.items() if v}
  if aligned:
    summary["aligned"] = aligned
  return summary


def _ready(model_dir, pair):
  return all(layout.is_finished(layout.run_dir(model_dir, run)) for run in pair["copies"])


def _unfinish(checkpoint_path):
  """A run whose checkpoint cannot be read is not finished: its checkpoint and summary are
  set aside (renamed), so that rerunning its job trains it again from its newest intact
  checkpoint."""
  run_dir = os.path.dirname(os.path.dirname(checkpoint_path))
  aside = checkpoints.set_aside(checkpoint_path)
  if layout.is_finished(run_dir):
    files.rename(layout.summary(run_dir), aside + ".summary.json")
  logging.warning(f"set aside as {aside}.*; rerun the training job to train {run_dir} again")


def _curve_png(alphas, metrics, title):
  return figures.png_bytes(figures.pair_curve(alphas, metrics, title), dpi=100)


def _evaluate_sub_experiments(model_dir, strategy):
  """An IMP experiment: evaluate the instability experiment of each subnetwork."""
  subs = layout.sub_experiments(model_dir)
  if not subs:
    raise FileNotFoundError(f"{model_dir} is an IMP experiment without instability "
                            "experiments: set imp.instability_levels")
  return {sub.name: evaluate(sub.directory(model_dir), strategy) for sub in subs}


def _wait_for_manifest(model_dir, watch, deadline, poll_s):
  path = layout.manifest(model_dir)
  while not files.exists(path):
    if not watch or time.time() > deadline:
      raise FileNotFoundError(f"{path} not found: run the instability job in "
                              f"{model_dir} first (or pass evaluate.watch=True)")
    time.sleep(poll_s)
  return files.read_json(path)


def _saved_metrics(model_dir, pair, plan, key):
  """The pair's metrics for (align, BN mode) `key` if measured under `plan`, else None."""
  path = layout.metrics(model_dir, pair["id"], key[1], key[0])
  if not files.exists(path):
    return None
  try:
    saved = files.read_json(path)
  except files.UnreadableFileError as e:
    logging.warning(f"{e}; pair {pair['id']} is evaluated again")
    return None
  return saved if plan.matches(saved) else None


def _pair_line(results, splits):
  """'instability train 1.20 pp, test ...; reset: train 0.80 pp, ...'"""
  parts = []
  for (align, mode), m in results.items():
    values = ", ".join(f"{s} {m[s]['instability']:.2f} pp" for s in splits)
    name = "/".join(p for p in (align, None if mode == layout.DEFAULT_BN_MODE else mode) if p)
    parts.append(f"{name}: {values}" if name else f"instability {values}")
  return "; ".join(parts)


def _evaluate_ready_pairs(sweeper, bn, aligner, model_dir, manifest, metrics, plan, chief):
  """One pass over the manifest: every pair, alignment and BN mode not yet in `metrics`
  that can be, is. `metrics` is {(align, mode): {pair id: metrics}}.

  When a program holds the points of several curves (alphas_per_program at least twice the
  grid), the paper's curves of the pairs to do are first swept that many pairs at a time
  (evaluator.sweep_pairs); each pair is then finished as alone, its curve found complete."""
  todo = []
  for pair in manifest["pairs"]:
    missing = []
    for key in plan.keys:
      if pair["id"] in metrics[key]:
        continue
      saved = _saved_metrics(model_dir, pair, plan, key)
      if saved is not None:
        metrics[key][pair["id"]] = saved
      else:
        missing.append(key)
    if missing and _ready(model_dir, pair):
      todo.append((pair, missing))
  pairs_per_program = sweeper.alphas_per_program // len(plan.alphas)
  paper = (None, layout.DEFAULT_BN_MODE)
  together = [pair for pair, missing in todo if paper in missing]
  if pairs_per_program > 1 and len(together) > 1:
    for start in range(0, len(together), pairs_per_program):
      chunk = together[start:start + pairs_per_program]
      tic = time.time()
      try:
        evaluator.sweep_pairs(sweeper, model_dir, manifest, chunk, plan)
      except checkpoints.UnreadableCheckpointError:
        continue  # each of them is tried alone below, which reports it
      logging.info(f"[{start + len(chunk)}/{len(together)}] curves of {len(chunk)} pairs "
                   f"in one program: {', '.join(p['id'] for p in chunk)} "
                   f"({time.time() - tic:.1f} s)")
  for pair, missing in todo:
    tic = time.time()
    try:
      results = evaluator.evaluate_pair(sweeper, model_dir, manifest, pair, plan, bn,
                                        _curve_png, aligner, missing)
    except checkpoints.UnreadableCheckpointError as e:
      logging.warning(f"pair {pair['id']} not evaluated: {e}")
      if chief:
        _unfinish(e.path)
      continue
    for key, result in results.items():
      metrics[key][pair["id"]] = result
    done = min(len(m) for m in metrics.values())
    logging.info(f"[{done}/{len(manifest['pairs'])}] {pair['id']}: "
                 f"{_pair_line(results, plan.splits)} ({time.time() - tic:.1f} s)")
    if chief:
      files.write_json_atomic(layout.summary(model_dir), summarize(metrics, manifest))


@gin.configurable("evaluate", denylist=["model_dir", "strategy"])
def evaluate(model_dir, strategy, num_alphas=30, splits=SPLITS, eval_examples=None,
             batch_size=1000, watch=False, timeout_s=24 * 3600, poll_s=10,
             bn_modes=(layout.DEFAULT_BN_MODE,), bn_batches=50, bn_batch_size=None,
             bn_augment=True, bn_seed=0, alpha_range=evaluator.DEFAULT_RANGE,
             refine_peak=False, align=None, align_batches=10, alphas_per_program=1,
             factor_first_layer=False):
  """Interpolates every finished pair of DIR's instability experiment.

  Args:
    num_alphas: evenly spaced alpha in [0, 1], endpoints included (the paper: 30).
    splits: which sets to measure error and loss on.
    eval_examples: use only the first this many examples of each split (quick configs).
    batch_size: evaluation batch.
    watch: keep polling for pairs that are still training, until all are done.
    timeout_s: with watch, give up after this long without finishing.
    poll_s: with watch, seconds between looks at the run directories.
    bn_modes: the BN statistics each curve is measured with, one curve per mode
      (evaluation/bn_modes.py): 'interpolate' (the paper), 'reset', 'repair'.
    bn_batches: training batches 'reset' and 'repair' measure statistics on (the same at
      every alpha and for every pair).
    bn_batch_size: their batch; None: training.batch_size.
    bn_augment: augment those batches as in training (an un-augmented batch shifts the
      statistics of a network trained on augmented ones).
    bn_seed: the data order and augmentation seed of those batches.
    alpha_range: (lo, hi): also measure the curve beyond the endpoints, at the grid's
      spacing, e.g. (-0.2, 1.2); reported as the extended curve.
    refine_peak: bisect around each split's highest error until the peak is located to
      within 1/240 of the path; reported as the refined peak beside the instability.
    align: None (copy B as trained, the paper), 'weight_matching' or 'activation_matching'
      (Git Re-Basin: B's hidden units permuted to line up with A's before the sweep), or a
      tuple of these, e.g. (None, 'weight_matching') for both; every BN mode of each.
    align_batches: training batches (of bn_batch_size, un-augmented) that activation
      matching compares the copies' activations on.
    alphas_per_program: measure this many alpha of a curve at once, in one program (each
      batch read once, every interpolated network run on it); the same numbers, sooner. At
      twice a curve's points or more, the paper's curves (no alignment, BN statistics
      interpolated) of that many pairs share a program (not with factor_first_layer, whose
      program holds one pair's endpoints); capped at the points there are.
    factor_first_layer: with alphas_per_program > 1, compute a dense first layer (LeNet's)
      of a program's networks from the two endpoints' products, u K_A and u K_B, mixed per
      alpha (it is linear in the kernel): the same numbers to float rounding, not bit for
      bit (the endpoints exactly). Networks whose first layer with weights is not dense, and
      BN modes that rewrite it (REPAIR), are measured the exact way.
  """
  if not files.exists(layout.manifest(model_dir)) and files.exists(
      layout.imp_record(model_dir)):
    return _evaluate_sub_experiments(model_dir, strategy)
  deadline = time.time() + timeout_s
  plan = _plan(num_alphas, splits, bn_modes, alpha_range, refine_peak, align)
  if eval_examples is not None:
    errors.positive_int(eval_examples, "evaluate.eval_examples")
  errors.positive_int(batch_size, "evaluate.batch_size")
  errors.positive_int(alphas_per_program, "evaluate.alphas_per_program")
  errors.positive_number(timeout_s, "evaluate.timeout_s")
  errors.positive_number(poll_s, "evaluate.poll_s")
  errors.non_negative_int(bn_seed, "evaluate.bn_seed")
  for name, flag in (("watch", watch), ("bn_augment", bn_augment),
                     ("factor_first_layer", factor_first_layer)):
    if not isinstance(flag, bool):
      raise errors.ConfigError(f"evaluate.{name}={flag!r} must be True or False")
  manifest = _wait_for_manifest(model_dir, watch, deadline, poll_s)
  data = data_base.get_dataset()
  # No program holds more networks than the pairs' curves have grid points. A factored
  # first layer shares one pair's endpoints, so it keeps one pair per program.
  pairs = 1 if factor_first_layer else max(1, len(manifest["pairs"]))
  per_program = min(alphas_per_program, len(plan.alphas) * pairs)
  sweeper = evaluator.Sweeper(strategy, data, plan.splits, eval_examples, batch_size,
                              per_program, factor_first_layer)
  if bn_batch_size is None and plan.keys != [(None, layout.DEFAULT_BN_MODE)]:
    bn_batch_size = runner.TrainingHParams().batch_size
  bn = aligner = None
  if plan.modes != (layout.DEFAULT_BN_MODE,):
    bn = bn_modes_lib.BNModes(strategy, sweeper.model, data, plan.modes, bn_batches,
                              bn_batch_size, bn_seed, bn_augment)
  if plan.aligns != (None,):
    errors.positive_int(align_batches, "evaluate.align_batches")
    aligner = pair_alignment.Aligner(sweeper.model, data, align_batches, bn_batch_size,
                                     bn_seed)
  chief = distribute.is_chief(strategy)
  if chief:
    common.write_operative_config(model_dir, layout.EVALUATE_OPERATIVE_CONFIG)
  metrics = {key: {} for key in plan.keys}
  started = time.time()
  while True:
    _evaluate_ready_pairs(sweeper, bn, aligner, model_dir, manifest, metrics, plan, chief)
    waiting = len(manifest["pairs"]) - min(len(m) for m in metrics.values())
    if not waiting or not watch:
      break
    if time.time() > deadline:
      logging.warning(f"evaluate: timed out after {timeout_s} s with {waiting} pair(s) unfinished")
      break
    time.sleep(poll_s)
    manifest = files.read_json(layout.manifest(model_dir))  # the experiment may have grown
  done = min(len(m) for m in metrics.values())
  if done and chief:
    files.write_json_atomic(layout.summary(model_dir), summarize(metrics, manifest))
    tensorboard_views.write(model_dir, manifest, metrics, plan.splits)
  logging.info(f"Evaluated {done}/{len(manifest['pairs'])} pair(s) in "
               f"{time.time() - started:.0f} s; {len(manifest['pairs']) - done} not ready.")
  return summarize(metrics, manifest) if done else {"pairs_done": 0}


def _aligns(align):
  aligns = tuple(align) if isinstance(align, (tuple, list)) else (align,)
  if not aligns or len(set(aligns)) != len(aligns):
    raise errors.ConfigError(f"evaluate.align={align!r}: give None, a method or a tuple of "
                             "them, each once")
  for a in aligns:
    align_lib.check_method(a)
  return aligns


def _plan(num_alphas, splits, bn_modes, alpha_range, refine_peak, align=None):
  """The evaluate.* bindings checked, as an evaluator.Plan."""
  splits = (splits,) if isinstance(splits, str) else tuple(splits)
  unknown = [s for s in splits if s not in SPLITS]
  if unknown:
    raise errors.ConfigError(f"evaluate.splits: unknown split(s) {unknown}; use 'train' "
                             "and 'test'")
  errors.positive_int(num_alphas, "evaluate.num_alphas")
  if num_alphas < 2:
    raise errors.ConfigError(f"evaluate.num_alphas={num_alphas}: need at least 2 (the "
                             "endpoints)")
  try:
    lo, hi = (float(a) for a in alpha_range)
  except (TypeError, ValueError):
    lo = hi = float("nan")
  if not lo <= 0.0 or not hi >= 1.0:
    raise errors.ConfigError(f"evaluate.alpha_range={alpha_range!r} must be (lo, hi) with "
                             "lo <= 0 and hi >= 1, e.g. (-0.2, 1.2)")
  if not isinstance(refine_peak, bool):
    raise errors.ConfigError(f"evaluate.refine_peak={refine_peak!r} must be True or False")
  return evaluator.Plan(alphas=tuple(float(a) for a in barrier.alphas(num_alphas)),
                        splits=splits, modes=bn_modes_lib.check_modes(bn_modes),
                        alpha_range=(lo, hi), refine_peak=refine_peak, aligns=_aligns(align))
