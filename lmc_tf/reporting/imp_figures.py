"""The IMP figures of the LMC paper: accuracy against density (Table 2, Figure 10), and the
subnetworks' interpolation, instability and error against k (Figures 5 to 9).

Each function takes values (IMP's summary, `tables.aggregate`'s output, medians) and returns a
matplotlib Figure; the `report` job renders and writes it.
"""

from matplotlib import ticker
from matplotlib.figure import Figure

from lmc_tf.evaluation import barrier
from lmc_tf.reporting import figure_style
from lmc_tf.reporting import figures
from lmc_tf.reporting import tables



def _full_network(ax, mean, sd, n):
  """The unpruned network as a gray line at `mean` (%), over its mean ± sd band across `n`
  inits where n > 1."""
  if n > 1:
    ax.axhspan(mean - sd, mean + sd, color="0.6", alpha=0.3, linewidth=0,
               label=f"full network: {figure_style.band_label([n], 'inits')}")
  ax.axhline(mean, color="0.3", linewidth=1, label=f"full network ({mean:.2f}%)")

def accuracy_vs_density(summary, title=None):
  """Test accuracy of IMP and its baselines against density (log x, sparser to the right),
  with the full network and the matching margin (full - 0.2 pp) as lines. Where a level has
  several inits, error bars span ±1 sd over them; the sparsest density always has a tick."""
  fig = Figure(figsize=(6.4, 4.4), layout="constrained")
  ax = fig.subplots()
  levels = summary["levels"]
  density = [100 * l["density"] for l in levels]
  inits = sorted({l["samples"] for l in levels})
  bars = max(inits or [0]) > 1
  for variant, _ in tables.IMP_VARIANTS:
    rows = [(d, l) for d, l in zip(density, levels) if variant in l["test_accuracy"]]
    if not rows:
      continue
    x = [d for d, _ in rows]
    y = [l["test_accuracy"][variant] for _, l in rows]
    sd = [l.get("test_accuracy_sd", {}).get(variant, 0.0) if l["samples"] > 1 else 0.0
          for _, l in rows]
    ax.errorbar(x, y, yerr=sd if bars else None, marker="o", markersize=3, capsize=2,
                linewidth=1.2, elinewidth=0.8, color=SUBNETWORK_COLORS[variant],
                label=figure_style.subnetwork_label(variant))
  if len(summary.get("rewind_steps", [])) > 1:
    # Figure 10: the best IMP subnetwork over every rewind step, at each density.
    best = [max(l["imp_by_rewind_step"].values()) for l in levels]
    ax.plot(density, best, marker="o", markersize=3, color="tab:red",
            label=f"IMP, best of k in {summary['rewind_steps']}")
  full = summary["full_network_accuracy"]
  if full is not None:
    sd = levels[0]["test_accuracy_sd"].get("imp", 0.0) if levels else 0.0
    _full_network(ax, full, sd, levels[0]["samples"] if levels else 0)
    ax.axhline(full - barrier.MATCHING_MARGIN_PP, color="0.3", linewidth=1, linestyle="--",
               label=f"matching: full − {barrier.MATCHING_MARGIN_PP:g} pp")
  extreme = summary.get("extreme_sparsity")
  marked = list(density)
  if extreme:
    marked.append(100 * extreme["density"])
    ax.axvline(100 * extreme["density"], color="tab:red", linestyle=":", linewidth=1,
               label=f"extreme sparsity ({100 * extreme['density']:.3g}% remain)")
  density_axis(ax, marked)
  handles, labels = ax.get_legend_handles_labels()
  order = sorted(range(len(labels)), key=lambda i: not labels[i].startswith(
      tuple(figure_style.SUBNETWORK_LABELS.values())))  # the subnetworks first
  ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8)
  spread = (f"error bars: ±1 sd over n={figure_style.count_text(inits)} inits" if bars
            else f"n={figure_style.count_text(inits)} init per point")
  ax.set_title(f"{title or 'IMP'}: test accuracy vs density\n(baselines at k = "
               f"{summary['rewind_step']}; {spread})", fontsize=10)
  return fig


def density_axis(ax, densities, max_ticks=8):
  """Weights remaining (%) on a log x axis, sparser to the right, ticks at up to `max_ticks`
  of `densities` with the densest and the sparsest always labelled; test accuracy (%) on y."""
  ax.set_xscale("log")
  ax.xaxis.set_major_locator(ticker.FixedLocator(figure_style.density_ticks(densities,
                                                                            max_ticks)))
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
  if densities:
    lo, hi = min(densities), max(densities)
    ax.set_xlim(hi * 1.15, lo / 1.15)  # inverted: sparser to the right, the ends in view
  else:
    ax.invert_xaxis()
  ax.set_xlabel("weights remaining (%)")
  ax.set_ylabel("test accuracy (%)")
  ax.grid(True, alpha=0.3)


SUBNETWORK_COLORS = {"imp": "tab:blue", "random_pruning": "tab:orange",
                     "random_reinit": "tab:green", "snip": "tab:purple"}


def subnetworks_vs_k(agg, split, stat, ylabel, title, reference=None, stable_line=False):
  """Figures 6, 7 and 8: one line per subnetwork (IMP and baselines) against rewind step k.

  Args:
    agg: `tables.aggregate` of metrics whose `variant` is the subnetwork's name.
    split: 'train' or 'test'.
    stat: 'instability' (Figure 6) or 'endpoint_error' (Figures 7 and 8).
    reference: (mean, sd, n inits) of the full network's error, drawn as a gray line with
      its mean ± sd band where n > 1 (Figure 7).
  """
  fig = Figure(figsize=(6.4, 4.2), layout="constrained")
  ax = fig.subplots()
  steps, counts = set(), []
  for variant in tables.variant_order(agg):
    by_k = agg[variant].get(split, {})
    if not by_k:
      continue
    ks = sorted(by_k)
    steps.update(ks)
    mean = [by_k[k][f"{stat}_mean"] for k in ks]
    sd = [by_k[k].get(f"{stat}_sd", 0.0) for k in ks]
    counts.extend(by_k[k]["samples"] for k in ks)
    figures.band(ax, ks, mean, sd, SUBNETWORK_COLORS.get(variant),
                 figure_style.subnetwork_label(variant), marker="o")
  if not steps:
    raise ValueError(f"no subnetwork has {split} results to draw")
  if reference is not None:
    _full_network(ax, *reference)
  if stable_line:
    figures.stable_line(ax)
  figures.rewind_axis(ax, sorted(steps))
  ax.set_ylabel(ylabel)
  ax.grid(True, alpha=0.3)
  figure_style.add_band_entry(ax, counts, "pairs", fontsize=8)
  what = ylabel.split(" (")[0]
  ax.set_title(f"{title}\n{what} vs rewind step, by subnetwork" if title else what, fontsize=10)
  return fig


def subnetworks_interpolation(curves, split, step, title):
  """Figure 5: error along the linear path between copies of each subnetwork, at one k."""
  fig = Figure(figsize=(6.4, 4.2), layout="constrained")
  ax = fig.subplots()
  counts = []
  for variant in tables.variant_order(curves):
    curve = curves[variant].get(split, {}).get(step)
    if curve is None:
      continue
    figures.band(ax, curve["alphas"], curve["error_mean"], curve["error_sd"],
                 SUBNETWORK_COLORS.get(variant), figure_style.subnetwork_label(variant))
    counts.append(curve["samples"])
  if not counts:
    raise ValueError(f"no subnetwork has {split} interpolation curves at k = {step}")
  ax.set_xlabel("interpolation α")
  ax.set_ylabel(f"{split} error (%)")
  ax.set_xlim(0, 1)
  ax.grid(True, alpha=0.3)
  figure_style.add_band_entry(ax, counts, "pairs", fontsize=8)
  what = f"{split} error along the path between copies, by subnetwork"
  ax.set_title(f"{title}\n{what}" if title else what, fontsize=10)
  return fig


def figure9_first_k(medians_by_density, title):
  """Figure 9: median rewind step at which IMP and random pruning become stable and matching,
  against density. `medians_by_density` is {density (0-1): tables.first_k_medians(...)}."""
  fig = Figure(figsize=(6.4, 4.2), layout="constrained")
  ax = fig.subplots()
  densities = sorted(medians_by_density, reverse=True)
  drawn = []
  for variant in ("imp", "random_pruning"):
    for criterion, style in (("stable", "-"), ("matching", "--")):
      points = [(100 * d, medians_by_density[d][variant][criterion]) for d in densities
                if variant in medians_by_density[d]
                and medians_by_density[d][variant][criterion] is not None]
      if points:
        ax.plot(*zip(*points), linestyle=style, marker="o", markersize=4,
                color=SUBNETWORK_COLORS[variant],
                label=f"{figure_style.subnetwork_label(variant)} {criterion}")
        drawn += [k for _, k in points]
  if not drawn:
    raise ValueError("no subnetwork became stable or matching at any rewind step")
  density_axis(ax, [100 * d for d in densities])
  ax.set_yscale("symlog", linthresh=max(1, min([k for k in drawn if k > 0] or [1])))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: figures.compact(v)))
  ax.set_ylabel("median rewind step k (iterations)")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title(f"{title}: when subnetworks become stable and matching", fontsize=10)
  return fig
