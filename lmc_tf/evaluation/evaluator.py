"""Interpolating one pair of copies: the alpha sweep, its curve, barrier and distances.

For a pair whose two copies have finished, every variable (BatchNorm statistics included) is
interpolated linearly at evenly spaced alpha in [0, 1], and error and loss are measured on
the train and test sets. Each alpha point is written atomically as soon as it is measured
(layout.curve), so a killed evaluator restarts where it stopped; the pair's metrics.json
(instability, loss barrier, distances) is written last. The `evaluate` job
(experiments/evaluate.py) picks the pairs.

A `Plan` can ask for more than the paper's curve, each under its own name beside it:
- BN modes (evaluation/bn_modes.py): the curve again with BN statistics reset or REPAIRed at
  every alpha, in its own curve_<mode>.json and metrics_<mode>.json;
- `alpha_range`: the curve extended beyond the endpoints at the grid's spacing;
- `refine_peak`: bisection around the highest error of each split until the peak is located
  to within 1/240 of the path.
The instability of record is always the paper's: the max over the grid on [0, 1] minus the
mean of the endpoints.
"""

import dataclasses
import time
from typing import Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import curve as curve_lib
from lmc_tf.evaluation import distances
from lmc_tf.evaluation import first_layer as first_layer_lib
from lmc_tf.evaluation import interpolate
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.training import evaluate as evaluate_lib
from lmc_tf.training import schedules
from lmc_tf.training import summaries

PEAK_RESOLUTION = 1.0 / 240.0  # refine_peak locates the peak to within this much of alpha
DEFAULT_RANGE = (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to measure on every pair: the grid, the splits, the BN modes and the extras."""
  alphas: Tuple[float, ...]
  splits: Tuple[str, ...]
  modes: Tuple[str, ...] = (layout.DEFAULT_BN_MODE,)
  alpha_range: Tuple[float, float] = DEFAULT_RANGE
  refine_peak: bool = False
  aligns: Tuple[Optional[str], ...] = (None,)  # None: copy B as trained

  @property
  def keys(self):
    """(align, BN mode) of every curve of a pair, the paper's first."""
    return [(a, m) for a in self.aligns for m in self.modes]

  @property
  def extended_alphas(self):
    """The grid continued at its spacing over alpha_range (the grid itself included)."""
    lo, hi = self.alpha_range
    spacing = self.alphas[1] - self.alphas[0]
    below, above = [], []
    j = 1
    while -j * spacing >= lo - 1e-9:
      below.append(-j * spacing)
      j += 1
    j = 1
    while 1.0 + j * spacing <= hi + 1e-9:
      above.append(1.0 + j * spacing)
      j += 1
    return sorted(below) + list(self.alphas) + above

  def settings(self):
    """The plan's entries of a metrics file beyond the paper's (none with the defaults), so
    that a saved file can be told to have been measured under this plan."""
    out = {}
    if tuple(self.alpha_range) != DEFAULT_RANGE:
      out["alpha_range"] = [float(a) for a in self.alpha_range]
    if self.refine_peak:
      out["refine_peak"] = True
    return out

  def matches(self, saved):
    keys = ("alpha_range", "refine_peak")
    return (saved.get("alphas") == [float(a) for a in self.alphas]
            and {k: saved[k] for k in keys if k in saved} == self.settings())


class Sweeper:
  """One scratch model and one evaluator per split, reused for every pair and alpha.

  With `alphas_per_program` M > 1 it holds M - 1 more scratch models, and a curve's grid
  points are measured M at a time: M interpolated networks, each batch read once and every
  network run on it in one program (SplitEvaluator.evaluate_all). Each network's error and
  loss are what it gives alone. With `factor_first_layer` as well, the first layer of the M
  networks is computed from the two endpoints' products where that is exact in real
  arithmetic (evaluation/first_layer.py): the same numbers to float rounding, sooner.
  """

  def __init__(self, strategy, data, splits, eval_examples, batch_size, alphas_per_program=1,
               factor_first_layer=False):
    build = lambda: registry.build_model(  # noqa: E731
        init_seed=0, input_shape=data.image_shape, num_classes=data.num_classes)
    with strategy.scope():
      self.model = build()
      self.extra_models = [build() for _ in range(alphas_per_program - 1)]
      self.first_layer = None
      if factor_first_layer and alphas_per_program > 1:
        if first_layer_lib.first_dense(self.model) is None:
          logging.warning(f"evaluate.factor_first_layer: {self.model.name}'s first layer "
                          "with weights is not a dense layer on the input; every alpha is "
                          "measured the exact way")
        else:
          self.first_layer = first_layer_lib.SharedFirstLayer(
              [self.model, *self.extra_models])
          logging.info(f"evaluate: {alphas_per_program} alphas per program, their layer "
                       f"{self.first_layer.name!r} computed from the endpoints' two "
                       "products (factor_first_layer)")
      if alphas_per_program > 1 and self.first_layer is None:
        logging.info(f"evaluate: {alphas_per_program} alphas per program")
    self.alphas_per_program = alphas_per_program
    outputs = self.first_layer.outputs if self.first_layer is not None else None
    self.evaluators = {s: evaluate_lib.SplitEvaluator(strategy, self.model, data, s,
                                                      batch_size, eval_examples,
                                                      models=self.extra_models,
                                                      outputs=outputs)
                       for s in splits}

  def load(self, checkpoint_path):
    return interpolate.read_variables(self.model, checkpoint_path)

  def _valid_statistics(self, weights):
    """Beyond the endpoints an extrapolated BN variance can fall below zero (and BN's output
    to NaN): it is held at zero. Inside [0, 1] interpolation keeps it positive."""
    return [np.maximum(w, 0.0) if v.path.endswith("moving_variance") else w
            for v, w in zip(self.model.variables, weights)]

  def measure(self, weights):
    interpolate.assign(self.model, weights)
    return {split: {k: r[k] for k in ("error", "loss")}
            for split, r in ((s, e()) for s, e in self.evaluators.items())}

  def measure_many(self, weights_list, endpoints=None):
    """measure() of each of up to alphas_per_program networks, in one pass per split.

    endpoints: (weights_a, weights_b, alphas, mixed) if the networks are points of the path
    from A to B (`mixed`: the plain interpolation at each alpha, before any BN mode); their
    first layer is then factored where it can be (factor_first_layer).
    """
    models = [self.model, *self.extra_models][:len(weights_list)]
    for model, weights in zip(models, weights_list):
      interpolate.assign(model, weights)
    shared = False
    if self.first_layer is not None and endpoints is not None:
      weights_a, weights_b, alphas, mixed = endpoints
      shared = self.first_layer.applies(weights_a, weights_b, mixed, weights_list)
      if shared:
        self.first_layer.load(weights_a, weights_b, alphas)
    by_split = {s: e.evaluate_all(len(models), shared) for s, e in self.evaluators.items()}
    return [{split: {k: results[i][k] for k in ("error", "loss")}
             for split, results in by_split.items()} for i in range(len(models))]

  def mixed(self, weights_a, weights_b, alpha):
    """The plain interpolation at `alpha` (BN variances held at zero beyond the ends)."""
    weights = interpolate.interpolate(weights_a, weights_b, alpha)
    return weights if 0.0 <= alpha <= 1.0 else self._valid_statistics(weights)

  def curve(self, weights_a, weights_b, alphas, path, on_point=None, transform=None):
    """The `Curve` between two networks; `transform(alpha, weights)` gives the variables a
    point is measured with (a BN mode), the interpolation itself if None."""
    def mixed_at(alpha):
      return self.mixed(weights_a, weights_b, alpha)

    # A BN mode's transform uses self.model as its scratch: done before any is assigned.
    def weights_at(alpha):
      weights = mixed_at(alpha)
      return weights if transform is None else transform(alpha, weights)

    def measure_many(alphas):
      mixed = [mixed_at(a) for a in alphas]
      points = mixed if transform is None else [transform(a, w) for a, w in zip(alphas, mixed)]
      return self.measure_many(points, (weights_a, weights_b, alphas, mixed))
    return curve_lib.Curve(path, alphas, lambda alpha: self.measure(weights_at(alpha)),
                           on_point, measure_many, self.alphas_per_program)

  def sweep(self, weights_a, weights_b, alphas, path, on_point=None, transform=None):
    """Error and loss at every alpha; resumes from the points already in `path`."""
    return self.curve(weights_a, weights_b, alphas, path, on_point, transform).on_grid()


def refine_peak(curve, split):
  """(alpha, error) of the highest error of `split` on [0, 1], bisected from the grid's
  highest point until it is located to within PEAK_RESOLUTION."""
  grid = curve.grid
  error = lambda a: curve.at(a)[split]["error"]  # noqa: E731
  best = max(grid, key=error)
  step = grid[1] - grid[0]
  while step > PEAK_RESOLUTION:
    step /= 2.0
    candidates = [best] + [a for a in (best - step, best + step) if 0.0 <= a <= 1.0]
    best = max(candidates, key=error)
  return best, error(best)


def _curve_metrics(points, splits):
  return {s: barrier.curve_metrics([p[s]["error"] for p in points],
                                   [p[s]["loss"] for p in points]) for s in splits}


def _checkpoint(model_dir, run, step):
  return layout.checkpoint(layout.run_dir(model_dir, run), step)


CURVE_DESCRIPTION = ("{split} {what} of the network (1 - alpha) W_A + alpha W_B. Step: 1000 "
                     "alpha (0: copy A, 1000: copy B); set smoothing to 0 to see the barrier.")
INSTABILITY_DESCRIPTION = ("Instability on {split} (percentage points): the highest error on "
                           "the path minus the mean of the endpoints' errors. One point per "
                           "pair; step is the rewind step k.")


def pair_hparams(pair):
  """A pair's HParams: the paper's coordinates of its interpolation."""
  values = {"role": "pair", "variant": pair["variant"], "rewind_step": pair["rewind_step"],
            "init_seed": pair["init_seed"], "pair": pair["pair"]}
  if "init_seeds" in pair:
    values["init_seed_b"] = pair["init_seeds"][1]
  return values


def _tag(prefix, key):
  return "_".join([prefix] + layout.key_parts(*key))


def _name(key):
  align, mode = key
  return ", ".join(([f"aligned by {align}"] if align else [])
                   + [f"BN statistics {mode}"])


def _point_logger(writer, plan, key):
  """on_point for a curve of (align, BN mode) `key`: its point i to TensorBoard."""
  def log_point(i, point):
    # Step: 1000 alpha (TensorBoard steps are integers): 0 is copy A, 1000 copy B.
    with writer.as_default(step=summaries.alpha_step(plan.alphas[i])):
      for split, values in point.items():
        for what in ("error", "loss"):
          tf.summary.scalar(f"{_tag('interpolation', key)}/{split}_{what}", values[what],
                            description=CURVE_DESCRIPTION.format(what=what, split=split))
  return log_point


def _pair_writer(model_dir, manifest, pair):
  root, prefix = layout.tensorboard_home(model_dir)
  name = prefix + layout.tensorboard_pair_name(pair, layout.rewind_width(manifest))
  return name, tf.summary.create_file_writer(files.join(root, name))


def sweep_pairs(sweeper, model_dir, manifest, pairs, plan):
  """The paper's curve (unaligned, BN statistics interpolated) of each of `pairs`, their
  missing grid points measured together, up to `sweeper.alphas_per_program` networks to a
  program: when a curve has fewer points than a program holds, the points of several pairs
  share its passes over the data. Each network is measured as alone (bit for bit; the
  first layer is not factored across pairs), and each curve is written as `evaluate_pair`
  writes it, which then finds it complete. A kill loses at most the program in flight."""
  key = (None, layout.DEFAULT_BN_MODE)
  curves, finals, writers = [], [], []
  for pair in pairs:
    run_a, run_b = pair["copies"]
    finals.append((sweeper.load(_checkpoint(model_dir, run_a, pair["end_step"])),
                   sweeper.load(_checkpoint(model_dir, run_b, pair["end_step"]))))
    _, writer = _pair_writer(model_dir, manifest, pair)
    writers.append(writer)
    curves.append(curve_lib.Curve(layout.curve(model_dir, pair["id"]), plan.alphas,
                                  measure=None, on_point=_point_logger(writer, plan, key)))
  todo = [(c, i) for c, curve in enumerate(curves) for i in curve.missing()]
  for start in range(0, len(todo), sweeper.alphas_per_program):
    chunk = todo[start:start + sweeper.alphas_per_program]
    points = [sweeper.mixed(*finals[c], curves[c].grid[i]) for c, i in chunk]
    measured = {}
    for (c, i), point in zip(chunk, sweeper.measure_many(points)):
      measured.setdefault(c, {})[i] = point
    for c, new in measured.items():
      curves[c].add(new)
  for writer in writers:
    writer.flush()


def evaluate_pair(sweeper, model_dir, manifest, pair, plan, bn=None, curve_png=None,
                  aligner=None, keys=None):
  """Sweeps one pair (and its epochs, for Appendix C) for every (align, BN mode) of `keys`
  (all of the plan's by default); writes each one's metrics and returns {key: metrics}.

  bn: a bn_modes.BNModes, needed for any mode but the paper's; aligner: a
  pair_alignment.Aligner, needed to align. curve_png(alphas, {split: metrics}, title) ->
  PNG bytes, if given, draws the pair's curve for TensorBoard's image tab.
  """
  keys = list(keys or plan.keys)
  pair_id = pair["id"]
  name, writer = _pair_writer(model_dir, manifest, pair)
  summaries.write_hparams(writer, pair_hparams(pair), name)
  run_a, run_b = pair["copies"]
  final_a = sweeper.load(_checkpoint(model_dir, run_a, pair["end_step"]))
  final_b = sweeper.load(_checkpoint(model_dir, run_b, pair["end_step"]))
  results = {}
  for align in dict.fromkeys(a for a, _ in keys):
    record = None
    b = final_b
    if align is not None:
      b, record = aligner.aligned(model_dir, pair_id, align, final_a, final_b)
    apart = pair_distances(sweeper, model_dir, manifest, pair, final_a, b)
    if bn is not None:
      bn.begin_pair(final_a, b)
    for key in [k for k in keys if k[0] == align]:
      tic = time.time()
      metrics = _evaluate_mode(sweeper, model_dir, manifest, pair, plan, bn, key,
                               (final_a, b), apart, writer, curve_png)
      if record is not None:
        metrics["alignment"] = {k: v for k, v in record.items() if k != "perms"}
      files.write_json_atomic(layout.metrics(model_dir, pair_id, key[1], align), metrics)
      results[key] = metrics
      if len(plan.keys) > 1:
        line = ", ".join(f"{s} {metrics[s]['instability']:.2f} pp" for s in plan.splits)
        logging.info(f"{pair_id}, {_name(key)}: instability {line} ({time.time() - tic:.0f} s)")
  writer.flush()
  return results


def _evaluate_mode(sweeper, model_dir, manifest, pair, plan, bn, key, finals, apart,
                   writer, curve_png):
  """The metrics of one pair for one (align, BN mode); `apart` are the pair's distances."""
  pair_id = pair["id"]
  splits = plan.splits
  align, mode = key
  transform = None if mode == layout.DEFAULT_BN_MODE else (
      lambda alpha, weights: bn.weights(mode, alpha, weights))

  curve = sweeper.curve(*finals, plan.alphas, layout.curve(model_dir, pair_id, None, mode, align),
                        _point_logger(writer, plan, key), transform)
  points = curve.on_grid()
  metrics = {key: pair[key] for key in ("id", "variant", "rewind_step", "init_seed", "pair")}
  if mode != layout.DEFAULT_BN_MODE:
    metrics["bn_mode"] = mode
  if align is not None:
    metrics["align"] = align
  metrics["alphas"] = [float(a) for a in plan.alphas]
  metrics.update(plan.settings())
  metrics.update(_curve_metrics(points, splits))
  if tuple(plan.alpha_range) != DEFAULT_RANGE:
    extended = plan.extended_alphas
    extended_points = [curve.at(a) for a in extended]
    metrics["extended_alphas"] = [float(a) for a in extended]
    for split in splits:
      metrics[split]["extended_errors"] = [p[split]["error"] for p in extended_points]
      metrics[split]["extended_losses"] = [p[split]["loss"] for p in extended_points]
  if plan.refine_peak:
    for split in splits:
      alpha, error = refine_peak(curve, split)
      metrics[split].update(peak_alpha=alpha, peak_error=error, refined_instability=(
          error - metrics[split]["endpoint_error_mean"]))
  metrics["distances"] = apart

  if manifest["every_epoch"] and align is None:  # Appendix C: the copies as trained
    metrics["per_epoch"] = _per_epoch(sweeper, model_dir, manifest, pair, plan, bn, mode,
                                      points)
    if bn is not None:
      bn.begin_pair(*finals)  # the per-epoch sweeps measured other endpoints

  with writer.as_default(step=0):
    if curve_png is not None:
      title = pair_id if key == (None, layout.DEFAULT_BN_MODE) else f"{pair_id} ({_name(key)})"
      png = curve_png(metrics["alphas"], {s: metrics[s] for s in splits}, title)
      tf.summary.image(_tag("interpolation_curve", key), tf.image.decode_png(png)[None])
    for split in splits:  # at step k: the pairs' dots spread over the rewind steps
      tf.summary.scalar(f"{_tag('instability', key)}/{split}", metrics[split]["instability"],
                        step=pair["start_step"],
                        description=INSTABILITY_DESCRIPTION.format(split=split))
  return metrics


def _per_epoch(sweeper, model_dir, manifest, pair, plan, bn, mode, final_points):
  """Appendix C: the curve's metrics at the end of every epoch of the copies' training."""
  run_a, run_b = pair["copies"]
  k, end = pair["start_step"], pair["end_step"]
  spe = manifest["steps_per_epoch"]
  out = []
  for step in schedules.epoch_steps(k, end, spe):
    if step == end:
      points = final_points
    else:
      weights_a = sweeper.load(_checkpoint(model_dir, run_a, step))
      weights_b = sweeper.load(_checkpoint(model_dir, run_b, step))
      transform = None
      if mode != layout.DEFAULT_BN_MODE:
        bn.begin_pair(weights_a, weights_b)
        transform = lambda alpha, weights: bn.weights(mode, alpha, weights)  # noqa: E731
      points = sweeper.sweep(weights_a, weights_b, plan.alphas,
                             layout.curve(model_dir, pair["id"], step, mode), None, transform)
    per = _curve_metrics(points, plan.splits)
    out.append({"epoch": step // spe, "step": step, **{
        s: {key: v for key, v in m.items() if key not in ("errors", "losses")}
        for s, m in per.items()}})
  return out


def pair_distances(sweeper, model_dir, manifest, pair, final_a, final_b):
  """Appendix B and G: how far apart the copies are, and how far they travelled."""
  model = sweeper.model
  k = pair["start_step"]
  parent = manifest["parents"][str(pair["init_seed"])]["run"]
  masked = {}
  for name, weights in (("a", final_a), ("b", final_b)):
    interpolate.assign(model, weights)
    masked[name] = distances.masked_trainable(model)
  # W_k as the copies received it (with their mask), and W_0 under the same mask.
  sweeper.load(_checkpoint(model_dir, pair["copies"][0], k))
  masks = layers.get_masks(model)
  masked["k"] = distances.masked_trainable(model)
  sweeper.load(_checkpoint(model_dir, parent, 0))
  layers.set_masks(model, masks)
  masked["init"] = distances.masked_trainable(model)
  cosine, angle = distances.cosine(masked["a"], masked["b"])
  result = {"l2": distances.l2(masked["a"], masked["b"]), "cosine": cosine,
            "angle_deg": angle,
            "l2_init_to_k": distances.l2(masked["init"], masked["k"]),
            "l2_k_to_T": [distances.l2(masked["k"], masked[c]) for c in "ab"]}
  split = "test" if "test" in sweeper.evaluators else next(iter(sweeper.evaluators))
  outputs = []
  for weights in (final_a, final_b):
    interpolate.assign(model, weights)
    outputs.append(sweeper.evaluators[split].per_example())
  result["disagreements"] = distances.disagreements(outputs[0][1], outputs[1][1])
  result["loss_l2"] = distances.loss_l2(outputs[0][0], outputs[1][0])
  result["per_example_split"] = split
  return result
