"""IMP's summary.json from its record (imp.json) and its sub-experiments' summaries.

Per level (at the first rewind step): mean accuracies over inits, matching, stability to
pruning and instability where measured; the best IMP accuracy over all rewind steps, and the
extreme sparsity of Appendix A; and the Stabilizing paper's stability per level and k
(evaluation/stability.py).
"""

import numpy as np

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import stability


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
  for sub in layout.sub_experiments(model_dir):
    path = layout.summary(sub.directory(model_dir))
    if sub.level == level and files.exists(path):
      test = files.read_json(path).get("test", {})
      inst.setdefault(sub.variant, {}).update(
          {k: v["instability_mean"] for k, v in test.items()})
  return inst


def _level_summary(model_dir, level, slot, full_mean, imp_by_k, ks):
  out = {"level": level, "density": float(np.mean(slot["densities"])),
         "test_accuracy": {v: float(np.mean(a)) for v, a in slot["acc"].items()},
         "test_accuracy_sd": {v: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0
                              for v, a in slot["acc"].items()},
         "samples": len(slot["densities"])}
  if full_mean is not None:
    out["matching"] = {v: barrier.is_matching(a, full_mean)
                       for v, a in out["test_accuracy"].items()}
  if slot["stp"]:
    out["stability_to_pruning"] = {key: float(np.mean([s[key] for s in slot["stp"]]))
                                   for key in ("l2", "angle_deg")}
  best = {k: imp_by_k[k][level] for k in ks if level in imp_by_k[k]}
  out["imp_by_rewind_step"] = {str(k): v for k, v in best.items()}
  out["best_rewind_step"] = max(best, key=best.get)
  inst = _sparse_instability_of(model_dir, level)
  if inst:
    out["instability"] = inst
  return out


def summarize(model_dir, record):
  """DIR/summary.json of an IMP experiment (see the module docstring)."""
  ks = record["rewind_steps"]
  by_level = _collect(record, ks[0])
  full = by_level.get(0, {}).get("acc", {}).get("imp")
  full_mean = float(np.mean(full)) if full else None
  imp_by_k = {k: {level: float(np.mean(slot["acc"]["imp"]))
                  for level, slot in _collect(record, k).items()} for k in ks}
  levels = [_level_summary(model_dir, level, slot, full_mean, imp_by_k, ks)
            for level, slot in sorted(by_level.items())]
  extreme = None
  if full_mean is not None:
    matching = [l for l in levels
                if barrier.is_matching(max(l["imp_by_rewind_step"].values()), full_mean)]
    if matching:
      sparsest = min(matching, key=lambda l: l["density"])
      extreme = {"level": sparsest["level"], "density": sparsest["density"],
                 "rewind_step": sparsest["best_rewind_step"]}
  out = {"full_network_accuracy": full_mean, "rewind_steps": ks, "rewind_step": ks[0],
         "extreme_sparsity": extreme, "levels": levels}
  stable = stability.summarize(model_dir, record)
  if stable:
    out["stability"] = stable  # the Stabilizing paper's, per level and k
  return out
