"""Barriers of naive and aligned pairs (issue 15): copy B as trained, or permuted onto copy A
(alignment/, evaluate.align), each in every BN mode measured.

A curve's key is (align, BN mode): align None for the naive pair, else the method
('weight_matching', 'activation_matching'); the mode as in bn_tables. Every function takes the
evaluator's metrics dicts grouped by key ({(align, mode): [metrics, ...]}) and returns values;
nothing here reads or writes files.
"""

import csv
import io

import numpy as np

from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import tables

COLUMNS = ("variant", "split", "rewind_step", "align", "bn_mode", "samples",
           "instability_mean", "instability_sd", "loss_barrier_mean", "loss_barrier_sd",
           "endpoint_error_mean", "endpoint_error_sd", "stable", "alignment_samples",
           "alignment_seconds_mean", "changed_fraction_mean")
NAIVE = "naive"  # the align column of copy B as trained
_MARKDOWN = (("variant", None), ("split", None), ("rewind_step", None), ("alignment", None),
             ("BN statistics", None), ("samples", None), ("instability", "instability"),
             ("loss_barrier", "loss_barrier"), ("endpoint_error", "endpoint_error"),
             ("stable", None), ("alignment seconds", "alignment_seconds_mean"),
             ("changed units (fraction)", "changed_fraction_mean"))
_DIGITS = {"changed_fraction_mean": 3}


def has_aligned(by_key):
  """Whether any pair has an aligned curve."""
  return any(align is not None and metrics for (align, _), metrics in by_key.items())


def _alignment_stats(members):
  """Mean seconds and fraction of the hidden units moved, over the members with a record."""
  records = [m["alignment"] for m, _ in members if isinstance(m.get("alignment"), dict)]
  seconds = [float(r["seconds"]) for r in records if r.get("seconds") is not None]
  changed = [r["changed_units"] / r["units"] for r in records
             if r.get("changed_units") is not None and r.get("units")]
  return {"alignment_samples": len(records),
          "alignment_seconds_mean": float(np.mean(seconds)) if seconds else None,
          "changed_fraction_mean": float(np.mean(changed)) if changed else None}


def aggregate(by_key):
  """Barrier statistics per (align, BN mode), variant, split and rewind step.

  Returns:
    {(align, mode): {variant: {split: {rewind_step: stats}}}}, keys in `bn_tables.key_order`;
    stats as `bn_tables.aggregate`'s, and alignment_samples (pairs with an alignment record),
    alignment_seconds_mean and changed_fraction_mean (changed_units / units, mean over
    pairs); None for the naive.
  """
  agg = {}
  for key in bn_tables.key_order(by_key):
    groups = tables.group(by_key[key])
    for variant in tables.variant_order(groups):
      for split in tables.split_order(groups[variant]):
        for step, members in sorted(groups[variant][split].items()):
          stats = bn_tables.group_stats([result for _, result in members])
          stats.update(_alignment_stats(members))
          agg.setdefault(key, {}).setdefault(variant, {}).setdefault(split, {})[step] = stats
  return agg


def rows(agg):
  """One dict per (variant, split, rewind_step, align, bn_mode); the keys of one k side by
  side, in `aggregate`'s order."""
  out = []
  for variant, split, step in bn_tables.cells(agg):
    for (align, mode), by_variant in agg.items():
      stats = by_variant.get(variant, {}).get(split, {}).get(step)
      if stats is not None:
        out.append(dict(variant=variant, split=split, rewind_step=step, align=align,
                        bn_mode=mode, **stats))
  return out


def number(value, key):
  """A table cell: blank where not measured, 2 decimals (3 for a fraction)."""
  return "" if value is None else f"{value:.{_DIGITS.get(key, 2)}f}"


def to_markdown(agg):
  """The barriers as a Markdown table: "mean ± sd" cells, blank where not measured."""
  return markdown_rows(rows(agg))


def markdown_rows(table, lead=()):
  """`rows`-like dicts as a Markdown table; `lead` are (column, the cell of a row) pairs put
  first (the width study's width)."""
  header = [name for name, _ in lead] + [name for name, _ in _MARKDOWN]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if name in ("experiments", "variant", "split", "alignment",
                                            "BN statistics")
                          else ":---:" if name == "stable" else "---:" for name in header)
           + "|"]
  for row in table:
    cells = [str(value(row)) for _, value in lead]
    for name, key in _MARKDOWN:
      if key is None:
        cells.append(str({
            "alignment": bn_tables.align_label(row["align"]),
            "BN statistics": bn_tables.MODE_LABELS.get(row["bn_mode"], row["bn_mode"]),
            "stable": "yes" if row["stable"] else "no"}.get(name, row.get(name))))
      elif key.endswith("_mean"):
        cells.append(number(row[key], key))
      else:
        mean, sd = row[f"{key}_mean"], row[f"{key}_sd"]
        cells.append("" if mean is None else f"{number(mean, key)} ± {number(sd, key)}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def csv_cells(row, columns=COLUMNS):
  return [("true" if row[c] else "false") if c == "stable" else
          (row[c] or NAIVE) if c == "align" else
          number(row[c], c) if isinstance(row[c], float) or row[c] is None else row[c]
          for c in columns]


def to_csv(agg):
  """The barriers as CSV: means and sds in their own columns, align 'naive' for copy B as
  trained, blank where not measured."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in rows(agg):
    writer.writerow(csv_cells(row))
  return out.getvalue()


def curves(by_key):
  """{(align, mode): `bn_tables.curves` of its metrics}."""
  return {key: bn_tables.curves(metrics) for key, metrics in by_key.items()}


def pair_curves(by_key, pair_id):
  """One pair's error along the path per key: {(align, mode): {split: (alphas, errors,
  instability)}}, extended beyond [0, 1] where measured; keys without the pair are absent."""
  out = {}
  for key in bn_tables.key_order(by_key):
    metrics = next((m for m in by_key[key] if m.get("id") == pair_id), None)
    if metrics is None:
      continue
    for split, result in metrics.items():
      if not isinstance(result, dict) or not result.get("errors"):
        continue
      if metrics.get("extended_alphas") and result.get("extended_errors"):
        line = (metrics["extended_alphas"], result["extended_errors"])
      else:
        line = (metrics["alphas"], result["errors"])
      out.setdefault(key, {})[split] = (
          [float(a) for a in line[0]], [float(e) for e in line[1]], result["instability"])
  return out
