"""The BN modes side by side: the interpolation curves of every mode at one k, and instability
against k with a line per mode (issue 14; evaluation/bn_modes.py).

Each function takes values (`bn_tables.curves` or `bn_tables.aggregate` per mode) and returns a
matplotlib Figure; the `report` job renders and writes it. Modes are told apart by colour and
line style, and named "BN statistics: interpolated / reset / REPAIR", never bare "reset", which
is also the name of Figure 4's variant (the copies' LR schedule restarted).
"""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lmc_tf import layout
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import figure_style
from lmc_tf.reporting import figures
from lmc_tf.reporting import tables

# The paper's mode dark and solid, the corrections in colour; a new mode takes the next colour.
MODE_STYLES = {layout.DEFAULT_BN_MODE: ("0.15", "-"), "reset": ("tab:blue", "--"),
               "repair": ("tab:green", "-.")}
VARIANT_WORDS = {"standard": "", "reset": "; copies trained T steps, LR schedule restarted",
                 "inits": "; networks from different inits"}
PANEL = (4.2, 3.2)
BAND_TITLE = "lines: mean, bands: ± 1 sd"


def band_title(counts):
  """The legend's title: 'mean ± sd over n=9 pairs (lines: mean, bands: ± 1 sd)'."""
  return f"{figure_style.band_label(counts, 'pairs')} ({BAND_TITLE})"


# Beside the alignment, a BN mode keeps its colour and the alignment takes the line style: the
# naive dashed, aligned solid.
ALIGN_STYLES = {None: "--", "weight_matching": "-", "activation_matching": "-."}


def mode_style(mode):
  """(colour, line style) of a BN mode, the same in every figure."""
  if mode in MODE_STYLES:
    return MODE_STYLES[mode]
  # Past tab10's blue, orange (Figure 4's variant) and green; picked by name, so every run agrees.
  return colormaps["tab10"](3 + sum(map(ord, mode)) % 7), ":"


def key_style(key):
  """(colour, line style) of a BN mode, or of an (align, BN mode) key (`bn_tables.key_label`)."""
  if isinstance(key, str):
    return mode_style(key)
  align, mode = key
  return mode_style(mode)[0], ALIGN_STYLES.get(align, ":")


def band(ax, x, mean, sd, key, marker=None):
  color, linestyle = key_style(key)
  mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
  ax.plot(x, mean, color=color, linestyle=linestyle, marker=marker, markersize=4,
          linewidth=1.5, label=bn_tables.key_label(key))
  ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=figures.SD_ALPHA, linewidth=0)


def _heading(title, what, keys, variant, samples):
  """The figure title: of BN modes alone as it always was; of (align, mode) keys, whose
  labels already say the BN statistics, with the sample count on a line of its own."""
  words = VARIANT_WORDS.get(variant, f" ({variant})")
  if all(isinstance(k, str) for k in keys):
    return figures.heading(title, f"{what}, by BN statistics{words}", samples)
  return "\n".join(p for p in (title, f"{what}, naive and aligned{words}", samples) if p)


def panel_splits(splits):
  """Test first (the paper's figures show test), then train, then any other."""
  first = [s for s in ("test", "train") if s in splits]
  return first + [s for s in tables.split_order(splits) if s not in first]


def panels(num, legend_rows=1):
  fig = Figure(figsize=(max(PANEL[0] * num, 6.4), PANEL[1] + 1.1 + 0.3 * (legend_rows - 1)),
               layout="constrained")
  return fig, fig.subplots(1, num, squeeze=False).ravel()


def legend(fig, axes, extra=(), ncols=3, counts=None):
  """One legend below the panels: every mode drawn in any panel, each as its line over its
  band, then the other labelled lines and the `extra` handles; its title says what the bands
  are, over how many pairs (`counts`, the samples of every point drawn)."""
  by_label = {}
  for ax in axes:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if "BN statistics: " in label:
        handle = (Patch(color=handle.get_color(), alpha=figures.SD_ALPHA, linewidth=0), handle)
      by_label.setdefault(label, handle)
  for handle in extra:
    by_label.setdefault(handle.get_label(), handle)
  fig.legend(list(by_label.values()), list(by_label), loc="outside lower center",
             ncols=min(len(by_label), ncols), fontsize=8,
             title=band_title(counts) if counts else BAND_TITLE, title_fontsize=8)


def _mark_endpoints(ax, curve, key):
  """On an extended curve, the copies themselves (alpha = 0 and 1) as dots."""
  alphas = np.asarray(curve["alphas"])
  ends = [int(np.argmin(np.abs(alphas - a))) for a in (0.0, 1.0)]
  ax.plot(alphas[ends], np.asarray(curve["error_mean"])[ends], linestyle="none", marker="o",
          markersize=5, color=key_style(key)[0])


def _layout_legend(keys, extra=0):
  """(columns, rows to make room for) of the legend of `keys` and `extra` other entries: the
  long (align, mode) labels two a row; BN modes alone three a row in the height they had."""
  if all(isinstance(k, str) for k in keys):
    return 3, 1
  return 2, -(-(len(keys) + extra) // 2)


def path_axis(ax, split, lo, hi):
  """One split's panel of error along the path over alpha in [lo, hi]; the endpoints are
  marked when the path extends beyond them."""
  if (lo, hi) != (0.0, 1.0):
    for end in (0.0, 1.0):
      ax.axvline(end, color="0.5", linestyle=":", linewidth=1)
  ax.set_xlim(lo, hi)
  ax.set_title(f"{split} set", fontsize=10)
  ax.set_xlabel("interpolation α")
  ax.grid(alpha=0.3)


def interpolation_figures(curves, variant, title, prefix):
  """{f"{prefix}_k<k>.png": every key's curves at k} for every k of `variant`."""
  steps = sorted({k for by_variant in curves.values()
                  for by_k in by_variant.get(variant, {}).values() for k in by_k})
  return {f"{prefix}_k{step}.png": modes_interpolation(curves, variant, step, title)
          for step in steps}


def modes_interpolation(curves_by_mode, variant, step, title=None):
  """The error along the path at rewind step `step` in every BN mode, mean ± sd over pairs;
  a panel per split. Extended curves (alpha beyond [0, 1]) are drawn whole, with alpha = 0
  and 1 marked; refined peaks are crosses, one per pair.

  Args:
    curves_by_mode: {mode: `bn_tables.curves` of that mode's metrics}, or the same keyed by
      (align, mode) to draw naive and aligned curves together (`bn_tables.key_label`).
    variant: which variant's pairs to draw.
    step: the rewind step k.
    title: the network / experiment, for the figure title.

  Raises:
    ValueError: if no mode has a curve of `variant` at `step`.
  """
  def curve_of(key, split):
    return curves_by_mode[key].get(variant, {}).get(split, {}).get(step)

  keys = bn_tables.key_order(curves_by_mode)
  splits = panel_splits({s for k in keys for s in curves_by_mode[k].get(variant, {})
                          if curve_of(k, s) is not None})
  if not splits:
    raise ValueError(f"no BN mode has a {variant!r} curve at k = {step}")
  drawn = {k: [c for c in (curve_of(k, s) for s in splits) if c is not None] for k in keys}
  ncols, rows = _layout_legend(
      [k for k in keys if drawn[k]],
      extra=any(c["extended"] for v in drawn.values() for c in v)
      + any(c["peaks"] for v in drawn.values() for c in v))
  fig, axes = panels(len(splits), rows)
  counts, extended, peaks = [], False, False
  for ax, split in zip(axes, splits):
    lo, hi = 0.0, 1.0
    for key in keys:
      curve = curve_of(key, split)
      if curve is None:
        continue
      counts.append(curve["samples"])
      band(ax, curve["alphas"], curve["error_mean"], curve["error_sd"], key)
      if curve["extended"]:
        extended = True
        lo, hi = min(lo, curve["alphas"][0]), max(hi, curve["alphas"][-1])
        _mark_endpoints(ax, curve, key)
      if curve["peaks"]:
        peaks = True
        ax.plot(*zip(*curve["peaks"]), linestyle="none", marker="x", markersize=5,
                color=key_style(key)[0])
    path_axis(ax, split, lo, hi)
  figure_style.share_y(axes)
  axes[0].set_ylabel("error (%)")
  extra = []
  if extended:
    extra.append(Line2D([], [], color="0.3", marker="o", linestyle=":",
                        label="α = 0 and 1: the copies"))
  if peaks:
    extra.append(Line2D([], [], color="0.3", marker="x", linestyle="none",
                        label="refined peak, one per pair"))
  legend(fig, axes, extra, ncols, counts)
  fig.suptitle(_heading(title, f"error along the path at k = {figures.compact(step)}", keys,
                        variant, figures.samples_text(counts, per="curve")))
  return fig


def modes_instability(agg_by_mode, variant="standard", title=None):
  """Figure 3 with a line per BN mode: instability against k, mean ± sd; a panel per split.

  Args:
    agg_by_mode: `bn_tables.aggregate`'s output (or {mode: `tables.aggregate`}), or the
      same keyed by (align, mode).
    variant: which variant to draw.
    title: the network / experiment, for the figure title.

  Raises:
    ValueError: if no mode has results for `variant`.
  """
  keys = [k for k in bn_tables.key_order(agg_by_mode) if agg_by_mode[k].get(variant)]
  if not keys:
    raise ValueError(f"no BN mode has results for variant {variant!r}")
  splits = panel_splits({s for k in keys for s in agg_by_mode[k][variant]})
  ncols, rows = _layout_legend(keys, extra=1)
  fig, axes = panels(len(splits), rows)
  steps, counts = set(), []
  for ax, split in zip(axes, splits):
    for key in keys:
      by_step = agg_by_mode[key][variant].get(split, {})
      ks = sorted(by_step)
      if not ks:
        continue
      steps.update(ks)
      counts.extend(by_step[k]["samples"] for k in ks)
      band(ax, ks, [by_step[k]["instability_mean"] for k in ks],
            [by_step[k]["instability_sd"] for k in ks], key, marker="o")
    figures.stable_line(ax)
    ax.set_title(f"{split} set", fontsize=10)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(alpha=0.3)
  figure_style.share_y(axes)
  for ax in axes:
    figures.rewind_axis(ax, sorted(steps))
  axes[0].set_ylabel("instability (pp)")
  legend(fig, axes, ncols=ncols, counts=counts)
  fig.suptitle(_heading(title, "instability vs rewind step", keys, variant,
                        figures.samples_text(counts)))
  return fig
