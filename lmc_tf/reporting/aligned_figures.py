"""Naive and aligned pairs side by side (issue 15): one pair's curves, and the barrier against
the network's width over several experiments (Git Re-Basin's width study).

Each function takes values (`aligned_tables`, `width_study`) and returns a matplotlib Figure;
the `report` job renders and writes it. A BN mode keeps its colour and the alignment takes the
line style (naive dashed, aligned solid), as in bn_figures, whose machinery draws the mean ±
sd curves of naive and aligned pairs at each k (`bn_figures.modes_interpolation` with
(align, mode) keys).
"""

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from lmc_tf.reporting import bn_figures
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import figure_style
from lmc_tf.reporting import figures
from lmc_tf.reporting import width_study

PAIR_PANEL = (4.2, 3.2)
# The width study's quantities: the paper's error barrier (instability) and the loss barrier.
BARRIERS = (("instability", "error barrier (pp)"), ("loss_barrier", "loss barrier"))


def pair_interpolation(lines_by_key, pair_id, title=None):
  """One pair's error along the path, naive and aligned, in every BN mode; a panel per split.
  The legend gives each curve's instability per split.

  Args:
    lines_by_key: `aligned_tables.pair_curves` of the pair.
    pair_id: the pair, for the title.
    title: the network / experiment, for the figure title.

  Raises:
    ValueError: if the pair has no curve.
  """
  keys = bn_tables.key_order(lines_by_key)
  splits = bn_figures.panel_splits({s for k in keys for s in lines_by_key[k]})
  if not splits:
    raise ValueError(f"pair {pair_id!r} has no curve to draw")
  fig = Figure(figsize=(max(PAIR_PANEL[0] * len(splits), 6.4),
                        PAIR_PANEL[1] + 0.9 + 0.2 * len(keys)), layout="constrained")
  axes = fig.subplots(1, len(splits), squeeze=False).ravel()
  handles = {}
  for ax, split in zip(axes, splits):
    lo, hi = 0.0, 1.0
    for key in keys:
      if split not in lines_by_key[key]:
        continue
      alphas, errors, _ = lines_by_key[key][split]
      color, linestyle = bn_figures.key_style(key)
      (handles[key],) = ax.plot(alphas, errors, color=color, linestyle=linestyle,
                                linewidth=1.5)
      lo, hi = min(lo, alphas[0]), max(hi, alphas[-1])
    bn_figures.path_axis(ax, split, lo, hi)
  figure_style.share_y(axes)
  axes[0].set_ylabel("error (%)")

  def label(key):
    barriers = ", ".join(f"{s} {lines_by_key[key][s][2]:.2f}" for s in splits
                         if s in lines_by_key[key])
    return f"{bn_tables.key_label(key)}: instability {barriers} pp"

  fig.legend([handles[k] for k in keys if k in handles],
             [label(k) for k in keys if k in handles], loc="outside lower center", ncols=1,
             fontsize=8)
  fig.suptitle(f"{title}\npair {pair_id}: error along the path, naive and aligned"
               if title else f"pair {pair_id}: error along the path, naive and aligned",
               fontsize=11)
  return fig


def _width_axis(ax, widths):
  ax.set_xscale("log", base=2)
  ax.xaxis.set_major_locator(ticker.FixedLocator(widths))
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(
      lambda v, _: width_study.width_text(v)))
  ax.set_xlim(min(widths) / 1.3, max(widths) * 1.3)
  ax.set_xlabel("width multiplier (log2)")


def barrier_vs_width(agg_by_width, variant, step, title=None):
  """The error and loss barriers against width, mean ± sd over pairs, a line per (align, BN
  mode); a row per split (test first), a column per barrier.

  Args:
    agg_by_width: `width_study.aggregate`'s output.
    variant, step: the pairs drawn (`width_study.drawn`).
    title: the study, for the figure title.

  Raises:
    ValueError: if no width has results of `variant` at `step`.
  """
  widths = sorted(agg_by_width)
  keys = bn_tables.key_order({k for agg in agg_by_width.values() for k in agg})
  splits = bn_figures.panel_splits({
      s for agg in agg_by_width.values() for by_variant in agg.values()
      for s, by_step in by_variant.get(variant, {}).items() if step in by_step})
  if not splits:
    raise ValueError(f"no width has {variant!r} results at k = {step}")
  fig = Figure(figsize=(4.2 * len(BARRIERS), 3.0 * len(splits) + 0.9 + 0.3 * len(keys) / 2),
               layout="constrained")
  axes = fig.subplots(len(splits), len(BARRIERS), squeeze=False)
  counts = []
  for row, split in enumerate(splits):
    for col, (quantity, axis_label) in enumerate(BARRIERS):
      ax = axes[row, col]
      for key in keys:
        points = [(w, agg_by_width[w].get(key, {}).get(variant, {}).get(split, {}).get(step))
                  for w in widths]
        points = [(w, s) for w, s in points if s and s[f"{quantity}_mean"] is not None]
        if not points:
          continue
        counts.extend(s["samples"] for _, s in points)
        bn_figures.band(ax, [w for w, _ in points],
                        [s[f"{quantity}_mean"] for _, s in points],
                        [s[f"{quantity}_sd"] or 0.0 for _, s in points], key, marker="o")
      if quantity == "instability":
        figures.stable_line(ax)
      _width_axis(ax, widths)
      ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
      ax.set_title(f"{split} set", fontsize=10)
      ax.set_ylabel(axis_label)
      ax.grid(alpha=0.3)
  for col in range(len(BARRIERS)):  # one quantity a column: its panels share y
    figure_style.share_y(axes[:, col])
  bn_figures.legend(fig, list(np.ravel(axes)), ncols=2, counts=counts)
  fig.suptitle(figures.heading(
      title, f"barrier vs width at k = {figures.compact(step)}"
      f"{bn_figures.VARIANT_WORDS.get(variant, f' ({variant})')}",
      figures.samples_text(counts or [0])))
  return fig
