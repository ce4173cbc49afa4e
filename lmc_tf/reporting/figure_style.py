"""What every figure of the report shares: the words for variants and subnetworks, how a
mean ± sd band is named in a legend, shared y limits, grids without empty cells, and density
ticks that always show the sparsest point.
"""

import math

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

DPI = 200  # PNGs stay sharp when a figure is scaled to a column of a paper
SD_ALPHA = 0.2
BAND_COLOR = "0.45"

# The paper's words for the copies' training, never the internal name 'standard'.
VARIANT_WORDS = {"standard": "copies trained T − k steps",
                 "reset": "copies trained T steps, LR schedule restarted",
                 "inits": "networks from different inits"}
# The same, short enough for a panel's title.
VARIANT_SHORT = {"standard": "copies trained T − k steps",
                 "reset": "T steps, LR schedule restarted", "inits": "different inits"}
SUBNETWORK_LABELS = {"imp": "IMP", "random_pruning": "random pruning",
                     "random_reinit": "random reinitialization", "snip": "SNIP"}


def variant_words(variant):
  return VARIANT_WORDS.get(variant, variant)


def subnetwork_label(variant):
  return SUBNETWORK_LABELS.get(variant, variant.replace("_", " "))


def count_text(counts):
  """'9', or '3–9' while some points have fewer samples than others."""
  counts = [int(c) for c in counts] or [0]
  low, high = min(counts), max(counts)
  return str(low) if low == high else f"{low}–{high}"


def band_label(counts, things):
  """'mean ± sd over n=9 pairs': what a shaded band is, with the number of samples."""
  return f"mean ± sd over n={count_text(counts)} {things}"


def band_handle(counts, things, color=BAND_COLOR):
  """(legend handle, label) naming the bands of a figure: a line over a shaded patch."""
  handle = (Patch(color=color, alpha=SD_ALPHA * 1.5, linewidth=0),
            Line2D([], [], color=color, linewidth=1.5))
  return handle, band_label(counts, things)


def add_band_entry(ax, counts, things, **legend_kwargs):
  """The axis legend: its labelled artists and the band's entry, last."""
  handles, labels = ax.get_legend_handles_labels()
  handle, label = band_handle(counts, things)
  return ax.legend(handles + [handle], labels + [label], **legend_kwargs)


def share_y(axes):
  """One y range over `axes` (panels of one quantity): the union of their own ranges."""
  axes = [ax for ax in axes if ax.get_visible() and ax.axison]
  if not axes:
    return
  lows, highs = zip(*(ax.get_ylim() for ax in axes))
  lo, hi = min(lows), max(highs)
  for ax in axes:
    ax.set_ylim(lo, hi)


def grid_shape(num, max_cols):
  """(rows, cols) for `num` panels at most `max_cols` a row, balanced so that fewer than one
  row's worth of cells is left over: 5 panels, 4 a row -> 2 x 3."""
  rows = max(1, math.ceil(num / max(1, max_cols)))
  return rows, max(1, math.ceil(num / rows))


def legend_cell(ax, handles, labels, fontsize=8):
  """Turns a spare grid cell into the figure's legend: no frame of an empty panel."""
  ax.set_axis_off()
  ax.legend(handles, labels, loc="center", fontsize=fontsize, frameon=False)


def density_ticks(densities, max_ticks=8):
  """At most `max_ticks` of the measured densities, densest to sparsest, always with the
  densest and the sparsest; a tick too close to the sparsest (closer than half a step on the
  log axis) gives way to it."""
  values = sorted(set(float(d) for d in densities if d > 0), reverse=True)
  if not values:
    return []
  step = max(1, math.ceil(len(values) / max_ticks))
  ticks = values[::step]
  if ticks[-1] != values[-1]:
    ticks.append(values[-1])
  if len(ticks) > 2 and len(values) > 1:
    # Ratio of neighbouring ticks; one under its square root crowds the sparsest label.
    ratio = (values[0] / values[-1]) ** (step / (len(values) - 1))
    if ticks[-2] / ticks[-1] < math.sqrt(ratio):
      del ticks[-2]
  return ticks


def empty_axes(fig):
  """The visible axes of `fig` that show a frame but draw nothing (for tests and checks)."""
  return [ax for ax in fig.axes if ax.get_visible() and ax.axison
          and not (ax.lines or ax.collections or ax.patches or ax.images)]
