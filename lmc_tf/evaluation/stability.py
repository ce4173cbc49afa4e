"""The Stabilizing paper's stability of IMP's subnetworks, per level and rewind step k.

Stability to data order: the distance between two copies of a subnetwork trained from m * W_k
with different data orders (an IMP sub-experiment's pairs, DIR/instability/*). Stability to
pruning: the distance between the subnetwork trained from m * W_k and the full network trained
from W_k with the same data order, both seen through m (imp.json's level entries). Both as L2
distance and angle (Appendix B), with each subnetwork's test accuracy (Figures 3, 4, 10, 11).

summary.json's "stability" is one entry per (level, k) whose subnetworks have a sub-experiment:
  {"level", "density", "rewind_step",
   "variants": {variant: {"data_order": {"l2": S, "angle_deg": S},
                          "pruning": {"l2": S, "angle_deg": S}, "test_accuracy": S}}}
with S = {"mean", "min", "max", "n"} (the paper's error bars are the minimum and maximum);
a measure not yet available is absent.
"""

import numpy as np

from lmc_tf import files
from lmc_tf import layout

METRICS = ("l2", "angle_deg")


def stats(values):
  """{"mean", "min", "max", "n"} of a non-empty list of numbers."""
  values = np.asarray(values, np.float64)
  return {"mean": float(values.mean()), "min": float(values.min()),
          "max": float(values.max()), "n": int(values.size)}


def _pair_distances(sub_dir):
  """The distances of a sub-experiment's evaluated pairs (the paper's BN mode, unaligned)."""
  out = []
  for pair in files.read_json(layout.manifest(sub_dir))["pairs"]:
    path = layout.metrics(sub_dir, pair["id"])
    if files.exists(path):
      distances = files.read_json(path).get("distances")
      if distances:
        out.append(distances)
  return out


def _data_order(model_dir):
  """{(level, k): {variant: [pair distances over every init]}} from the sub-experiments."""
  found = {}
  for sub in layout.sub_experiments(model_dir):
    slot = found.setdefault((sub.level, sub.rewind_step), {}).setdefault(sub.variant, [])
    slot.extend(_pair_distances(sub.directory(model_dir)))
  return found


def _level_runs(record, level, k):
  """imp.json's entries of `level` at rewind step k, one per init that has it."""
  out = []
  for by_k in record["inits"].values():
    out += [e for e in by_k.get(str(k), []) if e["level"] == level]
  return out


def _variant(distances, entries, variant):
  result = {}
  if distances:
    result["data_order"] = {m: stats([d[m] for d in distances]) for m in METRICS}
  pruning = [e.get("stability_to_pruning_of", {}).get(variant) or
             (e.get("stability_to_pruning") if variant == "imp" else None) for e in entries]
  pruning = [p for p in pruning if p]
  if pruning:
    result["pruning"] = {m: stats([p[m] for p in pruning]) for m in METRICS}
  accuracy = [e["test_accuracy"][variant] for e in entries if variant in e["test_accuracy"]]
  if accuracy:
    result["test_accuracy"] = stats(accuracy)
  return result


def summarize(model_dir, record):
  """summary.json's "stability" list (see the module docstring), sorted by level and k."""
  out = []
  for (level, k), by_variant in sorted(_data_order(model_dir).items()):
    entries = _level_runs(record, level, k)
    variants = list(by_variant)
    for entry in entries:
      variants += [v for v in entry["test_accuracy"] if v not in variants]
    measured = {v: _variant(by_variant.get(v), entries, v) for v in variants}
    measured = {v: m for v, m in measured.items() if m}
    if not measured:
      continue
    density = float(np.mean([e["density"] for e in entries])) if entries else None
    out.append({"level": level, "density": density, "rewind_step": k, "variants": measured})
  return out
