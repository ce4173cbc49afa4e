"""The `report` job: instability figures and tables from an experiment's results, no retraining.

Reads DIR/instability.json (the manifest the `instability` job writes) and each
DIR/pairs/<id>/metrics.json the evaluator has finished, and writes DIR/report/: Figures 2, 3 and 4
and Appendix C of the LMC paper as PNG, and the instability table as Markdown and CSV. A
partially evaluated experiment reports on the pairs that are done, and says how many those are.
"""

import io
import os

import gin
import tensorflow as tf

from lmc_tf.evaluation import evaluator
from lmc_tf.experiments import imp
from lmc_tf.experiments import instability
from lmc_tf.experiments import jobs
from lmc_tf.experiments import rundirs
from lmc_tf.reporting import figures
from lmc_tf.reporting import tables

REPORT_DIR = "report"
DPI = 120


def png_bytes(fig):
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=DPI)
  return buffer.getvalue()


def load_manifest(model_dir):
  path = os.path.join(model_dir, instability.MANIFEST)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {model_dir} is not an instability experiment yet. Run the "
        f"instability job first (--job=instability), then --job=evaluate, then --job=report.")
  return rundirs.read_json(path)


def load_metrics(model_dir, manifest):
  """The metrics of every pair in the manifest that the evaluator has finished, in its order."""
  finished = []
  for pair in manifest.get("pairs", []):
    # The evaluator writes metrics.json atomically, so one that exists is whole.
    path = os.path.join(model_dir, evaluator.PAIRS_DIR, pair["id"], evaluator.METRICS)
    if tf.io.gfile.exists(path):
      finished.append(rundirs.read_json(path))
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
          f"points; stable means instability_mean < {tables.STABLE_THRESHOLD_PP:g} pp.\n\n"
          + tables.to_markdown(agg))


@jobs.register("report")
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
  if tf.io.gfile.exists(os.path.join(model_dir, imp.RECORD)):
    return imp_report(model_dir, strategy, title)
  del strategy
  manifest = load_manifest(model_dir)
  total = len(manifest.get("pairs", []))
  metrics_list = load_metrics(model_dir, manifest)
  if not metrics_list:
    raise ValueError(f"The evaluator has not finished any of the {total} pairs in {model_dir} "
                     f"(no {evaluator.PAIRS_DIR}/<id>/{evaluator.METRICS} yet): "
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

  out_dir = os.path.join(model_dir, REPORT_DIR)
  files = []
  for name, fig in pictures.items():
    path = os.path.join(out_dir, name)
    rundirs.write_bytes_atomic(path, png_bytes(fig))
    files.append(path)
  path = os.path.join(out_dir, "instability.md")
  rundirs.write_text_atomic(path, markdown_report(agg, used, total, title))
  files.append(path)
  path = os.path.join(out_dir, "instability.csv")
  rundirs.write_text_atomic(path, tables.to_csv(agg))
  files.append(path)

  print("\n".join(summary_lines(agg, used, total, title)), flush=True)
  print("Wrote:\n" + "\n".join(f"  {f}" for f in files), flush=True)
  return {"files": files, "table": agg}


def imp_report(model_dir, strategy, title=None):
  """An IMP experiment: Table 2 and accuracy vs density, plus the instability report of each
  subnetwork experiment the evaluator has finished (DIR/instability/*)."""
  title = title or os.path.basename(os.path.normpath(model_dir))
  files = []
  for name in imp.sub_experiments(model_dir):
    try:
      result = report(os.path.join(model_dir, imp.INSTABILITY_DIR, name), strategy,
                      title=f"{title}: {name}")
    except ValueError as e:
      print(f"{name}: no instability report yet ({e})", flush=True)
      continue
    files += result["files"]
  summary = imp.summarize(model_dir, rundirs.read_json(os.path.join(model_dir, imp.RECORD)))
  files += _subnetwork_figures(model_dir, summary, title)
  rundirs.write_json_atomic(os.path.join(model_dir, "summary.json"), summary)
  out_dir = os.path.join(model_dir, REPORT_DIR)
  outputs = {"imp_levels.md": tables.imp_markdown(summary),
             "imp_levels.csv": tables.imp_csv(summary)}
  for name, text in outputs.items():
    rundirs.write_text_atomic(os.path.join(out_dir, name), text)
    files.append(os.path.join(out_dir, name))
  path = os.path.join(out_dir, "accuracy_vs_density.png")
  rundirs.write_bytes_atomic(path, png_bytes(figures.accuracy_vs_density(summary, title)))
  files.append(path)
  print(f"Table 2 row, {title}:", flush=True)
  for line in imp.table_lines(summary):
    print("  " + line, flush=True)
  extreme = summary["extreme_sparsity"]
  print("Extreme sparsity (Appendix A): " + (
      f"{100 * extreme['density']:.1f}% of weights (level {extreme['level']}, "
      f"k = {extreme['rewind_step']})" if extreme else "no level is matching"), flush=True)
  print("Wrote:\n" + "\n".join(f"  {f}" for f in files), flush=True)
  return {"files": files, "summary": summary}


def _subnetwork_figures(model_dir, summary, title):
  """Figures 5 to 8 for each level whose subnetworks had instability experiments."""
  by_level = {}
  for name in imp.sub_experiments(model_dir):
    variant, _, rest = name.partition("-level")
    sub_dir = os.path.join(model_dir, imp.INSTABILITY_DIR, name)
    for metrics in load_metrics(sub_dir, load_manifest(sub_dir)):
      if metrics["variant"] == "standard":  # the copies trained to T; reset is Figure 4's
        by_level.setdefault(int(rest[:2]), []).append(dict(metrics, variant=variant))
  full = summary["levels"][0]["test_accuracy"] if summary["levels"] else {}
  reference = None
  if "imp" in full:
    sd = summary["levels"][0]["test_accuracy_sd"]["imp"]
    reference = (100.0 - full["imp"], sd)
  files = []
  out_dir = os.path.join(model_dir, REPORT_DIR)
  density_of = {l["level"]: l["density"] for l in summary["levels"]}
  medians = {density_of[level]: tables.first_k_medians(m, summary["full_network_accuracy"])
             for level, m in by_level.items() if level in density_of}
  try:
    fig = figures.figure9_first_k(medians, title)
  except ValueError as e:
    print(f"Figure 9 not drawn: {e}", flush=True)
  else:
    path = os.path.join(out_dir, "figure9_first_k.png")
    rundirs.write_bytes_atomic(path, png_bytes(fig))
    files.append(path)
  for level, metrics_list in sorted(by_level.items()):
    agg = tables.aggregate(metrics_list)
    density = next(l["density"] for l in summary["levels"] if l["level"] == level)
    heading = f"{title}: {100 * density:.1f}% of weights remain (level {level})"
    pictures = {}
    curves = tables.interpolation_curves(metrics_list)
    first_k = min(k for v in curves.values() for by_k in v.values() for k in by_k)
    pictures["figure5_interpolation"] = figures.subnetworks_interpolation(
        curves, "test", first_k, f"{heading}, k = {first_k}")
    pictures["figure6_instability"] = figures.subnetworks_vs_k(
        agg, "test", "instability", "test instability (pp)", heading, stable_line=True)
    pictures["figure7_test_error"] = figures.subnetworks_vs_k(
        agg, "test", "endpoint_error", "test error (%)", heading, reference)
    if any("train" in by_split for by_split in agg.values()):
      pictures["figure8_train_error"] = figures.subnetworks_vs_k(
          agg, "train", "endpoint_error", "train error (%)", heading)
    for name, fig in pictures.items():
      path = os.path.join(out_dir, f"{name}_level{level:02d}.png")
      rundirs.write_bytes_atomic(path, png_bytes(fig))
      files.append(path)
  return files
