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

import gin

from lmc_tf import distribute
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import evaluator
from lmc_tf.experiments import common
from lmc_tf.reporting import figures
from lmc_tf.reporting import tables
from lmc_tf.training import checkpoints

SPLITS = ("train", "test")


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
  return all(layout.is_finished(layout.run_dir(model_dir, run)) for run in pair["copies"])


def _unfinish(checkpoint_path):
  """A run whose checkpoint cannot be read is not finished: its checkpoint and summary are
  set aside (renamed), so that rerunning its job trains it again from its newest intact
  checkpoint."""
  run_dir = os.path.dirname(os.path.dirname(checkpoint_path))
  aside = checkpoints.set_aside(checkpoint_path)
  if layout.is_finished(run_dir):
    files.rename(layout.summary(run_dir), aside + ".summary.json")
  print(f"  set aside as {aside}.*; rerun the training job to train {run_dir} again",
        flush=True)


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


def _saved_metrics(model_dir, pair, alphas):
  """The pair's metrics.json if it was measured at these alphas, else None."""
  path = layout.metrics(model_dir, pair["id"])
  if not files.exists(path):
    return None
  try:
    saved = files.read_json(path)
  except files.UnreadableFileError as e:
    print(f"warning: {e}; pair {pair['id']} is evaluated again", flush=True)
    return None
  return saved if saved.get("alphas") == [float(a) for a in alphas] else None


def _evaluate_ready_pairs(sweeper, model_dir, manifest, metrics, alphas, splits, chief):
  """One pass over the manifest: every pair not yet in `metrics` that can be, is."""
  for pair in manifest["pairs"]:
    if pair["id"] in metrics:
      continue
    saved = _saved_metrics(model_dir, pair, alphas)
    if saved is not None:
      metrics[pair["id"]] = saved
      continue
    if not _ready(model_dir, pair):
      continue
    tic = time.time()
    try:
      metrics[pair["id"]] = evaluator.evaluate_pair(sweeper, model_dir, manifest, pair,
                                                    alphas, splits, _curve_png)
    except checkpoints.UnreadableCheckpointError as e:
      print(f"warning: pair {pair['id']} not evaluated: {e}", flush=True)
      if chief:
        _unfinish(e.path)
      continue
    line = ", ".join(f"{s} instability {metrics[pair['id']][s]['instability']:.2f} pp"
                     for s in splits)
    print(f"[{len(metrics)}/{len(manifest['pairs'])}] {pair['id']}: {line} "
          f"({time.time() - tic:.1f} s)", flush=True)
    if chief:
      files.write_json_atomic(layout.summary(model_dir),
                              summarize(list(metrics.values()), manifest))


@gin.configurable("evaluate", denylist=["model_dir", "strategy"])
def evaluate(model_dir, strategy, num_alphas=30, splits=SPLITS, eval_examples=None,
             batch_size=1000, watch=False, timeout_s=24 * 3600, poll_s=10):
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
  if not files.exists(layout.manifest(model_dir)) and files.exists(
      layout.imp_record(model_dir)):
    return _evaluate_sub_experiments(model_dir, strategy)
  deadline = time.time() + timeout_s
  manifest = _wait_for_manifest(model_dir, watch, deadline, poll_s)
  splits = tuple(splits)
  unknown = [s for s in splits if s not in SPLITS]
  if unknown:
    raise ValueError(f"evaluate.splits: unknown split(s) {unknown}; use 'train' and 'test'")
  alphas = barrier.alphas(num_alphas)
  sweeper = evaluator.Sweeper(strategy, data_base.get_dataset(), splits, eval_examples,
                              batch_size)
  chief = distribute.is_chief(strategy)
  if chief:
    common.write_operative_config(model_dir, layout.EVALUATE_OPERATIVE_CONFIG)
  metrics = {}
  started = time.time()
  while True:
    _evaluate_ready_pairs(sweeper, model_dir, manifest, metrics, alphas, splits, chief)
    waiting = len(manifest["pairs"]) - len(metrics)
    if not waiting or not watch:
      break
    if time.time() > deadline:
      print(f"evaluate: timed out after {timeout_s} s with {waiting} pair(s) unfinished",
            flush=True)
      break
    time.sleep(poll_s)
    manifest = files.read_json(layout.manifest(model_dir))  # the experiment may have grown
  if metrics and chief:
    files.write_json_atomic(layout.summary(model_dir),
                            summarize(list(metrics.values()), manifest))
  print(f"Evaluated {len(metrics)}/{len(manifest['pairs'])} pair(s) in "
        f"{time.time() - started:.0f} s; {len(manifest['pairs']) - len(metrics)} not ready.",
        flush=True)
  return summarize(list(metrics.values()), manifest) if metrics else {"pairs_done": 0}
