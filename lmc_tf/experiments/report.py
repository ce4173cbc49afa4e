"""The `report` job: instability figures and tables from an experiment's results, no retraining.

Reads DIR/instability.json (the manifest the `instability` job writes) and each
DIR/pairs/<id>/metrics.json the evaluator has finished, and writes DIR/report/: Figures 2, 3 and 4
and Appendix C of the LMC paper as PNG, and the instability table as Markdown and CSV. A
partially evaluated experiment reports on the pairs that are done, and says how many those are.
"""

import os

import gin

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.evaluation import barrier
from lmc_tf.evaluation import imp_summary
from lmc_tf.reporting import figures
from lmc_tf.reporting import imp_figures
from lmc_tf.reporting import tables


def _write(model_dir, name, content):
  """Writes report/<name> (a Figure as PNG, or text) atomically; returns its path."""
  path = layout.report_file(model_dir, name)
  if isinstance(content, str):
    files.write_text_atomic(path, content)
  else:
    files.write_bytes_atomic(path, figures.png_bytes(content))
  return path


def load_manifest(model_dir):
  path = layout.manifest(model_dir)
  if not files.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {model_dir} is not an instability experiment yet. Run the "
        f"instability job first (--job=instability), then --job=evaluate, then --job=report.")
  return files.read_json(path)


def load_metrics(model_dir, manifest):
  """The metrics of every pair in the manifest that the evaluator has finished, in its order."""
  finished = []
  for pair in manifest.get("pairs", []):
    # The evaluator writes metrics.json atomically, so one that exists is whole.
    path = layout.metrics(model_dir, pair["id"])
    if not files.exists(path):
      continue
    try:
      finished.append(files.read_json(path))
    except files.UnreadableFileError as e:
      print(f"warning: {e}; pair {pair['id']} is left out (rerun --job=evaluate)", flush=True)
  return finished


def summary_lines(agg, used, total, title):
  """The plain-text summary the job prints: mean ± sd instability and stability per k."""
  lines = [f"Instability of {title}: {used} of {total} pairs evaluated"]
  for variant, by_split in agg.items():
    for split, by_step in by_split.items():
      lines.append(f"  {variant} / {split}:")
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


@gin.configurable("report", denylist=["model_dir", "strategy"])
def report(model_dir, strategy, title=None):
  """Writes the instability figures and table for the experiment in `model_dir`.

  Args:
    model_dir: the instability experiment's directory (holding instability.json).
    strategy: unused; every job takes one.
    title: the network / experiment named in the figure titles; the directory's name if None.

  Returns:
    {"files": the paths written, "table": `tables.aggregate` of the finished pairs}.

  Raises:
    FileNotFoundError: if the manifest is missing (the instability job has not run).
    ValueError: if the evaluator has not finished any pair yet.
  """
  if files.exists(layout.imp_record(model_dir)):
    return imp_report(model_dir, strategy, title)
  del strategy
  manifest = load_manifest(model_dir)
  total = len(manifest.get("pairs", []))
  metrics_list = load_metrics(model_dir, manifest)
  if not metrics_list:
    raise ValueError(f"The evaluator has not finished any of the {total} pairs in {model_dir} "
                     f"(no {layout.PAIRS}/<id>/{layout.METRICS} yet): "
                     "run --job=evaluate first.")
  title = title or os.path.basename(os.path.normpath(model_dir))
  used = len(metrics_list)
  agg = tables.aggregate(metrics_list)
  if not agg:
    raise ValueError(f"The {used} finished pairs in {model_dir} hold no split with an "
                     f"instability: was the evaluator told to skip both train and test?")
  # Figures 2 and 3 show the paper's main experiment; with only the reset variant, show that.
  main_variant = "standard" if "standard" in agg else next(iter(agg))
  pictures = {}
  if main_variant in tables.interpolation_curves(metrics_list):
    pictures["figure2_interpolation.png"] = figures.figure2_interpolation(
        metrics_list, main_variant, title)
  pictures["figure3_instability.png"] = figures.figure3_instability(agg, main_variant, title)
  if agg.get("standard") and agg.get("reset"):
    pictures["figure4_reset.png"] = figures.figure4_reset(agg, title)
  if tables.per_epoch_curves(metrics_list):
    pictures["appendix_c_per_epoch.png"] = figures.appendix_c_per_epoch(metrics_list, title)

  pictures["instability.md"] = markdown_report(agg, used, total, title)
  pictures["instability.csv"] = tables.to_csv(agg)
  written = [_write(model_dir, name, content) for name, content in pictures.items()]
  print("\n".join(summary_lines(agg, used, total, title)), flush=True)
  print("Wrote:\n" + "\n".join(f"  {f}" for f in written), flush=True)
  return {"files": written, "table": agg}


def imp_report(model_dir, strategy, title=None):
  """An IMP experiment: Table 2 and accuracy vs density, plus the instability report of each
  subnetwork experiment the evaluator has finished (DIR/instability/*)."""
  title = title or os.path.basename(os.path.normpath(model_dir))
  written = []
  for sub in layout.sub_experiments(model_dir):
    try:
      result = report(sub.directory(model_dir), strategy, title=f"{title}: {sub.name}")
    except ValueError as e:
      print(f"{sub.name}: no instability report yet ({e})", flush=True)
      continue
    written += result["files"]
  summary = imp_summary.summarize(model_dir, files.read_json(layout.imp_record(model_dir)))
  written += _subnetwork_figures(model_dir, summary, title)
  files.write_json_atomic(layout.summary(model_dir), summary)
  outputs = {"imp_levels.md": tables.imp_markdown(summary),
             "imp_levels.csv": tables.imp_csv(summary),
             "accuracy_vs_density.png": imp_figures.accuracy_vs_density(summary, title)}
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
    for metrics in load_metrics(sub_dir, load_manifest(sub_dir)):
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
    sd = summary["levels"][0]["test_accuracy_sd"]["imp"]
    reference = (100.0 - full["imp"], sd)
  written = []
  density_of = {l["level"]: l["density"] for l in summary["levels"]}
  medians = {density_of[level]: tables.first_k_medians(m, summary["full_network_accuracy"])
             for level, m in by_level.items() if level in density_of}
  try:
    fig = imp_figures.figure9_first_k(medians, title)
  except ValueError as e:
    print(f"Figure 9 not drawn: {e}", flush=True)
  else:
    written.append(_write(model_dir, "figure9_first_k.png", fig))
  for level, metrics_list in sorted(by_level.items()):
    density = next(l["density"] for l in summary["levels"] if l["level"] == level)
    heading = f"{title}: {100 * density:.1f}% of weights remain (level {level})"
    for name, fig in _level_figures(metrics_list, heading, reference).items():
      written.append(_write(model_dir, f"{name}_level{level:02d}.png", fig))
  return written
