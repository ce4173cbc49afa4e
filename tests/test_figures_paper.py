"""The report's figures are fit for a paper (issue 17, item 6): every shaded band is named with
its n, panels of one quantity share y, no empty panel, the sparsest density has a tick, error
bars over inits, the paper's words in titles, PNGs at dpi >= 150. Small synthetic inputs."""

import struct

import numpy as np
import pytest

from lmc_tf.reporting import aligned_figures
from lmc_tf.reporting import bn_figures
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import figure_style
from lmc_tf.reporting import figures
from lmc_tf.reporting import imp_figures
from lmc_tf.reporting import stabilizing_figures
from lmc_tf.reporting import tables
from lmc_tf.reporting import width_study
from tests import test_report
from tests import test_report_aligned
from tests import test_report_bn_modes
from tests import test_report_stabilizing

ALPHAS = np.linspace(0.0, 1.0, 11)
STEPS = (0, 25, 100, 500, 2000)


def _metrics(step, pair, barrier):
  bump = 1.0 - (2.0 * ALPHAS - 1.0) ** 2

  def split(base):
    errors = base + 0.1 * pair + barrier * bump
    return {"errors": errors.tolist(), "losses": (0.1 + 0 * ALPHAS).tolist(),
            "instability": barrier, "loss_barrier": 0.0, "stable": barrier < 2,
            "endpoint_error_mean": base}

  return {"id": f"standard-k{step}-init0-pair{pair}", "variant": "standard",
          "rewind_step": step, "init_seed": 0, "pair": pair, "alphas": ALPHAS.tolist(),
          "test": split(2.0), "train": split(0.3)}


def _figure2_metrics(steps=STEPS, pairs=3):
  return [_metrics(k, p, 4.0 / (1 + i)) for i, k in enumerate(steps) for p in range(pairs)]


def _panels(fig):
  return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def _legend_texts(fig):
  legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
  return [t.get_text() for lg in legends for t in lg.get_texts()] + [
      lg.get_title().get_text() for lg in legends]


def _all_text(fig):
  texts = [fig.get_suptitle()] + _legend_texts(fig)
  for ax in fig.axes:
    texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
  return " ".join(texts)


def _assert_shared_y(axes):
  limits = {tuple(np.round(ax.get_ylim(), 9)) for ax in axes}
  assert len(limits) == 1, limits


def _assert_band_named(fig, n, things):
  assert any(f"mean ± sd over n={n} {things}" in t for t in _legend_texts(fig)), \
      _legend_texts(fig)


def _png_size(png):
  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("num, max_cols, shape", [(1, 4, (1, 1)), (4, 4, (1, 4)),
                                                  (5, 4, (2, 3)), (7, 4, (2, 4)),
                                                  (9, 4, (3, 3))])
def test_grid_shape_leaves_less_than_a_row_spare(num, max_cols, shape):
  assert figure_style.grid_shape(num, max_cols) == shape


def test_figure2_has_no_empty_panel_shares_y_and_names_the_band():
  fig = figures.figure2_interpolation(_figure2_metrics(), "standard", "LeNet / MNIST")
  panels = _panels(fig)
  assert len(panels) == len(STEPS)
  assert figure_style.empty_axes(fig) == []
  assert len(fig.axes) == 6  # 2 x 3: five panels and the legend's cell, no other
  _assert_shared_y(panels)
  _assert_band_named(fig, 3, "pairs")
  assert "standard" not in _all_text(fig)
  # The legend sits in the spare cell, inside the grid, not below it.
  legend_ax = next(ax for ax in fig.axes if not ax.axison)
  assert legend_ax.get_legend() is not None and not fig.legends


def test_figure2_without_a_spare_cell_puts_the_legend_under_the_panels():
  fig = figures.figure2_interpolation(_figure2_metrics(STEPS[:4]), "standard")
  assert len(fig.axes) == 4 and figure_style.empty_axes(fig) == []
  assert fig.legends
  _assert_band_named(fig, 3, "pairs")


def test_instability_figures_share_y_name_the_band_and_avoid_jargon():
  metrics = test_report._metrics_list(variants=("standard", "reset"), per_epoch=True)
  agg = tables.aggregate(metrics)
  fig3 = figures.figure3_instability(agg, "standard", "LeNet")
  _assert_band_named(fig3, 4, "pairs")
  fig4 = figures.figure4_reset(agg, "LeNet")
  _assert_shared_y(fig4.axes)
  _assert_band_named(fig4, 4, "pairs")
  figc = figures.appendix_c_per_epoch(metrics, "LeNet")
  _assert_shared_y(figc.axes)
  for fig in (fig3, fig4, figc):
    assert "standard" not in _all_text(fig)
    assert figure_style.empty_axes(fig) == []
  assert "rewind step k (iterations" in fig3.axes[0].get_xlabel()


def test_pngs_are_rendered_at_paper_resolution():
  fig = figures.figure3_instability(tables.aggregate(test_report._metrics_list()))
  assert figures.DPI >= 150
  width, _ = _png_size(figures.png_bytes(fig))
  assert width == pytest.approx(fig.get_size_inches()[0] * figures.DPI, abs=2)


@pytest.mark.parametrize("densities", [
    [100 * 0.8 ** l for l in range(15)],   # the sparsest off the regular stride
    [100 * 0.8 ** l for l in range(17)],
    [100, 80, 64],
    [3.5]])
def test_density_ticks_always_show_the_densest_and_the_sparsest(densities):
  ticks = figure_style.density_ticks(densities)
  assert ticks[0] == max(densities) and ticks[-1] == min(densities)
  assert len(ticks) <= 9
  assert ticks == sorted(ticks, reverse=True)


def _imp_summary(samples=3, levels=15, extreme=True):
  rows = []
  for l in range(levels):
    acc = {"imp": 98.1 + 0.03 * l}
    if l:
      acc.update(random_pruning=98 - 0.1 * l, snip=97.9 - 0.07 * l)
    rows.append({"level": l, "density": 0.8 ** l, "samples": samples, "test_accuracy": acc,
                 "test_accuracy_sd": {v: 0.1 if samples > 1 else 0.0 for v in acc},
                 "imp_by_rewind_step": {"0": acc["imp"]}})
  return {"full_network_accuracy": 98.08, "rewind_steps": [0], "rewind_step": 0,
          "levels": rows,
          "extreme_sparsity": ({"level": levels - 1, "density": 0.8 ** (levels - 1)}
                               if extreme else None)}


def test_accuracy_vs_density_ticks_the_sparsest_and_draws_error_bars_over_inits():
  summary = _imp_summary(samples=3)
  fig = imp_figures.accuracy_vs_density(summary, "LeNet / MNIST")
  ax = fig.axes[0]
  lowest = 100 * 0.8 ** 14
  assert any(np.isclose(t, lowest) for t in ax.get_xticks())
  assert min(ax.get_xlim()) < lowest < max(ax.get_xlim())
  bars = [c for c in ax.containers if c.has_yerr]
  assert len(bars) == 3  # IMP, random pruning, SNIP
  assert "±1 sd over n=3 inits" in ax.get_title()
  assert any("mean ± sd over n=3 inits" in t for t in _legend_texts(fig))
  labels = ax.get_legend_handles_labels()[1]
  assert "random pruning" in labels and "Rand Prune" not in labels


def test_accuracy_vs_density_of_one_init_has_no_error_bars_nor_band():
  fig = imp_figures.accuracy_vs_density(_imp_summary(samples=1, extreme=False))
  ax = fig.axes[0]
  assert not [c for c in ax.containers if c.has_yerr]
  assert not any("sd" in t for t in _legend_texts(fig))
  assert any(np.isclose(t, 100 * 0.8 ** 14) for t in ax.get_xticks())


def test_subnetwork_figures_name_the_band():
  metrics = [dict(m, variant=v) for v in ("imp", "random_pruning")
             for m in test_report._metrics_list()]
  agg = tables.aggregate(metrics)
  fig = imp_figures.subnetworks_vs_k(agg, "test", "instability", "test instability (pp)",
                                     "LeNet, 16.8%", stable_line=True)
  _assert_band_named(fig, 4, "pairs")
  assert "instability vs rewind step" in fig.axes[0].get_title()
  # Figure 7: the full network's error as a line, and as a band over n inits where n > 1.
  for n, band in ((3, ["full network: mean ± sd over n=3 inits"]), (1, [])):
    fig7 = imp_figures.subnetworks_vs_k(agg, "test", "endpoint_error", "test error (%)",
                                        "LeNet, 16.8%", reference=(2.0, 0.1, n))
    texts = _legend_texts(fig7)
    assert [t for t in texts if t.startswith("full network: ")] == band
    assert "full network (2.00%)" in texts
  fig5 = imp_figures.subnetworks_interpolation(tables.interpolation_curves(metrics), "test",
                                               0, "LeNet")
  _assert_band_named(fig5, 4, "pairs")


def test_bn_mode_figures_share_y_and_give_n():
  by_mode = test_report_bn_modes._by_mode()
  fig = bn_figures.modes_instability(bn_tables.aggregate(by_mode), "standard", "ResNet-20")
  _assert_shared_y(_panels(fig))
  _assert_band_named(fig, 2, "pairs")
  curves = {mode: bn_tables.curves(metrics) for mode, metrics in by_mode.items()}
  fig = bn_figures.modes_interpolation(curves, "standard", 0, "ResNet-20")
  _assert_shared_y(_panels(fig))
  _assert_band_named(fig, 2, "pairs")


def test_barrier_vs_width_shares_y_per_quantity():
  keys = test_report_aligned.KEYS
  by_width = {w: {key: [test_report_aligned._metrics(key, i, w) for i in (0, 1)]
                  for key in keys} for w in (1.0, 2.0, 4.0)}
  agg = width_study.aggregate(by_width)
  variant, step = width_study.drawn(agg)
  fig = aligned_figures.barrier_vs_width(agg, variant, step, "ResNet-20")
  axes = np.reshape(fig.axes, (-1, len(aligned_figures.BARRIERS)))
  for col in range(axes.shape[1]):
    _assert_shared_y(axes[:, col])
  _assert_band_named(fig, 2, "pairs")


def test_stabilizing_full_network_band_is_named():
  summary = test_report_stabilizing._summary(baselines=True)
  fig = stabilizing_figures.imp_vs_baselines(summary, "ResNet-20")
  assert any("mean ± sd over n=3 inits" in t for t in _legend_texts(fig))
  assert any(np.isclose(t, 100 * 0.8 ** 3) for t in fig.axes[0].get_xticks())
