"""The LMC paper's instability figures (Figures 2, 3, 4 and Appendix C) as matplotlib Figures.

Each function takes values (metrics dicts, or `tables.aggregate`'s output) and returns a Figure;
the `report` job renders and writes it. Figures are built on `matplotlib.figure.Figure` rather than
pyplot, so nothing here touches the global backend or the pyplot figure registry: drawing works
headless (Agg renders the PNG) and a figure is freed once the caller drops it.
"""

import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib import ticker
from matplotlib.figure import Figure

from lmc_tf.evaluation import barrier
from lmc_tf.reporting import figure_style
from lmc_tf.reporting import tables

# The paper's colours: train purple and test red (Figure 2); copies trained T−k steps blue and
# copies trained T steps with the schedule reset orange (Figure 4).
SPLIT_COLORS = {"train": "tab:purple", "test": "tab:red"}
VARIANT_COLORS = {"standard": "tab:blue", "reset": "tab:orange"}
VARIANT_LABELS = {v: figure_style.VARIANT_WORDS[v] for v in ("standard", "reset")}
SD_ALPHA = figure_style.SD_ALPHA
PANEL_SIZE = (2.4, 2.1)  # Figure 2's panels: four a row fit a page at 9-point labels


def heading(title, what, samples):
  """'<title>' over '<what>, <samples>': two short lines fit a one-panel figure's width."""
  body = f"{what}, {samples}"
  return f"{title}\n{body}" if title else body


def samples_text(counts, per="point"):
  """'n = 9 pairs per point', or 'n = 3–9 ...' while some pairs are still unevaluated."""
  low, high = min(counts), max(counts)
  n = str(low) if low == high else f"{low}–{high}"
  return f"n = {n} pair{'s' if high > 1 else ''} per {per}"


def compact(value):
  """Tick labels as the paper writes iterations: 500, 2K, 16K."""
  if value >= 1000 and value % 1000 == 0:
    return f"{int(value // 1000)}K"
  return f"{value:g}"


def rewind_axis(ax, rewind_steps):
  """A log-like x axis for rewind steps that still shows k = 0.

  A log axis cannot place k = 0, which is the point of Figure 3. symlog is linear from 0 to the
  smallest positive k and logarithmic above it, so every k sits where its value says, and the
  axis label states where the log scale begins.
  """
  positive = [k for k in rewind_steps if k > 0]
  linthresh = min(positive) if positive else 1
  ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
  # Ticks at the measured k read best while their labels fit: few of them, each at least ~2x
  # the last. Otherwise 0 and the powers of ten (with the end points when there are few of those).
  spread = all(b >= 1.8 * a for a, b in zip(positive, positive[1:]))
  if len(rewind_steps) <= 7 and spread:
    ticks = sorted(set(rewind_steps))
  else:
    top = max(rewind_steps)
    ticks = [0] + [10 ** e for e in range(math.ceil(math.log10(linthresh)),
                                          math.floor(math.log10(top)) + 1)]
    if len(ticks) < 3:
      ticks = sorted(set(ticks) | {linthresh, top})
  ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: compact(v)))
  # Autoscaling pads in symlog space, which reaches far into negative k; pad by hand instead.
  ax.set_xlim(-0.2 * linthresh, max(max(rewind_steps), linthresh) * 1.3)
  ax.set_xlabel(f"rewind step k (iterations; log above {compact(linthresh)})")


def stable_line(ax):
  ax.axhline(barrier.STABLE_THRESHOLD_PP, color="0.35", linestyle="--", linewidth=1,
             label=f"stable below ({barrier.STABLE_THRESHOLD_PP:g} pp)")


def band(ax, x, mean, sd, color, label, marker=None):
  """A mean line with a ±1 sd band, as the paper draws every curve."""
  mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
  ax.plot(x, mean, color=color, label=label, marker=marker, markersize=4, linewidth=1.5)
  # The band's own legend entry is figure_style.band_handle, once per figure.
  ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=SD_ALPHA, linewidth=0)


def panel_grid(num_panels, ncols, min_width=6.4, legend_cell=False):
  """`num_panels` axes, at most `ncols` a row and balanced over the rows (5 panels in rows of
  4 make 2 x 3), with (legend axis or None, the panels).

  The first spare cell of the last row holds the legend when `legend_cell`; spare cells beyond
  it are removed, so the figure has no empty panel. `min_width` (inches) leaves room for the
  two-line title.
  """
  nrows, ncols = figure_style.grid_shape(num_panels, ncols)
  fig = Figure(figsize=(max(PANEL_SIZE[0] * ncols, min_width), PANEL_SIZE[1] * nrows + 0.9),
               layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  spare = list(axes[num_panels:])
  legend_ax = spare.pop(0) if legend_cell and spare else None
  for ax in spare:
    fig.delaxes(ax)
  return fig, legend_ax, axes[:num_panels]


def _variant_title(what, variant):
  """'<what>' for the paper's copies (trained T − k steps), else '<what> (<the variant's
  words>)'; never the internal name 'standard'."""
  return what if variant == "standard" else f"{what} ({figure_style.variant_words(variant)})"


def figure2_interpolation(metrics_list, variant="standard", title=None, ncols=4):
  """Figure 2: train and test error along the linear path between copies, one panel per k.

  The panels share their y range, so the barrier shrinking with k reads across the row; a
  spare grid cell holds the legend, else it sits below the panels.

  Args:
    metrics_list: the evaluator's per-pair metrics dicts.
    variant: which variant's pairs to draw.
    title: the network / experiment, for the figure title.
    ncols: at most this many panels per row.

  Raises:
    ValueError: if no pair of `variant` has interpolation errors.
  """
  curves = tables.interpolation_curves(metrics_list).get(variant, {})
  steps = sorted({k for by_step in curves.values() for k in by_step})
  if not steps:
    raise ValueError(f"no {variant!r} pair has interpolation errors to draw")
  fig, legend_ax, axes = panel_grid(len(steps), max(1, ncols), legend_cell=True)
  cols = figure_style.grid_shape(len(steps), max(1, ncols))[1]
  counts = []
  for ax, step in zip(axes, steps):
    samples = 0
    for split in tables.split_order(curves):
      curve = curves[split].get(step)
      if curve is None:
        continue
      band(ax, curve["alphas"], curve["error_mean"], curve["error_sd"], SPLIT_COLORS.get(split),
           f"{split} set")
      samples = max(samples, curve["samples"])
    counts.append(samples)
    ax.set_title(f"k = {compact(step)} (n={samples})", fontsize=9)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
  figure_style.share_y(axes)
  for i, ax in enumerate(axes):
    if i + cols >= len(axes):  # nothing drawn below this panel
      ax.set_xlabel("interpolation α")
    if i % cols == 0:
      ax.set_ylabel("error (%)")
    else:
      ax.tick_params(labelleft=False)
  handles, labels = axes[0].get_legend_handles_labels()
  handle, label = figure_style.band_handle(counts, "pairs")
  handles, labels = handles + [handle], labels + [label]
  if legend_ax is not None:
    figure_style.legend_cell(legend_ax, handles, labels)
  else:
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
  fig.suptitle(heading(title, _variant_title("error when interpolating between copies",
                                             variant),
                       samples_text(counts, per="panel")), fontsize=10)
  return fig


def figure3_instability(agg, variant="standard", title=None):
  """Figure 3: instability (max error on the path − mean endpoint error) against rewind step k.

  Args:
    agg: `tables.aggregate`'s output.
    variant: which variant to draw.
    title: the network / experiment, for the figure title.

  Raises:
    ValueError: if `agg` has no results for `variant`.
  """
  by_split = agg.get(variant)
  if not by_split:
    raise ValueError(f"no results for variant {variant!r}")
  fig = Figure(figsize=(6.4, 4.2), layout="constrained")
  ax = fig.subplots()
  steps, counts = set(), []
  for split in tables.split_order(by_split):
    by_step = by_split[split]
    ks = sorted(by_step)
    steps.update(ks)
    counts.extend(by_step[k]["samples"] for k in ks)
    band(ax, ks, [by_step[k]["instability_mean"] for k in ks],
         [by_step[k]["instability_sd"] for k in ks], SPLIT_COLORS.get(split), f"{split} set",
         marker="o")
  stable_line(ax)
  rewind_axis(ax, sorted(steps))
  ax.set_ylabel("instability (pp)")
  ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
  ax.grid(alpha=0.3)
  figure_style.add_band_entry(ax, counts, "pairs", fontsize=9)
  ax.set_title(heading(title, _variant_title("instability vs rewind step", variant),
                       samples_text(counts)), fontsize=11)
  return fig


def figure4_reset(agg, title=None):
  """Figure 4: instability of copies trained T−k steps vs T steps with the LR schedule reset.

  One panel per split, test first (the paper shows test only); train follows when evaluated.
  The panels share their y range.

  Raises:
    ValueError: unless both the 'standard' and the 'reset' variant have results.
  """
  missing = [v for v in ("standard", "reset") if not agg.get(v)]
  if missing:
    raise ValueError(f"Figure 4 compares 'standard' and 'reset'; no results for {missing}")
  splits = [s for s in ("test", "train") if s in agg["standard"] or s in agg["reset"]]
  splits += [s for s in tables.split_order(set(agg["standard"]) | set(agg["reset"]))
             if s not in splits]
  fig, _, axes = panel_grid(len(splits), ncols=len(splits))
  fig.set_size_inches(max(3.4 * len(splits), 6.4), 3.9)
  steps, counts = set(), []
  for ax, split in zip(axes, splits):
    for variant in ("standard", "reset"):
      by_step = agg[variant].get(split, {})
      ks = sorted(by_step)
      if not ks:
        continue
      steps.update(ks)
      counts.extend(by_step[k]["samples"] for k in ks)
      band(ax, ks, [by_step[k]["instability_mean"] for k in ks],
           [by_step[k]["instability_sd"] for k in ks], VARIANT_COLORS[variant],
           VARIANT_LABELS[variant], marker="o")
    stable_line(ax)
    ax.set_title(f"{split} set", fontsize=10)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(alpha=0.3)
  figure_style.share_y(axes)
  axes[0].set_ylabel("instability (pp)")
  for ax in axes:
    rewind_axis(ax, sorted(steps))
  # Below the panels: inside, the long variant labels would cover the early-k curves.
  handles, labels = axes[0].get_legend_handles_labels()
  handle, label = figure_style.band_handle(counts, "pairs")
  fig.legend(handles + [handle], labels + [label], loc="outside lower center", ncols=2,
             fontsize=8)
  fig.suptitle(heading(title, "instability with and without the LR schedule restarted",
                       samples_text(counts)), fontsize=10)
  return fig


def _step_colors(steps):
  """One colour per k, dark (early k) to light (late k), the same in every panel."""
  n = max(len(steps) - 1, 1)
  return {step: colormaps["viridis"](0.9 * i / n) for i, step in enumerate(steps)}


def appendix_c_per_epoch(metrics_list, title=None):
  """Appendix C: instability between the copies at each epoch of their training, one line per k.

  One row per variant with per-epoch results, one column per split (test, then train).

  Raises:
    ValueError: if no pair has `per_epoch` results.
  """
  curves = tables.per_epoch_curves(metrics_list)
  if not curves:
    raise ValueError("no pair has per_epoch results (evaluate with every_epoch = True)")
  variants = list(curves)
  splits = [s for s in ("test", "train") if any(s in curves[v] for v in variants)]
  splits += [s for s in tables.split_order({s for v in variants for s in curves[v]})
             if s not in splits]
  steps = sorted({k for v in variants for s in curves[v] for k in curves[v][s]})
  colors = _step_colors(steps)
  fig = Figure(figsize=(max(3.6 * len(splits), 6.4), 2.8 * len(variants) + 0.8),
               layout="constrained")
  axes = fig.subplots(len(variants), len(splits), sharex=True, squeeze=False)
  counts = []
  for row, variant in enumerate(variants):
    for col, split in enumerate(splits):
      ax = axes[row, col]
      for step, curve in sorted(curves[variant].get(split, {}).items()):
        counts.extend(curve["samples"])
        # Means only: with one line per k, ±sd bands would bury each other.
        ax.plot(curve["epochs"], curve["instability_mean"], color=colors[step],
                label=f"k = {compact(step)}", linewidth=1.5)
      stable_line(ax)
      ax.set_title(f"{split} set, {figure_style.VARIANT_SHORT.get(variant, variant)}",
                   fontsize=9)
      if col == 0:
        ax.set_ylabel("instability (pp)")
      ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
      ax.grid(alpha=0.3)
      if row == len(variants) - 1:
        ax.set_xlabel("epoch of the copies' training")
  figure_style.share_y(axes.ravel())
  # One legend for all panels: a k missing from one panel (a split not evaluated) is still named.
  by_label = {}
  for ax in axes.ravel():
    for handle, label in zip(*ax.get_legend_handles_labels()):
      by_label.setdefault(label, handle)
  fig.legend(list(by_label.values()), list(by_label), loc="outside lower center",
             ncols=min(len(by_label), 4), fontsize=8)
  fig.suptitle(heading(title, "instability throughout training (lines: mean over pairs)",
                       samples_text(counts)), fontsize=10)
  return fig


DPI = figure_style.DPI


def png_bytes(fig, dpi=DPI):
  """The figure rendered as PNG (Agg), for files and TensorBoard images."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi)
  return buffer.getvalue()


def pair_curve(alphas, metrics, title):
  """One pair's error along the path, per split (the evaluator's TensorBoard image)."""
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for split, m in metrics.items():
    ax.plot(alphas, m["errors"], color=SPLIT_COLORS.get(split),
            label=f"{split} (instability {m['instability']:.2f} pp)")
  ax.set_xlabel("interpolation α")
  ax.set_ylabel("error (%)")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig
