"""The Stabilizing paper's figures as matplotlib Figures, from IMP's summary.

  stability_vs_k     Figures 4 (L2 distance) and 11 (angle): stability to data order (top),
                     to pruning (middle) and test accuracy (bottom) against the rewind step k;
  reset_vs_rewound   Figure 5: IMP's accuracy against sparsity, reset to 0 and rewound to k;
  imp_vs_baselines   Figure 9: IMP, random reinitialization and SNIP against sparsity.

Each takes values and returns a Figure; the `report` job renders and writes it.
"""

from matplotlib.figure import Figure

from lmc_tf.reporting import figure_style
from lmc_tf.reporting import figures
from lmc_tf.reporting import imp_figures
from lmc_tf.reporting import tables

ROWS = (("data_order", "stability to data order"), ("pruning", "stability to pruning"),
        ("test_accuracy", "test accuracy (%)"))
UNITS = {"l2": "L2 distance", "angle_deg": "angle (°)"}
LABELS = figure_style.SUBNETWORK_LABELS


def _stats(measured, measure, metric):
  value = measured.get(measure)
  if value is None:
    return None
  return value if measure == "test_accuracy" else value.get(metric)


def _variants(entries):
  seen = []
  for entry in entries:
    seen += [v for v in entry["variants"] if v not in seen]
  order = [v for v, _ in tables.IMP_VARIANTS]
  return sorted(seen, key=lambda v: order.index(v) if v in order else len(order))


def _full_network(ax, summary):
  """The unpruned network's accuracy: a line and its ±1 sd band over inits."""
  full = summary.get("full_network_accuracy")
  levels = summary.get("levels") or []
  if full is None or not levels:
    return
  first = levels[0]
  sd, n = first["test_accuracy_sd"].get("imp", 0.0), first["samples"]
  ax.axhspan(full - sd, full + sd, color="0.6", alpha=0.3, linewidth=0,
             label=f"full network: {figure_style.band_label([n], 'inits')}")
  ax.axhline(full, color="0.3", linewidth=1)


def stability_vs_k(summary, metric="l2", title=None):
  """Figures 4 (metric 'l2') and 11 ('angle_deg'): one column per analysed level, rows for
  data-order stability, pruning stability and accuracy; IMP and the random subnetworks against
  k, error bars from the minimum to the maximum over the samples, as the paper's.

  Raises:
    ValueError: if the summary has no stability entries.
  """
  entries = summary.get("stability") or []
  if not entries:
    raise ValueError("no stability measurements to draw")
  levels = sorted({e["level"] for e in entries})
  variants = _variants(entries)
  ncols = len(levels)
  fig = Figure(figsize=(max(4.2 * ncols, 6.4), 8.4), layout="constrained")
  axes = fig.subplots(3, ncols, squeeze=False, sharex="col", sharey="row")
  steps = sorted({e["rewind_step"] for e in entries})
  samples = {}
  for col, level in enumerate(levels):
    at_level = sorted((e for e in entries if e["level"] == level),
                      key=lambda e: e["rewind_step"])
    density = next((e["density"] for e in at_level if e["density"] is not None), None)
    axes[0, col].set_title(f"{100 * density:.1f}% of weights remain (level {level})"
                           if density is not None else f"level {level}", fontsize=10)
    for row, (measure, _) in enumerate(ROWS):
      ax = axes[row, col]
      for variant in variants:
        points = [(e["rewind_step"], _stats(e["variants"].get(variant, {}), measure, metric))
                  for e in at_level]
        points = [(k, s) for k, s in points if s is not None]
        if not points:
          continue
        ks, stats = zip(*points)
        means = [s["mean"] for s in stats]
        ax.errorbar(ks, means, yerr=[[m - s["min"] for m, s in zip(means, stats)],
                                     [s["max"] - m for m, s in zip(means, stats)]],
                    color=imp_figures.SUBNETWORK_COLORS.get(variant, "0.3"), marker="o",
                    markersize=3, capsize=2, linewidth=1.2, label=LABELS.get(variant, variant))
        samples.setdefault(measure, set()).update(s["n"] for s in stats)
      if measure == "test_accuracy":
        _full_network(ax, summary)
      ax.grid(True, alpha=0.3)
      figures.rewind_axis(ax, steps)
      if row < 2:
        ax.set_xlabel("")
  for row, (measure, label) in enumerate(ROWS):
    unit = "" if measure == "test_accuracy" else f", {UNITS[metric]}"
    axes[row, 0].set_ylabel(label + unit)
  axes[0, 0].legend(fontsize=8, loc="best")
  axes[2, 0].legend(fontsize=8, loc="best")
  what = {"l2": "Figure 4 (L2 distance)", "angle_deg": "Figure 11 (angle)"}[metric]
  per = {"data_order": "pair", "pruning": "init", "test_accuracy": "init"}
  counts = "; ".join(f"{m.replace('_', ' ')}: n = {_range(samples[m])} {per[m]}"
                     f"{'s' if max(samples[m]) > 1 else ''}" for m, _ in ROWS if m in samples)
  fig.suptitle(f"{title or 'IMP'}: {what} against k\nerror bars min to max ({counts})",
               fontsize=9)
  return fig


def _range(values):
  low, high = min(values), max(values)
  return str(low) if low == high else f"{low}–{high}"


def _density_axis(ax, densities):
  """imp_figures.density_axis with ticks at the measured levels, the sparsest always."""
  imp_figures.density_axis(ax, densities)


def reset_vs_rewound(summary, rewind_step=None, title=None):
  """Figure 5: IMP's test accuracy against sparsity, reset to 0 and rewound to `rewind_step`
  (the largest k above 0 of the experiment if None), with the full network's.

  Raises:
    ValueError: if IMP has no level at k = 0 and at a later k.
  """
  ks = summary.get("rewind_steps") or []
  later = [k for k in ks if k > 0]
  if rewind_step is None and later:
    rewind_step = max(later)
  if 0 not in ks or rewind_step not in ks or rewind_step == 0:
    raise ValueError(f"Figure 5 needs IMP at k = 0 and a later k; the experiment has {ks}")
  levels = summary["levels"]
  fig = Figure(figsize=(6.4, 4.4), layout="constrained")
  ax = fig.subplots()
  densities = []
  for k, color, label in ((0, "tab:orange", "IMP reset to k = 0"),
                          (rewind_step, "tab:blue", f"IMP rewound to k = {rewind_step}")):
    points = [(100 * l["density"], l["imp_by_rewind_step"][str(k)]) for l in levels
              if str(k) in l["imp_by_rewind_step"]]
    if points:
      ax.plot(*zip(*points), color=color, marker="o", markersize=3, label=label)
      densities += [d for d, _ in points]
  _full_network(ax, summary)
  _density_axis(ax, densities)
  n = levels[0]["samples"] if levels else 0
  ax.legend(fontsize=8, loc="lower left")
  ax.set_title(f"{title or 'IMP'}: Figure 5, reset vs rewound\n"
               f"mean over {n} init{'s' if n != 1 else ''} per point", fontsize=10)
  return fig


def imp_vs_baselines(summary, title=None):
  """Figure 9: IMP (k = the experiment's first), random reinitialization, SNIP (and random
  pruning if run) against sparsity, error bars ±1 sd over inits where there are several.

  Raises:
    ValueError: if no level has a baseline beside IMP.
  """
  levels = [l for l in summary["levels"] if l["level"] > 0] or summary["levels"]
  variants = [v for v, _ in tables.IMP_VARIANTS
              if any(v in l["test_accuracy"] for l in levels)]
  if len(variants) < 2:
    raise ValueError("Figure 9 needs a baseline beside IMP at some level")
  fig = Figure(figsize=(6.4, 4.4), layout="constrained")
  ax = fig.subplots()
  densities = []
  for variant in variants:
    rows = [l for l in summary["levels"] if variant in l["test_accuracy"]]
    x = [100 * l["density"] for l in rows]
    y = [l["test_accuracy"][variant] for l in rows]
    sd = [l["test_accuracy_sd"].get(variant, 0.0) if l["samples"] > 1 else 0.0 for l in rows]
    ax.errorbar(x, y, yerr=sd, color=imp_figures.SUBNETWORK_COLORS[variant], marker="o",
                markersize=3, capsize=2, linewidth=1.2, label=LABELS[variant])
    densities += x
  _full_network(ax, summary)
  _density_axis(ax, densities)
  n = summary["levels"][0]["samples"]
  ax.legend(fontsize=8, loc="lower left")
  ax.set_title(f"{title or 'IMP'}: Figure 9, IMP vs random reinitialization vs SNIP\n"
               f"k = {summary['rewind_step']}; error bars ±1 sd over {n} init"
               f"{'s' if n != 1 else ''}", fontsize=10)
  return fig
