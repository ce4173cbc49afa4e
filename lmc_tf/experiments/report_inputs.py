"""What the `report` job reads: an experiment's manifest, each finished pair's metrics per
(align, BN mode), and, for a width study, each experiment's width. A damaged metrics file is
warned about and left out, so a partly evaluated experiment still reports.
"""

import os

from absl import logging

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import width_study


def load_manifest(model_dir):
  path = layout.manifest(model_dir)
  if not files.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {model_dir} is not an instability experiment yet. Run the "
        f"instability job first (--job=instability), then --job=evaluate, then --job=report.")
  return files.read_json(path)


def words(mode, align=None):
  """How a warning or summary line names a (align, BN mode) curve: the mode alone where copy
  B is as trained."""
  return bn_tables.mode_label(mode) if align is None else bn_tables.key_label((align, mode))


def _read_metrics(model_dir, pair_id, mode=layout.DEFAULT_BN_MODE, align=None):
  """A pair's metrics in BN mode `mode` with copy B aligned by `align` (None: as trained), or
  None (and a warning) if the file is unreadable."""
  # The evaluator writes metrics files atomically, so one that exists is whole, or damaged.
  path = layout.metrics(model_dir, pair_id, mode, align)
  of_key = "" if (align, mode) == (None, layout.DEFAULT_BN_MODE) else f" of {words(mode, align)}"
  try:
    metrics = files.read_json(path)
  except files.UnreadableFileError as e:
    logging.warning(f"{e}; pair {pair_id} is left out{of_key} (rerun --job=evaluate)")
    return None
  if metrics.get("bn_mode", layout.DEFAULT_BN_MODE) != mode:
    logging.warning(f"{path} says it holds BN mode {metrics['bn_mode']!r}; pair {pair_id} is "
                    f"left out{of_key}")
    return None
  if metrics.get("align") != align:
    logging.warning(f"{path} says it holds alignment {metrics.get('align')!r}; pair {pair_id} "
                    f"is left out{of_key}")
    return None
  return metrics


def load_metrics(model_dir, manifest):
  """The metrics of every pair in the manifest that the evaluator has finished, in its order."""
  finished = []
  for pair in manifest.get("pairs", []):
    if files.exists(layout.metrics(model_dir, pair["id"])):
      metrics = _read_metrics(model_dir, pair["id"])
      if metrics is not None:
        finished.append(metrics)
  return finished


def load_metrics_by_key(model_dir, manifest):
  """{(align, BN mode): the metrics of every pair finished with it, in manifest order}, keys
  in `bn_tables.key_order` (the paper's naive curve first); a key no pair has is absent."""
  found = {}
  for pair in manifest.get("pairs", []):
    for align, mode in layout.metrics_keys(model_dir, pair["id"]):
      metrics = _read_metrics(model_dir, pair["id"], mode, align)
      if metrics is not None:
        found.setdefault((align, mode), []).append(metrics)
  return {key: found[key] for key in bn_tables.key_order(found)}


def load_metrics_by_mode(model_dir, manifest):
  """{BN mode: the metrics of every pair finished in it, in manifest order}, copy B as
  trained, the paper's mode first; a mode no pair has is absent."""
  return {mode: metrics for (align, mode), metrics in
          load_metrics_by_key(model_dir, manifest).items() if align is None}


def study_member(directory):
  """(name, width, {(align, mode): metrics}) of one experiment of a width study."""
  name = os.path.basename(os.path.normpath(directory))
  config = layout.operative_config(directory)
  record = layout.experiment_record(directory)
  width = width_study.width_of(
      files.read_text(config) if files.exists(config) else None,
      files.read_json(record) if files.exists(record) else None)
  return name, width, load_metrics_by_key(directory, load_manifest(directory))
