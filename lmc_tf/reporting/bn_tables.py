"""Barriers by BN mode: the statistics and curves the report compares the BN modes with.

A BN mode is how an interpolated network gets its BatchNorm statistics (evaluation/bn_modes.py):
'interpolate' (the paper: interpolated like every other variable), 'reset' (re-estimated on
training batches) or 'repair' (REPAIR's per-channel correction). It is not the copies'
`variant`, whose 'reset' is Figure 4's restarted LR schedule; labels here always say "BN
statistics: ..." so the two never read alike.

Every function takes the evaluator's metrics dicts, grouped by mode ({mode: [metrics, ...]}),
and returns values; nothing here reads or writes files.
"""

import csv
import io

import numpy as np

from lmc_tf import layout
from lmc_tf.evaluation import barrier
from lmc_tf.reporting import tables

# The modes in the order the report shows them (the paper's first); a new mode sorts after.
MODE_LABELS = {layout.DEFAULT_BN_MODE: "interpolated", "reset": "reset", "repair": "REPAIR"}

COLUMNS = ("variant", "split", "rewind_step", "bn_mode", "samples",
           "instability_mean", "instability_sd", "loss_barrier_mean", "loss_barrier_sd",
           "endpoint_error_mean", "endpoint_error_sd", "stable", "refined_samples",
           "refined_instability_mean", "refined_instability_sd", "peak_alpha_mean",
           "peak_alpha_sd")
# Markdown shows "mean ± sd" in one cell, under the quantity's name.
_MARKDOWN = (("variant", None), ("split", None), ("rewind_step", None),
             ("BN statistics", None), ("samples", None), ("instability", "instability"),
             ("loss_barrier", "loss_barrier"), ("endpoint_error", "endpoint_error"),
             ("stable", None), ("refined_instability", "refined_instability"),
             ("peak_alpha", "peak_alpha"))
_ALPHA_DIGITS = 3  # refine_peak locates alpha to 1/240 of the path


def mode_order(modes):
  """The paper's mode first, then reset and REPAIR, then any other alphabetically."""
  known = list(MODE_LABELS)
  return sorted(modes, key=lambda m: (known.index(m) if m in known else len(known), m))


def mode_label(mode):
  """'BN statistics: interpolated', '... reset', '... REPAIR'."""
  return f"BN statistics: {MODE_LABELS.get(mode, mode)}"


# Copy B as trained, or aligned to copy A by a permutation (alignment/); a key of a curve is a
# BN mode alone where nothing is aligned, else (align, BN mode) with align None for the naive.
ALIGN_WORDS = {"weight_matching": "weight matching", "activation_matching": "activation matching"}


def align_label(align):
  """'naive' (copy B as trained), 'aligned (weight matching)', ..."""
  return "naive" if align is None else f"aligned ({ALIGN_WORDS.get(align, align)})"


def key_label(key):
  """A BN mode's label (`mode_label`), or for (align, mode) 'naive, BN statistics: reset',
  'aligned (weight matching), BN statistics: REPAIR'."""
  if isinstance(key, str):
    return mode_label(key)
  align, mode = key
  return f"{align_label(align)}, {mode_label(mode)}"


def key_order(keys):
  """BN modes in `mode_order`; (align, mode) keys the naive first, then each method in
  layout.ALIGN_METHODS's order (another alphabetically), each method's modes in `mode_order`."""
  keys = list(keys)
  if all(isinstance(k, str) for k in keys):
    return mode_order(keys)
  methods = [None] + list(layout.ALIGN_METHODS)
  modes = mode_order({mode for _, mode in keys})
  return sorted(keys, key=lambda k: (methods.index(k[0]) if k[0] in methods else len(methods),
                                     k[0] or "", modes.index(k[1])))


def has_extras(metrics_list):
  """Whether any pair has an extended curve or a refined peak (evaluate.alpha_range,
  evaluate.refine_peak)."""
  for metrics in metrics_list:
    if "extended_alphas" in metrics:
      return True
    for result in metrics.values():
      if isinstance(result, dict) and "refined_instability" in result:
        return True
  return False


def _stats(values):
  """(mean, sd with ddof=1, count) of the values that are there; (None, None, 0) if none."""
  values = [float(v) for v in values if v is not None]
  if not values:
    return None, None, 0
  return float(np.mean(values)), tables.sample_sd(values), len(values)


def group_stats(results):
  """One row's statistics over the pairs of one (mode, variant, split, k)."""
  out = {}
  for key in ("instability", "loss_barrier", "endpoint_error_mean"):
    name = "endpoint_error" if key == "endpoint_error_mean" else key
    mean, sd, _ = _stats([r.get(key) for r in results])
    out[f"{name}_mean"], out[f"{name}_sd"] = mean, sd
  out["samples"] = len(results)
  out["stable"] = barrier.is_stable(out["instability_mean"])
  refined = [r for r in results if r.get("refined_instability") is not None]
  for key in ("refined_instability", "peak_alpha"):
    out[f"{key}_mean"], out[f"{key}_sd"], _ = _stats([r.get(key) for r in refined])
  out["refined_samples"] = len(refined)
  return out


def aggregate(by_mode):
  """Barrier statistics per BN mode, variant, split and rewind step.

  Args:
    by_mode: {mode: the evaluator's metrics dicts of that mode}.

  Returns:
    {mode: {variant: {split: {rewind_step: stats}}}}, modes in `mode_order`, then as
    `tables.aggregate` orders them. stats holds samples, instability, loss_barrier and
    endpoint_error (each _mean and _sd, ddof=1), stable, and over the `refined_samples` pairs
    with a refined peak, refined_instability and peak_alpha (None where no pair has one).
  """
  agg = {}
  for mode in mode_order(by_mode):
    groups = tables.group(by_mode[mode])
    for variant in tables.variant_order(groups):
      for split in tables.split_order(groups[variant]):
        for step, members in sorted(groups[variant][split].items()):
          agg.setdefault(mode, {}).setdefault(variant, {}).setdefault(split, {})[step] = (
              group_stats([result for _, result in members]))
  return agg


def cells(agg):
  """Every (variant, split, rewind_step) of {key: {variant: {split: {k: stats}}}}, in the
  report's order: variants and splits as the paper's tables, then k."""
  found = {(variant, split, step)
           for by_variant in agg.values() for variant, by_split in by_variant.items()
           for split, by_step in by_split.items() for step in by_step}
  variants = tables.variant_order({v for v, _, _ in found})
  splits = tables.split_order({s for _, s, _ in found})
  return sorted(found, key=lambda f: (variants.index(f[0]), splits.index(f[1]), f[2]))


def rows(agg):
  """One dict per (variant, split, rewind_step, bn_mode), the modes of one k side by side."""
  out = []
  for variant, split, step in cells(agg):
    for mode, by_variant in agg.items():
      stats = by_variant.get(variant, {}).get(split, {}).get(step)
      if stats is not None:
        out.append(dict(variant=variant, split=split, rewind_step=step, bn_mode=mode, **stats))
  return out


def _number(value, key):
  if value is None:
    return ""
  return f"{value:.{_ALPHA_DIGITS if key.startswith('peak_alpha') else 2}f}"


def to_markdown(agg):
  """The barriers as a Markdown table: "mean ± sd" cells, blank where not measured; the
  refined peak's columns only when some pair has one."""
  table = rows(agg)
  columns = [(name, key) for name, key in _MARKDOWN
             if key not in ("refined_instability", "peak_alpha")
             or any(row["refined_samples"] for row in table)]
  lines = ["| " + " | ".join(name for name, _ in columns) + " |",
           "|" + "|".join("---" if name in ("variant", "split", "BN statistics") else
                          ":---:" if name == "stable" else "---:"
                          for name, _ in columns) + "|"]
  for row in table:
    cells = []
    for name, key in columns:
      if key is None:
        value = {"BN statistics": MODE_LABELS.get(row["bn_mode"], row["bn_mode"]),
                 "stable": "yes" if row["stable"] else "no"}.get(name, row.get(name))
        cells.append(str(value))
        continue
      mean, sd = row[f"{key}_mean"], row[f"{key}_sd"]
      cell = "" if mean is None else f"{_number(mean, key)} ± {_number(sd, key)}"
      if cell and key in ("refined_instability", "peak_alpha") and (
          row["refined_samples"] != row["samples"]):
        cell += f" (n = {row['refined_samples']})"
      cells.append(cell)
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def to_csv(agg):
  """The barriers as CSV: means and sds in their own columns, blank where not measured."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in rows(agg):
    writer.writerow([("true" if row[c] else "false") if c == "stable" else
                     _number(row[c], c) if isinstance(row[c], float) or row[c] is None else
                     row[c] for c in COLUMNS])
  return out.getvalue()


def _extended(members):
  """The members' shared extended grid, or None unless every one was measured on it."""
  grids = [m.get("extended_alphas") for m, r in members]
  if grids[0] is None or any(g != grids[0] for g in grids) or any(
      len(r.get("extended_errors") or ()) != len(grids[0]) for _, r in members):
    return None
  return grids[0]


def curves(metrics_list):
  """Error along the path, mean and sd over pairs, extended beyond [0, 1] where measured.

  Returns:
    {variant: {split: {rewind_step: {"alphas", "error_mean", "error_sd", "samples",
    "extended", "peaks"}}}}: on the extended grid when every pair of the group has it (then
    "extended" is True), else on [0, 1]; "peaks" lists each pair's refined (alpha, error).

  Raises:
    ValueError: as `tables.interpolation_curves`, if pairs of a group used other alphas.
  """
  groups = tables.group(metrics_list)
  out = {}
  for variant, by_split in tables.interpolation_curves(metrics_list).items():
    for split, by_step in by_split.items():
      for step, curve in by_step.items():
        members = [(m, r) for m, r in groups[variant][split][step] if r.get("errors")]
        curve = dict(curve, extended=False)
        extended = _extended(members)
        if extended is not None:
          errors = np.asarray([r["extended_errors"] for _, r in members], dtype=float)
          curve.update(alphas=[float(a) for a in extended], extended=True,
                       error_mean=errors.mean(axis=0).tolist(),
                       error_sd=(errors.std(axis=0, ddof=1) if len(errors) > 1
                                 else np.zeros(len(extended))).tolist())
        curve["peaks"] = [(float(r["peak_alpha"]), float(r["peak_error"]))
                          for _, r in members if r.get("peak_alpha") is not None]
        out.setdefault(variant, {}).setdefault(split, {})[step] = curve
  return out
