"""Interpolating one pair of copies: the alpha sweep, its curve, barrier and distances.

For a pair whose two copies have finished, every variable (BatchNorm statistics included) is
interpolated linearly at evenly spaced alpha in [0, 1], and error and loss are measured on
the train and test sets. Each alpha point is written atomically as soon as it is measured
(layout.curve), so a killed evaluator restarts where it stopped; the pair's metrics.json
(instability, loss barrier, distances) is written last. The `evaluate` job
(experiments/evaluate.py) picks the pairs.
"""

import os

import tensorflow as tf

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import distances
from lmc_tf.evaluation import interpolate
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.training import evaluate as evaluate_lib
from lmc_tf.training import schedules


class Sweeper:
  """One scratch model and one evaluator per split, reused for every pair and alpha."""

  def __init__(self, strategy, data, splits, eval_examples, batch_size):
    with strategy.scope():
      self.model = registry.build_model(init_seed=0, input_shape=data.image_shape,
                                        num_classes=data.num_classes)
    self.evaluators = {s: evaluate_lib.SplitEvaluator(strategy, self.model, data, s,
                                                      batch_size, eval_examples)
                       for s in splits}

  def load(self, checkpoint_path):
    return interpolate.read_variables(self.model, checkpoint_path)

  def measure(self, weights):
    interpolate.assign(self.model, weights)
    return {split: {k: r[k] for k in ("error", "loss")}
            for split, r in ((s, e()) for s, e in self.evaluators.items())}

  def sweep(self, weights_a, weights_b, alphas, path, on_point=None):
    """Error and loss at every alpha; resumes from the points already in `path`."""
    alphas = [float(a) for a in alphas]
    done = {}
    if files.exists(path):
      try:
        saved = files.read_json(path)
      except files.UnreadableFileError as e:
        print(f"warning: {e}; its alpha points are measured again", flush=True)
        saved = {}
      if saved.get("alphas") == alphas:
        done = saved["points"]
        print(f"{os.path.basename(os.path.dirname(path))}: {len(done)}/{len(alphas)} alpha "
              "points already measured", flush=True)
    for i, alpha in enumerate(alphas):
      if str(i) in done:
        continue
      done[str(i)] = self.measure(interpolate.interpolate(weights_a, weights_b, alpha))
      files.write_json_atomic(path, {"alphas": alphas, "points": done})
      if on_point:
        on_point(i, done[str(i)])
    return [done[str(i)] for i in range(len(alphas))]


def _curve_metrics(points, splits):
  return {s: barrier.curve_metrics([p[s]["error"] for p in points],
                                   [p[s]["loss"] for p in points]) for s in splits}


def _checkpoint(model_dir, run, step):
  return layout.checkpoint(layout.run_dir(model_dir, run), step)


def evaluate_pair(sweeper, model_dir, manifest, pair, alphas, splits, curve_png=None):
  """Sweeps one pair (and its epochs, for Appendix C); writes and returns its metrics.

  curve_png(alphas, {split: metrics}, title) -> PNG bytes, if given, draws the pair's curve
  for TensorBoard's image tab.
  """
  pair_id = pair["id"]
  writer = tf.summary.create_file_writer(layout.events(layout.pair_dir(model_dir, pair_id)))
  run_a, run_b = pair["copies"]
  k, end = pair["start_step"], pair["end_step"]

  def log_point(i, point):
    with writer.as_default(step=i):
      for split, values in point.items():
        tf.summary.scalar(f"interpolation/{split}_error", values["error"])
        tf.summary.scalar(f"interpolation/{split}_loss", values["loss"])

  final_a = sweeper.load(_checkpoint(model_dir, run_a, end))
  final_b = sweeper.load(_checkpoint(model_dir, run_b, end))
  points = sweeper.sweep(final_a, final_b, alphas, layout.curve(model_dir, pair_id), log_point)
  metrics = {key: pair[key] for key in ("id", "variant", "rewind_step", "init_seed", "pair")}
  metrics["alphas"] = [float(a) for a in alphas]
  metrics.update(_curve_metrics(points, splits))
  metrics["distances"] = pair_distances(sweeper, model_dir, manifest, pair, final_a, final_b)

  if manifest["every_epoch"]:
    metrics["per_epoch"] = []
    spe = manifest["steps_per_epoch"]
    for step in schedules.epoch_steps(k, end, spe):
      if step == end:
        epoch_points = points
      else:
        epoch_points = sweeper.sweep(
            sweeper.load(_checkpoint(model_dir, run_a, step)),
            sweeper.load(_checkpoint(model_dir, run_b, step)), alphas,
            layout.curve(model_dir, pair_id, step))
      per = _curve_metrics(epoch_points, splits)
      metrics["per_epoch"].append({"epoch": step // spe, "step": step, **{
          s: {key: v for key, v in m.items() if key not in ("errors", "losses")}
          for s, m in per.items()}})

  with writer.as_default(step=0):
    if curve_png is not None:
      png = curve_png(metrics["alphas"], {s: metrics[s] for s in splits}, pair_id)
      tf.summary.image("interpolation_curve", tf.image.decode_png(png)[None])
    for split in splits:
      tf.summary.scalar(f"instability/{split}", metrics[split]["instability"])
  writer.flush()
  files.write_json_atomic(layout.metrics(model_dir, pair_id), metrics)
  return metrics


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
