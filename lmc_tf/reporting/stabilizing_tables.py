"""The Stabilizing paper's Figures 3 and 10 as tables: ours beside the paper's.

Each function takes IMP's summary (evaluation/imp_summary.py, with its "stability" list from
evaluation/stability.py) and returns text; nothing here reads or writes files.
"""

import csv
import io

from lmc_tf.reporting import stabilizing_reference as reference

# The measures in the paper's order: (measure, metric, label, unit).
MEASURES = (("data_order", "l2", "stability to data order, L2 distance", ""),
            ("pruning", "l2", "stability to pruning, L2 distance", ""),
            ("data_order", "angle_deg", "stability to data order, angle", "°"),
            ("pruning", "angle_deg", "stability to pruning, angle", "°"),
            ("test_accuracy", None, "test accuracy", "%"))
VARIANTS = ("imp", "random_pruning")
MISSING = "—"


def reset_entry(summary):
  """The stability entry the paper's Figure 3 reads (reset to k = 0, or else the smallest k;
  the sparsest level if several), or None."""
  entries = summary.get("stability") or []
  if not entries:
    return None
  return min(entries, key=lambda e: (e["rewind_step"], e["density"] or 0.0))


def ours(entry, variant, measure, metric):
  """Our {"mean", "min", "max", "n"} of one cell, or None."""
  measured = entry["variants"].get(variant, {}).get(measure)
  if measured is None:
    return None
  return measured if metric is None else measured.get(metric)


def paper(row, variant, measure, metric):
  """The paper's (mean, err) of one cell, or None."""
  cells = reference.STABILITY[(measure, metric)].get(row)
  return None if cells is None else cells.get(variant)


def _ratio(random, imp):
  return random / imp if random is not None and imp else None


def _ours_text(stats):
  if stats is None:
    return MISSING
  if stats["n"] == 1:
    return f"{stats['mean']:.3g} (n = 1)"
  return f"{stats['mean']:.3g} [{stats['min']:.3g}, {stats['max']:.3g}] (n = {stats['n']})"


def _paper_text(cell):
  return MISSING if cell is None else f"{cell[0]:g} ± {cell[1]:g}"


def _ratio_text(value):
  return MISSING if value is None else f"{value:.1f}x"


def _full_network_line(summary, row):
  levels = summary.get("levels") or []
  ours_text = MISSING
  if levels and "imp" in levels[0]["test_accuracy"]:
    first = levels[0]
    ours_text = (f"{first['test_accuracy']['imp']:.2f} ± "
                 f"{first['test_accuracy_sd'].get('imp', 0.0):.2f} % (sd over "
                 f"{first['samples']} init{'s' if first['samples'] > 1 else ''})")
  text = f"Full network test accuracy: ours {ours_text}"
  if row in reference.ACCURACY:
    mean, err = reference.ACCURACY[row]
    text += f"; paper (Figure 2) {mean:g} ± {err:g} %"
  return text


def figure3_markdown(summary, row=None):
  """Figures 3 and 10 for one network: each measure for IMP and random pruning, with
  Comp = random / IMP (how many times more stable IMP is), ours beside the paper's."""
  entry = reset_entry(summary)
  name = reference.PAPER_NAMES.get(row, "this network")
  lines = [f"# Stabilizing paper, Figures 3 and 10: {name}", ""]
  if entry is None:
    return "\n".join(lines + ["No subnetwork has stability measurements yet.", ""])
  k = entry["rewind_step"]
  where = "reset to k = 0" if k == 0 else f"rewound to k = {k} (no k = 0 in this experiment)"
  density = (f"{100 * entry['density']:.1f}% of weights remaining (level {entry['level']})"
             if entry["density"] is not None else f"level {entry['level']}")
  if row in reference.ACCURACY:
    theirs = ("the paper: mean ± the min or max over its 18 (data order) or 3 samples, at "
              f"{reference.SPARSITY[row]:g}% of weights.")
  else:
    theirs = "the paper prints no numbers for this network."
  lines.append(f"At {density}, {where}. Ours: mean [min, max] over n samples (pairs of "
               f"copies for data order, inits for pruning and accuracy); {theirs}")
  lines += ["", "| measure | IMP (ours) | random (ours) | Comp (ours) | IMP (paper) | "
            "random (paper) | Comp (paper) |", "|---|---|---|---|---|---|---|"]
  for measure, metric, label, unit in MEASURES:
    cells = [ours(entry, v, measure, metric) for v in VARIANTS]
    theirs = [paper(row, v, measure, metric) for v in VARIANTS]
    comp = comp_paper = None
    if measure != "test_accuracy":
      comp = _ratio(*(c["mean"] if c else None for c in cells[::-1]))
      comp_paper = _ratio(*(c[0] if c else None for c in theirs[::-1]))
    label = f"{label} ({unit})" if unit else label
    lines.append(f"| {label} | " + " | ".join(
        [_ours_text(c) for c in cells]
        + [_ratio_text(comp) if measure != "test_accuracy" else ""]
        + [_paper_text(c) for c in theirs]
        + [_ratio_text(comp_paper) if measure != "test_accuracy" else ""]) + " |")
  lines += ["", _full_network_line(summary, row), ""]
  return "\n".join(lines)


def figure3_csv(summary, row=None):
  """Figure 3 and 10's cells, machine-readable: one line per measure, variant and source."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["measure", "metric", "variant", "source", "rewind_step", "mean", "min",
                   "max", "n", "err"])
  entry = reset_entry(summary)
  for measure, metric, _, _ in MEASURES:
    for variant in VARIANTS:
      stats = ours(entry, variant, measure, metric) if entry else None
      if stats is not None:
        writer.writerow([measure, metric or "", variant, "ours", entry["rewind_step"],
                         stats["mean"], stats["min"], stats["max"], stats["n"], ""])
      cell = paper(row, variant, measure, metric)
      if cell is not None:
        writer.writerow([measure, metric or "", variant, "paper", 0, cell[0], "", "", "",
                         cell[1]])
  return out.getvalue()


def stability_vs_k_csv(summary):
  """Every stability entry (Figures 4 and 11): level, k, variant, measure, statistics."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["level", "density", "rewind_step", "variant", "measure", "metric", "mean",
                   "min", "max", "n"])
  for entry in summary.get("stability") or []:
    for variant, measured in entry["variants"].items():
      for measure, metric, _, _ in MEASURES:
        stats = ours(entry, variant, measure, metric)
        if stats is not None:
          writer.writerow([entry["level"], entry["density"], entry["rewind_step"], variant,
                           measure, metric or "", stats["mean"], stats["min"], stats["max"],
                           stats["n"]])
  return out.getvalue()


def networks_markdown(summaries, metric="l2"):
  """The paper's whole Figure 3 (metric 'l2') or Figure 10 ('angle_deg'): one line per
  network, ours over the paper's. `summaries` is [(row or None, IMP summary)]."""
  name = {"l2": "Figure 3 (L2 distance)", "angle_deg": "Figure 10 (angle, °)"}[metric]
  lines = [f"# Stabilizing paper, {name}: ours over the paper's", "",
           "| network | source | k | weights | data order IMP | random | Comp | "
           "pruning IMP | random | Comp | accuracy IMP | random |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for row, summary in summaries:
    entry = reset_entry(summary)
    label = reference.PAPER_NAMES.get(row, row or "?")
    if entry is None:
      lines.append(f"| {label} | ours | — | — |" + " — |" * 8)
      continue
    cells = []
    for measure, m in (("data_order", metric), ("pruning", metric),
                       ("test_accuracy", None)):
      stats = [ours(entry, v, measure, m) for v in VARIANTS]
      cells += [MISSING if s is None else f"{s['mean']:.3g}" for s in stats]
      if measure != "test_accuracy":
        cells.append(_ratio_text(_ratio(*(s["mean"] if s else None for s in stats[::-1]))))
    weights = (f"{100 * entry['density']:.1f}%" if entry["density"] is not None else MISSING)
    lines.append(f"| {label} | ours | {entry['rewind_step']} | {weights} | "
                 + " | ".join(cells) + " |")
    if row in reference.ACCURACY:
      theirs = []
      for measure, m in (("data_order", metric), ("pruning", metric),
                         ("test_accuracy", None)):
        pair = [paper(row, v, measure, m) for v in VARIANTS]
        theirs += [_paper_text(c) for c in pair]
        if measure != "test_accuracy":
          theirs.append(_ratio_text(_ratio(*(c[0] for c in pair[::-1]))))
      lines.append(f"| | paper | 0 | {reference.SPARSITY[row]:g}% | " + " | ".join(theirs)
                   + " |")
  return "\n".join(lines + [""])
