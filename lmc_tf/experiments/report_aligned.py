"""The report's outputs of naive and aligned pairs (issue 15, evaluate.align), and of the
width study over several experiments (report.compare): {file name under report/: a Figure or
text}. The `report` job reads the results and writes these; nothing here touches files.
"""

from lmc_tf.evaluation import barrier
from lmc_tf.reporting import aligned_figures
from lmc_tf.reporting import aligned_tables
from lmc_tf.reporting import bn_figures
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import width_study

# Git Re-Basin's inits experiment has N(N-1)/2 pairs; past this many, a figure per pair is
# more than a reader opens, and the table has them all.
PAIR_FIGURES = 32

_EXPLAINED = (
    "*naive* is copy B as trained; *aligned (weight matching)* and *aligned (activation "
    "matching)* permute copy B's hidden units onto copy A's before interpolating "
    "(evaluate.align; Ainsworth et al. 2023), which changes neither network's function. BN "
    "statistics *interpolated* is the paper's; *reset* re-estimates them on training batches "
    "at every α; *REPAIR* rescales every channel to the interpolation of the copies' "
    "statistics.\n\n"
    "Cells are mean ± sd over the `samples` pairs. instability is the error barrier in "
    "percentage points (the max over the grid on [0, 1] minus the mean endpoint error; "
    f"stable means a mean < {barrier.STABLE_THRESHOLD_PP:g} pp), loss_barrier the same on "
    "loss. alignment seconds is the mean time to find the permutation, changed units the "
    "mean fraction of the hidden units it moved (blank for the naive pairs, and for a "
    "permutation found before the evaluator recorded it).\n\n")


def aligned_markdown(agg, by_key, total, title):
  """aligned.md: the barriers of the naive and aligned pairs, with what the columns mean."""
  done = ", ".join(f"{bn_tables.key_label(key)} {len(by_key[key])} of {total}"
                   for key in agg)
  return (f"# Barriers of naive and aligned pairs: {title}\n\n"
          f"Pairs evaluated: {done}. " + _EXPLAINED + aligned_tables.to_markdown(agg))


def aligned_outputs(by_key, pair_ids, total, title, main_variant,
                    pair_figures=PAIR_FIGURES):
  """The naive and aligned curves of each pair (pairs/<id>.png, at most `pair_figures` of
  them in `pair_ids`' order), their mean ± sd at each k (aligned_k<k>.png), instability vs k
  with a line per key (aligned_instability.png, with more than one k), and the barriers
  table (aligned.md, .csv).

  Args:
    by_key: {(align, mode): metrics}, `report.load_metrics_by_key`'s output.
    pair_ids: the manifest's pair ids, in order.
    total: how many pairs the manifest has.

  Returns:
    ({name: Figure or text}, how many aligned pairs have no figure of their own).
  """
  pictures = {}
  aligned_ids = {m["id"] for (align, _), metrics in by_key.items() if align is not None
                 for m in metrics}
  drawn = [pid for pid in pair_ids if pid in aligned_ids]
  for pair_id in drawn[:pair_figures]:
    pictures[f"pairs/{pair_id}.png"] = aligned_figures.pair_interpolation(
        aligned_tables.pair_curves(by_key, pair_id), pair_id, title)
  curves = aligned_tables.curves(by_key)
  figures_at_k = bn_figures.interpolation_figures(curves, main_variant, title, "aligned")
  pictures.update(figures_at_k)
  agg = aligned_tables.aggregate(by_key)
  if len(figures_at_k) > 1:
    pictures["aligned_instability.png"] = bn_figures.modes_instability(
        agg, main_variant, title)
  pictures["aligned.md"] = aligned_markdown(agg, by_key, total, title)
  pictures["aligned.csv"] = aligned_tables.to_csv(agg)
  return pictures, max(0, len(drawn) - pair_figures)


def width_outputs(studies, title):
  """The width study: barrier_vs_width.png (the barriers against width, at the main
  variant's first k every width has) and barrier_vs_width.md, .csv (every variant and k).

  Args:
    studies: [(experiment name, width, {(align, mode): metrics})]; experiments of one width
      are pooled.
    title: the study, for the figure and table titles.

  Returns:
    ({name: Figure or text}, `width_study.aggregate`, why the figure is missing or None).
  """
  by_width, names = {}, {}
  for name, width, by_key in studies:
    names.setdefault(width, []).append(name)
    for key, metrics in by_key.items():
      by_width.setdefault(width, {}).setdefault(key, []).extend(metrics)
  agg = width_study.aggregate(by_width)
  widths = ", ".join(f"{width_study.width_text(w)} ({' '.join(names[w])})" for w in agg)
  pictures = {
      "barrier_vs_width.md": (
          f"# Barrier vs width: {title}\n\nExperiments by width: {widths}. " + _EXPLAINED
          + width_study.to_markdown(agg, names)),
      "barrier_vs_width.csv": width_study.to_csv(agg, names)}
  try:
    variant, step = width_study.drawn(agg)
  except ValueError as e:
    return pictures, agg, str(e)
  pictures["barrier_vs_width.png"] = aligned_figures.barrier_vs_width(agg, variant, step,
                                                                      title)
  return pictures, agg, None
