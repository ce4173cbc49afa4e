"""The paper's figures as TensorBoard series, in the experiment's TensorBoard run `experiment`.

  instability_vs_k/<split>           mean instability over the pairs at each k; step = k
                                     (with _lower / _upper: mean -/+ sd), one series per
                                     schedule (reset/...) and BN mode or alignment
  interpolation/<k>/<split>_error    the mean curve over the pairs at k; step = 1000 alpha
                                     (with _lower / _upper)

and a Custom Scalars layout that draws each as a line with its mean +/- sd margin. The run is
rebuilt from every pair's metrics at the end of each evaluate job (its old event files
removed first), so a rerun never doubles a point.
"""

import numpy as np
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar
import tensorflow as tf

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.training import summaries

RUN = "experiment"


def _groups(metrics_by_pair):
  """{(variant, k): [metrics of each pair]}, in order of variant then k."""
  groups = {}
  for metrics in metrics_by_pair.values():
    groups.setdefault((metrics["variant"], metrics["rewind_step"]), []).append(metrics)
  return dict(sorted(groups.items(), key=lambda item: (item[0][0] != "standard", item[0])))


def _stats(values):
  values = np.asarray(values, np.float64)
  sd = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(values[0])
  return values.mean(axis=0), sd


def _series(name, description, points, margin_chart_series):
  """Logs `points` [(step, mean, sd)] as name, name_lower and name_upper."""
  for step, mean, sd in points:
    for suffix, value in (("", mean), ("_lower", mean - sd), ("_upper", mean + sd)):
      tf.summary.scalar(name + suffix, float(value), step=int(step), description=description)
  margin_chart_series.append(layout_pb2.MarginChartContent.Series(
      value=name, lower=name + "_lower", upper=name + "_upper"))


def _write(metrics_by_key, splits, width):
  k_charts, curve_charts = [], {}
  for key, metrics_by_pair in metrics_by_key.items():
    groups = _groups(metrics_by_pair)
    variants = sorted({variant for variant, _ in groups}, key=lambda v: v != "standard")
    for split in splits:
      for variant in variants:
        prefix = "/".join((["reset"] if variant == "reset" else []) + layout.key_parts(*key))
        path, label = (f"{prefix}/", f" ({prefix})") if prefix else ("", "")
        mine = {k: group for (v, k), group in groups.items() if v == variant}
        series = []
        _series(f"instability_vs_k/{path}{split}",
                f"Instability on {split} (pp): mean over the pairs (n >= "
                f"{min(map(len, mine.values()))}) at each rewind step; _lower/_upper are mean "
                "-/+ sd. Step: the rewind step k.",
                [(k, *_stats([m[split]["instability"] for m in group]))
                 for k, group in mine.items()], series)
        k_charts.append(layout_pb2.Chart(
            title=f"Instability vs k, {split}{label}: mean ± sd over pairs",
            margin=layout_pb2.MarginChartContent(series=series)))
        for k, group in mine.items():
          mean, sd = _stats([m[split]["errors"] for m in group])
          series = []
          _series(f"interpolation/{path}{layout.rewind_name(k, width)}/{split}_error",
                  f"Mean {split} error (%) over the {len(group)} pair(s) at k = {k} along "
                  "(1 - alpha) W_A + alpha W_B; _lower/_upper are mean -/+ sd. Step: 1000 "
                  "alpha (0: copy A, 1000: copy B).",
                  [(summaries.alpha_step(a), m, s)
                   for a, m, s in zip(group[0]["alphas"], mean, sd)], series)
          curve_charts.setdefault(f"Interpolation, {split}{label}", []).append(
              layout_pb2.Chart(
                  title=f"k = {k}: {split} error along the path, mean ± sd over {len(group)} "
                        "pair(s); x = 1000 alpha",
                  margin=layout_pb2.MarginChartContent(series=series)))
  categories = [layout_pb2.Category(title="Instability vs rewind step k", chart=k_charts)]
  categories += [layout_pb2.Category(title=title, chart=charts, closed=True)
                 for title, charts in curve_charts.items()]
  tf.summary.experimental.write_raw_pb(
      custom_scalar.pb(layout_pb2.Layout(category=categories)).SerializeToString(), step=0)


def write(model_dir, manifest, metrics_by_key, splits):
  """Rebuilds the experiment's TensorBoard run `experiment` from every evaluated pair's
  metrics ({(align, BN mode): {pair id: metrics}}); returns its directory."""
  target = layout.tensorboard_run(model_dir, RUN)
  metrics_by_key = {key: m for key, m in metrics_by_key.items() if m}
  if not metrics_by_key:
    return None
  for name in files.listdir(target):  # derived data: rebuilt whole, never appended to
    tf.io.gfile.remove(files.join(target, name))
  writer = tf.summary.create_file_writer(target)
  with writer.as_default():
    _write(metrics_by_key, splits, layout.rewind_width(manifest))
  writer.close()
  return target
