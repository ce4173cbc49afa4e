"""The `evaluate` job: a separate process that sweeps alpha over finished pairs of copies.

    python -m lmc_tf.main --gin_file=X.gin --model_dir=DIR --job=evaluate

It reads DIR/instability.json (the instability job writes it before training), finds the
pairs whose two copies have finished, and for each one linearly interpolates every variable
(BatchNorm statistics included) at `num_alphas` evenly spaced alpha in [0, 1], measuring error
and loss on the train and test sets. With `watch=True` it keeps polling for pairs until all
are done or `timeout_s` passes, so it can run beside training.

Each alpha point is written atomically as soon as it is measured (pairs/<id>/curve.json), so
a killed evaluator restarts where it stopped. Per pair it then writes metrics.json
(instability, loss barrier, distances) and refreshes DIR/summary.json.
"""

import io
import os
import time

import gin
import numpy as np
import tensorflow as tf

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import distances
from lmc_tf.evaluation import interpolate
from lmc_tf.experiments import imp
from lmc_tf.experiments import instability
from lmc_tf.experiments import jobs
from lmc_tf.experiments import rundirs
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.reporting import tables
from lmc_tf.training import evaluate as evaluate_lib

SUMMARY = "summary.json"
PAIRS_DIR = "pairs"
METRICS = "metrics.json"


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
    if tf.io.gfile.exists(path):
      saved = rundirs.read_json(path)
      if saved.get("alphas") == alphas:
        done = saved["points"]
        print(f"{os.path.basename(os.path.dirname(path))}: {len(done)}/{len(alphas)} alpha "
              "points already measured", flush=True)
    for i, alpha in enumerate(alphas):
      if str(i) in done:
        continue
      done[str(i)] = self.measure(interpolate.interpolate(weights_a, weights_b, alpha))
      rundirs.write_json_atomic(path, {"alphas": alphas, "points": done})
      if on_point:
        on_point(i, done[str(i)])
    return [done[str(i)] for i in range(len(alphas))]


def _curve_metrics(points, splits):
  return {s: barrier.curve_metrics([p[s]["error"] for p in points],
                                   [p[s]["loss"] for p in points]) for s in splits}


def _final_checkpoint(model_dir, run, step):
  return os.path.join(model_dir, run, "checkpoints", f"ckpt-{step}")


def _curve_png(alphas, metrics, title):
  """One pair's error along the path, for TensorBoard's image tab."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top  (slow import)
  fig = figure.Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  colors = {"train": "tab:purple", "test": "tab:red"}
  for split, m in metrics.items():
    ax.plot(alphas, m["errors"], color=colors.get(split),
            label=f"{split} (instability {m['instability']:.2f} pp)")
  ax.set_xlabel("interpolation α")
  ax.set_ylabel("error (%)")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  return buf.getvalue()


def evaluate_pair(sweeper, model_dir, manifest, pair, alphas, splits):
  """Sweeps one pair (and its epochs, for Appendix C); writes and returns its metrics."""
  pair_dir = os.path.join(model_dir, PAIRS_DIR, pair["id"])
  writer = tf.summary.create_file_writer(os.path.join(pair_dir, "events"))
  run_a, run_b = pair["copies"]
  k, end = pair["start_step"], pair["end_step"]

  def log_point(i, point):
    with writer.as_default(step=i):
      for split, values in point.items():
        tf.summary.scalar(f"interpolation/{split}_error", values["error"])
        tf.summary.scalar(f"interpolation/{split}_loss", values["loss"])

  final_a = sweeper.load(_final_checkpoint(model_dir, run_a, end))
  final_b = sweeper.load(_final_checkpoint(model_dir, run_b, end))
  points = sweeper.sweep(final_a, final_b, alphas, os.path.join(pair_dir, "curve.json"),
                         log_point)
  metrics = {key: pair[key] for key in ("id", "variant", "rewind_step", "init_seed", "pair")}
  metrics["alphas"] = [float(a) for a in alphas]
  metrics.update(_curve_metrics(points, splits))
  metrics["distances"] = pair_distances(sweeper, model_dir, manifest, pair, final_a, final_b)

  if manifest["every_epoch"]:
    metrics["per_epoch"] = []
    spe = manifest["steps_per_epoch"]
    for step in instability.epoch_steps(k, end, spe):
      if step == end:
        epoch_points = points
      else:
        epoch_points = sweeper.sweep(
            sweeper.load(_final_checkpoint(model_dir, run_a, step)),
            sweeper.load(_final_checkpoint(model_dir, run_b, step)), alphas,
            os.path.join(pair_dir, f"curve_step{step}.json"))
      per = _curve_metrics(epoch_points, splits)
      metrics["per_epoch"].append({"epoch": step // spe, "step": step, **{
          s: {key: v for key, v in m.items() if key not in ("errors", "losses")}
          for s, m in per.items()}})

  png = _curve_png(metrics["alphas"], {s: metrics[s] for s in splits}, pair["id"])
  with writer.as_default(step=0):
    tf.summary.image("interpolation_curve", tf.image.decode_png(png)[None])
    for split in splits:
      tf.summary.scalar(f"instability/{split}", metrics[split]["instability"])
  writer.flush()
  rundirs.write_json_atomic(os.path.join(pair_dir, METRICS), metrics)
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
  sweeper.load(_final_checkpoint(model_dir, pair["copies"][0], k))
  masks = layers.get_masks(model)
  masked["k"] = distances.masked_trainable(model)
  sweeper.load(_final_checkpoint(model_dir, parent, 0))
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


def summarize(all_metrics, manifest):
  """DIR/summary.json: per split and rewind step, the instability statistics (SPEC §6)."""
  table = tables.aggregate(all_metrics)
  summary = {"pairs_done": len(all_metrics), "pairs_total": len(manifest["pairs"])}
  for variant, by_split in table.items():
    target = summary if variant == "standard" else summary.setdefault(variant, {})
    for split, by_k in by_split.items():
      target[split] = {str(k): stats for k, stats in by_k.items()}
  return summary


def _ready(model_dir, pair):
  return all(rundirs.is_finished(os.path.join(model_dir, run)) for run in pair["copies"])


@jobs.register("evaluate")
@gin.configurable("evaluate", denylist=["model_dir", "strategy"])
def evaluate(model_dir, strategy, num_alphas=30, splits=("train", "test"),
             eval_examples=None, batch_size=1000, watch=False, timeout_s=24 * 3600,
             poll_s=10):
  """Interpolates every finished pair of DIR's instability experiment.

  Args:
    num_alphas: evenly spaced alpha in [0, 1], endpoints included (the paper: 30).
    splits: which sets to measure error and loss on.
    eval_examples: use only the first this many examples of each split (quick configs).
    batch_size: evaluation batch.
    watch: keep polling for pairs that are still training, until all are done.
    timeout_s: with watch, give up after this long without finishing.
    poll_s: with watch, seconds between looks at the run directories.
  """
  manifest_path = os.path.join(model_dir, instability.MANIFEST)
  if not tf.io.gfile.exists(manifest_path) and tf.io.gfile.exists(
      os.path.join(model_dir, imp.RECORD)):
    # An IMP experiment: evaluate the instability experiment of each subnetwork.
    names = imp.sub_experiments(model_dir)
    if not names:
      raise FileNotFoundError(f"{model_dir} is an IMP experiment without instability "
                              "experiments: set imp.instability_levels")
    return {name: evaluate(os.path.join(model_dir, imp.INSTABILITY_DIR, name), strategy)
            for name in names}
  deadline = time.time() + timeout_s
  while not tf.io.gfile.exists(manifest_path):
    if not watch or time.time() > deadline:
      raise FileNotFoundError(f"{manifest_path} not found: run the instability job in "
                              f"{model_dir} first (or pass evaluate.watch=True)")
    time.sleep(poll_s)
  manifest = rundirs.read_json(manifest_path)
  splits = tuple(splits)
  unknown = [s for s in splits if s not in ("train", "test")]
  if unknown:
    raise ValueError(f"evaluate.splits: unknown split(s) {unknown}; use 'train' and 'test'")
  alphas = barrier.alphas(num_alphas)
  data = data_base.get_dataset()
  sweeper = Sweeper(strategy, data, splits, eval_examples, batch_size)
  chief = distribute.is_chief(strategy)
  if chief:
    rundirs.write_text_atomic(os.path.join(model_dir, "evaluate_operative_config.gin"),
                              config.operative_config())
  metrics = {}
  started = time.time()
  while True:
    for pair in manifest["pairs"]:
      metrics_path = os.path.join(model_dir, PAIRS_DIR, pair["id"], METRICS)
      if pair["id"] in metrics:
        continue
      if tf.io.gfile.exists(metrics_path):
        saved = rundirs.read_json(metrics_path)
        if saved.get("alphas") == [float(a) for a in alphas]:
          metrics[pair["id"]] = saved
          continue
      if not _ready(model_dir, pair):
        continue
      tic = time.time()
      metrics[pair["id"]] = evaluate_pair(sweeper, model_dir, manifest, pair, alphas, splits)
      line = ", ".join(f"{s} instability {metrics[pair['id']][s]['instability']:.2f} pp"
                       for s in splits)
      print(f"[{len(metrics)}/{len(manifest['pairs'])}] {pair['id']}: {line} "
            f"({time.time() - tic:.1f} s)", flush=True)
      if chief:
        rundirs.write_json_atomic(os.path.join(model_dir, SUMMARY),
                                  summarize(list(metrics.values()), manifest))
    waiting = len(manifest["pairs"]) - len(metrics)
    if not waiting or not watch:
      break
    if time.time() > deadline:
      print(f"evaluate: timed out after {timeout_s} s with {waiting} pair(s) unfinished",
            flush=True)
      break
    time.sleep(poll_s)
    manifest = rundirs.read_json(manifest_path)  # the experiment may have been extended
  if metrics and chief:
    rundirs.write_json_atomic(os.path.join(model_dir, SUMMARY),
                              summarize(list(metrics.values()), manifest))
  print(f"Evaluated {len(metrics)}/{len(manifest['pairs'])} pair(s) in "
        f"{time.time() - started:.0f} s; {len(manifest['pairs']) - len(metrics)} not ready.",
        flush=True)
  return summarize(list(metrics.values()), manifest) if metrics else {"pairs_done": 0}
