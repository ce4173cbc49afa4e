"""The Stabilizing paper's tables and figures, on hand-made IMP summaries (no training)."""

import csv
import io

import pytest

from lmc_tf.experiments import report_stabilizing
from lmc_tf.reporting import figures
from lmc_tf.reporting import stabilizing_figures
from lmc_tf.reporting import stabilizing_reference as reference
from lmc_tf.reporting import stabilizing_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _s(mean, low, high, n):
  return {"mean": mean, "min": low, "max": high, "n": n}


def _entry(level, k, imp_l2=20.0, random_l2=60.0, with_random=True):
  variants = {"imp": {"data_order": {"l2": _s(imp_l2, imp_l2 - 1, imp_l2 + 2, 18),
                                     "angle_deg": _s(22.0, 21.0, 23.0, 18)},
                      "pruning": {"l2": _s(48.0, 47.5, 48.5, 3),
                                  "angle_deg": _s(53.0, 52.0, 54.0, 3)},
                      "test_accuracy": _s(98.3, 98.2, 98.4, 3)}}
  if with_random:
    variants["random_pruning"] = {"data_order": {"l2": _s(random_l2, 55.0, 62.0, 18),
                                                 "angle_deg": _s(49.0, 46.0, 52.0, 18)},
                                  "test_accuracy": _s(97.5, 97.2, 97.8, 3)}
  return {"level": level, "density": 0.8 ** level, "rewind_step": k, "variants": variants}


def _levels(baselines=False):
  out = []
  for level in range(4):
    acc = {"imp": 98.0 - 0.1 * level}
    if baselines and level:
      acc.update(random_reinit=97.0 - level, snip=97.5 - level)
    out.append({"level": level, "density": 0.8 ** level, "samples": 3, "test_accuracy": acc,
                "test_accuracy_sd": {v: 0.1 for v in acc},
                "imp_by_rewind_step": {"0": acc["imp"], "20": acc["imp"] + 0.05}})
  return out


def _summary(stability=(), rewind_steps=(0,), baselines=False):
  summary = {"full_network_accuracy": 98.0, "rewind_steps": list(rewind_steps),
             "rewind_step": rewind_steps[0], "levels": _levels(baselines),
             "extreme_sparsity": None}
  if stability:
    summary["stability"] = list(stability)
  return summary


def test_the_reference_holds_the_papers_seven_rows():
  assert len(reference.ROWS) == 7
  for key, rows in reference.STABILITY.items():
    assert set(rows) == set(reference.ROWS), key
  assert reference.STABILITY[("data_order", "l2")]["lenet"] == {"imp": (20.7, 0.6),
                                                                "random_pruning": (58.6, 4.0)}
  assert reference.STABILITY[("pruning", "angle_deg")]["vgg19_warmup"]["imp"] == (71.7, 0.3)
  assert reference.ACCURACY["vgg19_warmup"] == (92.3, 0.1)
  with pytest.raises(ValueError, match="known"):
    reference.check_row("resnet18")


def test_figure3_puts_ours_and_the_papers_in_their_cells():
  table = stabilizing_tables.figure3_markdown(_summary([_entry(10, 0), _entry(10, 25)]),
                                              "lenet")
  rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")
          for line in table.splitlines() if line.startswith("| stability") or
          line.startswith("| test")}
  data_order = rows["stability to data order, L2 distance"]
  assert data_order[1] == "20 [19, 22] (n = 18)" and data_order[2] == "60 [55, 62] (n = 18)"
  assert data_order[3] == "3.0x"  # ours: 60 / 20
  assert data_order[4:6] == ["20.7 ± 0.6", "58.6 ± 4"]
  assert data_order[6].startswith("2.8x")  # the paper's: 58.6 / 20.7
  pruning = rows["stability to pruning, L2 distance"]
  assert pruning[2] == "—" and pruning[3] == "—"  # random pruning has no pruning measure here
  assert "reset to k = 0" in table and "10.7% of weights remaining (level 10)" in table
  assert "paper (Figure 2) 98 ± 0.2 %" in table


def test_figure3_without_k0_says_which_k_and_without_a_row_shows_ours_only():
  table = stabilizing_tables.figure3_markdown(_summary([_entry(1, 25)]))
  assert "rewound to k = 25 (no k = 0" in table
  assert "58.6" not in table and "paper" not in table.split("\n")[-2]
  assert "No subnetwork" in stabilizing_tables.figure3_markdown(_summary())


def test_the_csvs_hold_every_measured_cell():
  summary = _summary([_entry(10, 0), _entry(10, 25)])
  lines = list(csv.DictReader(io.StringIO(stabilizing_tables.figure3_csv(summary, "lenet"))))
  ours = [l for l in lines if l["source"] == "ours"]
  assert len(ours) == 5 + 3  # IMP: 5 measures; random: data order x 2 and accuracy
  assert {l["source"] for l in lines} == {"ours", "paper"}
  by_k = list(csv.DictReader(io.StringIO(stabilizing_tables.stability_vs_k_csv(summary))))
  assert sorted({int(l["rewind_step"]) for l in by_k}) == [0, 25] and len(by_k) == 2 * 8


def test_stability_vs_k_draws_three_rows_per_level_sharing_y():
  entries = [_entry(level, k, imp_l2=30.0 - k / 10) for level in (5, 10) for k in (0, 25, 100)]
  fig = stabilizing_figures.stability_vs_k(_summary(entries), "l2", "LeNet")
  axes = [ax for ax in fig.axes if ax.get_visible()]
  assert len(axes) == 6
  grid = fig.axes[0].get_gridspec()
  assert (grid.nrows, grid.ncols) == (3, 2)
  top_left, top_right = fig.axes[0], fig.axes[1]
  assert top_left.get_ylim() == top_right.get_ylim()
  # IMP's data-order error bars: x includes k = 0, y the means.
  line = top_left.get_lines()[0]
  assert list(line.get_xdata()) == [0, 25, 100]
  assert list(line.get_ydata()) == [30.0, 27.5, 20.0]
  assert figures.png_bytes(fig).startswith(PNG_SIGNATURE)
  with pytest.raises(ValueError):
    stabilizing_figures.stability_vs_k(_summary(), "l2")


def test_figure5_and_figure9_need_their_data():
  fig = stabilizing_figures.reset_vs_rewound(_summary(rewind_steps=(0, 20)))
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert "IMP reset to k = 0" in labels and "IMP rewound to k = 20" in labels
  with pytest.raises(ValueError, match="k = 0 and a later k"):
    stabilizing_figures.reset_vs_rewound(_summary(rewind_steps=(0,)))
  fig = stabilizing_figures.imp_vs_baselines(_summary(baselines=True))
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert {"IMP", "random reinitialization", "SNIP"} <= set(labels)
  assert figures.png_bytes(fig).startswith(PNG_SIGNATURE)
  with pytest.raises(ValueError, match="baseline"):
    stabilizing_figures.imp_vs_baselines(_summary())


@pytest.mark.parametrize("kind,expected", [
    ("stability", {"stabilizing_figure3.md", "stabilizing_figure3.csv",
                   "stabilizing_stability_vs_k.csv", "stabilizing_figure4_l2_vs_k.png",
                   "stabilizing_figure11_angle_vs_k.png"}),
    ("rewinding", {"stabilizing_figure5_reset_vs_rewound.png"}),
    ("baselines", {"stabilizing_figure9_imp_reinit_snip.png"}),
    ("plain", set())])
def test_the_report_writes_what_the_summary_supports(kind, expected):
  summary = {"stability": _summary([_entry(1, 0)]),
             "rewinding": _summary(rewind_steps=(0, 20)),
             "baselines": _summary(baselines=True), "plain": _summary()}[kind]
  assert set(report_stabilizing.outputs(summary, "lenet", "LeNet")) == expected
  with pytest.raises(ValueError, match="stabilizing_row"):
    report_stabilizing.outputs(summary, "lenet5", "LeNet")


def test_imagenet_rows_have_our_numbers_only():
  table = stabilizing_tables.figure3_markdown(_summary([_entry(1, 0)]), "squeezenet_imagenet")
  assert "Squeezenet (ImageNet)" in table and "prints no numbers" in table
  assert "± 0.6" not in table and "Figure 2" not in table


def test_the_networks_table_puts_each_experiment_over_the_papers_row():
  summaries = [("lenet", _summary([_entry(10, 0)])), ("squeezenet_imagenet", _summary()),
               (None, _summary([_entry(1, 0)]))]
  table = stabilizing_tables.networks_markdown(summaries, "l2")
  lines = [l for l in table.splitlines() if l.startswith("| ") and "---" not in l][1:]
  assert lines[0].startswith("| Lenet | ours | 0 | 10.7% | 20 | 60 | 3.0x |")
  assert lines[1].startswith("| | paper | 0 | 10.7% | 20.7 ± 0.6 | 58.6 ± 4 | 2.8x |")
  assert lines[2].startswith("| Squeezenet (ImageNet) | ours | — |")  # no stability yet
  assert lines[3].startswith("| ? | ours | 0 | 80.0% |") and len(lines) == 4
  assert "22.7 ± 0.5" in stabilizing_tables.networks_markdown(summaries, "angle_deg")
