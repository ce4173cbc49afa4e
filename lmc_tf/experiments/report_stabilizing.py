"""The Stabilizing paper's report of an IMP experiment: what its summary can draw.

  stabilizing_figure3.{md,csv}          Figures 3 and 10 (at k = 0), ours beside the paper's;
  stabilizing_stability_vs_k.csv        every level and k measured;
  stabilizing_figure4_l2_vs_k.png       Figure 4, and stabilizing_figure11_angle_vs_k.png;
  stabilizing_figure5_reset_vs_rewound.png   with IMP at k = 0 and a later k;
  stabilizing_figure9_imp_reinit_snip.png    with random reinitialization or SNIP.
"""

from lmc_tf.reporting import stabilizing_figures
from lmc_tf.reporting import stabilizing_reference
from lmc_tf.reporting import stabilizing_tables


def outputs(summary, row, title, rewind_step=None):
  """{file name: text or Figure} of what `summary` (IMP's summary.json) supports.

  Args:
    row: the paper's row ('lenet', 'resnet20_standard', ... 'vgg19_warmup') whose numbers sit
      beside ours.
    rewind_step: Figure 5's rewound k (the largest k above 0 if None).
  """
  stabilizing_reference.check_row(row)
  out = {}
  if summary.get("stability"):
    out["stabilizing_figure3.md"] = stabilizing_tables.figure3_markdown(summary, row)
    out["stabilizing_figure3.csv"] = stabilizing_tables.figure3_csv(summary, row)
    out["stabilizing_stability_vs_k.csv"] = stabilizing_tables.stability_vs_k_csv(summary)
    out["stabilizing_figure4_l2_vs_k.png"] = stabilizing_figures.stability_vs_k(
        summary, "l2", title)
    out["stabilizing_figure11_angle_vs_k.png"] = stabilizing_figures.stability_vs_k(
        summary, "angle_deg", title)
  levels = summary.get("levels") or []
  if len(summary.get("rewind_steps", [])) > 1 and 0 in summary["rewind_steps"] and any(
      l["level"] > 0 for l in levels):
    out["stabilizing_figure5_reset_vs_rewound.png"] = stabilizing_figures.reset_vs_rewound(
        summary, rewind_step, title)
  if any(v in l["test_accuracy"] for l in levels for v in ("random_reinit", "snip")):
    out["stabilizing_figure9_imp_reinit_snip.png"] = stabilizing_figures.imp_vs_baselines(
        summary, title)
  return out
