"""The `report` job: instability figures and tables from an experiment's results, no retraining.

Reads DIR/instability.json (the manifest the `instability` job writes) and each
DIR/pairs/<id>/metrics.json the evaluator has finished, and writes DIR/report/: Figures 2, 3 and 4
and Appendix C of the LMC paper as PNG, and the instability table as Markdown and CSV. A
partially evaluated experiment reports on the pairs that are done, and says how many those are.

Where the evaluator also measured other BN modes (metrics_<mode>.json), or curves beyond
[0, 1] or refined peaks, the report adds Figure 3 per mode, the curves of every mode at each k
on one figure, instability vs k with a line per mode, and the barriers of every mode as a table
(bn_modes.md, .csv). Where copy B was also aligned to copy A (evaluate.align:
metrics_<method>[_<mode>].json), it adds each such pair's naive and aligned curves
(pairs/<id>.png), their mean ± sd at each k (aligned_k<k>.png) and the barriers of every
(alignment, mode) as a table (aligned.md, .csv) (report_aligned.py). The paper's outputs, and
the BN modes' of the naive pairs, stay as they are.

With `report.compare`, a list of experiment directories, it draws the barriers against each
experiment's width multiplier (Git Re-Basin's width study): barrier_vs_width.png, .md, .csv.
"""

import os

from absl import logging
import gin

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import imp_summary
from lmc_tf.experiments import report_aligned
from lmc_tf.experiments import report_inputs
from lmc_tf.experiments import report_stabilizing
from lmc_tf.reporting import bn_figures
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import figures
from lmc_tf.reporting import html
from lmc_tf.reporting import imp_figures
from lmc_tf.reporting import tables
from lmc_tf.reporting import width_study


def _write(model_dir, name, content):
  """Writes report/<name> (a Figure as PNG, or text) atomically; returns its path."""
  path = layout.report_file(model_dir, name)
  if isinstance(content, str):
    files.write_text_atomic(path, content)
  else:
    files.write_bytes_atomic(path, figures.png_bytes(content))
  return path


# The readers, where they were before report_inputs.py held them.
load_manifest = report_inputs.load_manifest
load_metrics = report_inputs.load_metrics
load_metrics_by_mode = report_inputs.load_metrics_by_mode


def summary_lines(agg, used, total, title, mode=layout.DEFAULT_BN_MODE, align=None):
  """The plain-text summary the job prints: mean ± sd instability and stability per k; the
  BN mode and the alignment are named unless they are the paper's."""
  of_mode = ("" if (align, mode) == (None, layout.DEFAULT_BN_MODE)
             else f" ({report_inputs.words(mode, align)})")
  lines = [f"Instability of {title}{of_mode}: {used} of {total} pairs evaluated"]
  for variant, by_split in agg.items():
    for split, by_step in by_split.items():
      lines.append(f"  {variant} / {split}{of_mode}:")
      for step, stats in by_step.items():
        lines.append(f"    k = {step:>6}: {stats['instability_mean']:6.2f} ± "
                     f"{stats['instability_sd']:5.2f} pp  (n = {stats['samples']})  "
                     f"stable: {'yes' if stats['stable'] else 'no'}")
  return lines


def markdown_report(agg, used, total, title):
  return (f"# Instability: {title}\n\n"
          f"{used} of {total} pairs evaluated. Instability is the error barrier in percentage "
          f"points; stable means instability_mean < {barrier.STABLE_THRESHOLD_PP:g} pp.\n\n"
          + tables.to_markdown(agg))


def bn_markdown(agg, by_mode, total, title):
  """bn_modes.md: the barriers of every BN mode, with what the modes and columns mean."""
  done = ", ".join(f"{bn_tables.MODE_LABELS.get(m, m)} {len(by_mode[m])} of {total}"
                   for m in agg)
  return (f"# Barriers by BN statistics: {title}\n\n"
          f"Pairs evaluated per BN mode: {done}. BN statistics *interpolated* is the paper's "
          "(interpolated like every other variable); *reset* re-estimates them on training "
          "batches at every α; *REPAIR* rescales every channel to the interpolation of the "
          "copies' statistics. `variant` is the copies' training (reset: Figure 4's restarted "
          "LR schedule), not a BN mode.\n\n"
          "Cells are mean ± sd over the `samples` pairs. instability is the error barrier in "
          "percentage points, the max over the grid on [0, 1] minus the mean endpoint error "
          f"(the instability of record; stable means a mean < {barrier.STABLE_THRESHOLD_PP:g} "
          "pp), and loss_barrier the same on loss. Where the peak was refined "
          "(evaluate.refine_peak), refined_instability is the bisected peak minus the mean "
          "endpoint error and peak_alpha is where it lies; (n = ...) when fewer pairs have "
          "them.\n\n" + bn_tables.to_markdown(agg))


def _paper_outputs(metrics_list, agg, total, title, main_variant):
  """The paper's figures and the instability table, of the paper's BN mode."""
  pictures = {}
  if main_variant in tables.interpolation_curves(metrics_list):
    pictures["figure2_interpolation.png"] = figures.figure2_interpolation(
        metrics_list, main_variant, title)
  pictures["figure3_instability.png"] = figures.figure3_instability(agg, main_variant, title)
  if agg.get("standard") and agg.get("reset"):
    pictures["figure4_reset.png"] = figures.figure4_reset(agg, title)
  if tables.per_epoch_curves(metrics_list):
    pictures["appendix_c_per_epoch.png"] = figures.appendix_c_per_epoch(metrics_list, title)
  pictures["instability.md"] = markdown_report(agg, len(metrics_list), total, title)
  pictures["instability.csv"] = tables.to_csv(agg)
  return pictures


def _bn_mode_outputs(by_mode, others, total, title, main_variant):
  """Figure 3 of each other BN mode, every mode's curves at each k, instability vs k with a
  line per mode, and the barriers table; `others` is {mode: `tables.aggregate`}."""
  pictures = {}
  for mode, agg in others.items():
    if agg.get(main_variant):
      pictures[f"figure3_instability_{mode}.png"] = figures.figure3_instability(
          agg, main_variant, f"{title}, {bn_tables.mode_label(mode)}")
  curves = {mode: bn_tables.curves(metrics) for mode, metrics in by_mode.items()}
  pictures.update(bn_figures.interpolation_figures(curves, main_variant, title, "bn_modes"))
  agg = bn_tables.aggregate(by_mode)
  if any(by_variant.get(main_variant) for by_variant in agg.values()):
    pictures["bn_modes_instability.png"] = bn_figures.modes_instability(
        agg, main_variant, title)
  pictures["bn_modes.md"] = bn_markdown(agg, by_mode, total, title)
  pictures["bn_modes.csv"] = bn_tables.to_csv(agg)
  return pictures


@gin.configurable("report", denylist=["model_dir", "strategy"])
def report(model_dir, strategy, title=None, compare=(),
           pair_figures=report_aligned.PAIR_FIGURES, stabilizing_row=None):
  """Writes the instability figures and table for the experiment in `model_dir`.

  Args:
    model_dir: the instability experiment's directory (holding instability.json).
    strategy: unused; every job takes one.
    title: the network / experiment named in the figure titles; the directory's name if None.
    compare: experiment directories (relative to the working directory, or absolute) of a
      width study: the barriers against each one's width multiplier go to
      report/barrier_vs_width.*, `model_dir` included when it is an experiment itself (then
      reported as usual too), else only the place the study is written.
    pair_figures: at most this many pairs with aligned curves get a figure of their own.
    stabilizing_row: for an IMP experiment of the Stabilizing paper, its row of that paper's
      tables ('lenet', 'resnet20_standard', ..., 'vgg19_warmup'): the report then draws that
      paper's figures and puts its numbers beside ours (report_stabilizing.py).

  Returns:
    {"files": the paths written, "table": `tables.aggregate` of the pairs finished in the
    paper's BN mode, "bn_modes": {other mode: its `tables.aggregate`}, "aligned": {method:
    {mode: its `tables.aggregate`}}}, and with `compare`, "width_study":
    `width_study.aggregate`; "index": the path of report/index.html, which shows them all.

  Raises:
    FileNotFoundError: if the manifest is missing (the instability job has not run).
    ValueError: if the evaluator has not finished any pair yet.
  """
  result = _report(model_dir, strategy, title, compare, pair_figures, stabilizing_row)
  index = html.write_index(model_dir, title)  # last: it shows every file written above
  print(f"Report page: {index}", flush=True)
  return dict(result, index=index)


def _report(model_dir, strategy, title, compare, pair_figures, stabilizing_row):
  if files.exists(layout.imp_record(model_dir)):
    return imp_report(model_dir, strategy, title, pair_figures, stabilizing_row)
  del strategy
  if not compare:
    return experiment_report(model_dir, title, pair_figures)
  result = {"files": [], "table": {}, "bn_modes": {}, "aligned": {}}
  directories = [files.absolute(d) for d in compare]
  if files.exists(layout.manifest(model_dir)):
    result = experiment_report(model_dir, title, pair_figures)
    if files.join(model_dir) not in {files.join(d) for d in directories}:
      directories.insert(0, model_dir)
  title = title or os.path.basename(os.path.normpath(model_dir))
  written, agg = width_study_report(model_dir, directories, title)
  return dict(result, files=result["files"] + written, width_study=agg)


def experiment_report(model_dir, title=None, pair_figures=report_aligned.PAIR_FIGURES):
  """`report` of one instability experiment (its Args, Returns and Raises)."""
  manifest = report_inputs.load_manifest(model_dir)
  total = len(manifest.get("pairs", []))
  by_key = report_inputs.load_metrics_by_key(model_dir, manifest)
  by_mode = {mode: metrics for (align, mode), metrics in by_key.items() if align is None}
  if not by_key:
    raise ValueError(f"The evaluator has not finished any of the {total} pairs in {model_dir} "
                     f"(no {layout.PAIRS}/<id>/{layout.METRICS} yet): "
                     "run --job=evaluate first.")
  title = title or os.path.basename(os.path.normpath(model_dir))
  metrics_list = by_mode.get(layout.DEFAULT_BN_MODE, [])
  agg = tables.aggregate(metrics_list)
  others = {mode: tables.aggregate(metrics) for mode, metrics in by_mode.items()
            if mode != layout.DEFAULT_BN_MODE}
  others = {mode: table for mode, table in others.items() if table}
  aligned = {key: tables.aggregate(metrics) for key, metrics in by_key.items()
             if key[0] is not None}
  aligned = {key: table for key, table in aligned.items() if table}
  if not agg and (metrics_list or not (others or aligned)):
    used = len(metrics_list) or max(len(m) for m in by_key.values())
    raise ValueError(f"The {used} finished pairs in {model_dir} hold no split with an "
                     f"instability: was the evaluator told to skip both train and test?")
  # Figures 2 and 3 show the paper's main experiment; with only the reset variant, show that.
  first = agg or next(iter(others.values()), None) or next(iter(aligned.values()))
  main_variant = "standard" if "standard" in first else next(iter(first))
  pictures, lines = {}, []
  if agg:
    pictures.update(_paper_outputs(metrics_list, agg, total, title, main_variant))
    lines += summary_lines(agg, len(metrics_list), total, title)
  if by_mode and (set(by_mode) != {layout.DEFAULT_BN_MODE}
                  or bn_tables.has_extras(metrics_list)):
    pictures.update(_bn_mode_outputs(by_mode, others, total, title, main_variant))
  for mode, table in others.items():
    lines += summary_lines(table, len(by_mode[mode]), total, title, mode)
  if aligned:
    outputs, undrawn = report_aligned.aligned_outputs(
        by_key, [p["id"] for p in manifest.get("pairs", [])], total, title, main_variant,
        pair_figures)
    pictures.update(outputs)
    for (align, mode), table in aligned.items():
      lines += summary_lines(table, len(by_key[align, mode]), total, title, mode, align)
    if undrawn:
      lines.append(f"{undrawn} more pairs with aligned curves have no figure of their own "
                   f"(report.pair_figures = {pair_figures}); aligned.md has them all")
  written = [_write(model_dir, name, content) for name, content in pictures.items()]
  print("\n".join(lines), flush=True)
  print("Wrote:\n" + "\n".join(f"  {f}" for f in written), flush=True)
  by_align = {}
  for (align, mode), table in aligned.items():
    by_align.setdefault(align, {})[mode] = table
  return {"files": written, "table": agg, "bn_modes": others, "aligned": by_align}


def width_study_report(model_dir, directories, title):
  """Writes model_dir/report/barrier_vs_width.*; returns (the paths, `width_study.aggregate`)."""
  studies = []
  for directory in directories:
    name, width, by_key = report_inputs.study_member(directory)
    if not any(by_key.values()):
      logging.warning(f"width study: {directory} has no finished pair yet; left out")
      continue
    studies.append((name, width, by_key))
  if not studies:
    raise ValueError(f"None of the width study's experiments {directories} has a finished "
                     "pair: run --job=evaluate in each first.")
  pictures, agg, missing = report_aligned.width_outputs(studies, title)
  if missing:
    logging.warning(f"width study: no barrier_vs_width.png ({missing})")
  written = [_write(model_dir, name, content) for name, content in pictures.items()]
  print(f"Width study of {title}: " + ", ".join(
      f"{name} at {width_study.width_text(width)}" for name, width, _ in studies), flush=True)
  print("Wrote:\n" + "\n".join(f"  {f}" for f in written), flush=True)
  return written, agg


def imp_report(model_dir, strategy, title=None, pair_figures=report_aligned.PAIR_FIGURES,
               stabilizing_row=None):
  """An IMP experiment: Table 2 and accuracy vs density, plus the instability report of each
  subnetwork experiment the evaluator has finished (DIR/instability/*)."""
  del strategy
  title = title or os.path.basename(os.path.normpath(model_dir))
  written = []
  for sub in layout.sub_experiments(model_dir):
    try:
      result = experiment_report(sub.directory(model_dir), f"{title}: {sub.name}",
                                 pair_figures)
    except ValueError as e:
      logging.warning(f"{sub.name}: no instability report yet ({e})")
      continue
    written += result["files"]
  summary = imp_summary.summarize(model_dir, files.read_json(layout.imp_record(model_dir)))
  written += _subnetwork_figures(model_dir, summary, title)
  if stabilizing_row is not None:
    summary["stabilizing_row"] = stabilizing_row  # for tools/stabilizing_table.py
  files.write_json_atomic(layout.summary(model_dir), summary)
  outputs = {"imp_levels.md": tables.imp_markdown(summary),
             "imp_levels.csv": tables.imp_csv(summary),
             "accuracy_vs_density.png": imp_figures.accuracy_vs_density(summary, title)}
  if stabilizing_row is not None:
    outputs.update(report_stabilizing.outputs(summary, stabilizing_row, title))
  written += [_write(model_dir, name, content) for name, content in outputs.items()]
  print(f"Table 2 row, {title}:", flush=True)
  for line in tables.table2_lines(summary):
    print("  " + line, flush=True)
  extreme = summary["extreme_sparsity"]
  print("Extreme sparsity (Appendix A): " + (
      f"{100 * extreme['density']:.1f}% of weights (level {extreme['level']}, "
      f"k = {extreme['rewind_step']})" if extreme else "no level is matching"), flush=True)
  print("Wrote:\n" + "\n".join(f"  {f}" for f in written), flush=True)
  return {"files": written, "summary": summary}


def _subnetwork_metrics(model_dir):
  """{level: [metrics of the copies trained to T, with variant = the subnetwork's]}."""
  by_level = {}
  for sub in layout.sub_experiments(model_dir):
    sub_dir = sub.directory(model_dir)
    for metrics in report_inputs.load_metrics(sub_dir, report_inputs.load_manifest(sub_dir)):
      if metrics["variant"] == "standard":  # the copies trained to T; reset is Figure 4's
        by_level.setdefault(sub.level, []).append(dict(metrics, variant=sub.variant))
  return by_level


def _level_figures(metrics_list, heading, reference):
  """Figures 5 to 8 of one level's subnetworks."""
  agg = tables.aggregate(metrics_list)
  curves = tables.interpolation_curves(metrics_list)
  first_k = min(k for v in curves.values() for by_k in v.values() for k in by_k)
  pictures = {
      "figure5_interpolation": imp_figures.subnetworks_interpolation(
          curves, "test", first_k, f"{heading}, k = {first_k}"),
      "figure6_instability": imp_figures.subnetworks_vs_k(
          agg, "test", "instability", "test instability (pp)", heading, stable_line=True),
      "figure7_test_error": imp_figures.subnetworks_vs_k(
          agg, "test", "endpoint_error", "test error (%)", heading, reference)}
  if any("train" in by_split for by_split in agg.values()):
    pictures["figure8_train_error"] = imp_figures.subnetworks_vs_k(
        agg, "train", "endpoint_error", "train error (%)", heading)
  return pictures


def _subnetwork_figures(model_dir, summary, title):
  """Figures 5 to 9 for each level whose subnetworks had instability experiments."""
  by_level = _subnetwork_metrics(model_dir)
  full = summary["levels"][0]["test_accuracy"] if summary["levels"] else {}
  reference = None
  if "imp" in full:
    level0 = summary["levels"][0]
    reference = (100.0 - full["imp"], level0["test_accuracy_sd"]["imp"], level0["samples"])
  written = []
  density_of = {l["level"]: l["density"] for l in summary["levels"]}
  medians = {density_of[level]: tables.first_k_medians(m, summary["full_network_accuracy"])
             for level, m in by_level.items() if level in density_of}
  try:
    fig = imp_figures.figure9_first_k(medians, title)
  except ValueError as e:
    logging.warning(f"Figure 9 not drawn: {e}")
  else:
    written.append(_write(model_dir, "figure9_first_k.png", fig))
  for level, metrics_list in sorted(by_level.items()):
    density = next(l["density"] for l in summary["levels"] if l["level"] == level)
    heading = f"{title}: {100 * density:.1f}% of weights remain (level {level})"
    for name, fig in _level_figures(metrics_list, heading, reference).items():
      written.append(_write(model_dir, f"{name}_level{level:02d}.png", fig))
  return written
