"""The report of an experiment evaluated in several BN modes, with curves beyond [0, 1] and
refined peaks (issue 14), on fabricated metrics files (no training)."""

import contextlib
import csv
import io
import json
import math
import os
import shutil

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from lmc_tf import layout
from lmc_tf.experiments import report
from lmc_tf.reporting import bn_figures
from lmc_tf.reporting import bn_tables
from lmc_tf.reporting import figures

matplotlib.use("Agg")

ALPHAS = np.linspace(0.0, 1.0, 30)
SPACING = ALPHAS[1]
# evaluate.alpha_range = (-0.2, 1.2): the grid continued at its spacing, as the evaluator does.
EXTENDED = sorted([-j * SPACING for j in range(1, 6)] + ALPHAS.tolist()
                  + [1.0 + j * SPACING for j in range(1, 6)])
MODES = ("interpolate", "reset", "repair")
STEPS = (0, 25)

# Hand-made test-set instabilities per mode and k, over 2 pairs; train has half of each.
#   interpolate k = 0: mean 5.0, sd sqrt(2); reset k = 0: mean 2.5, sd sqrt(1/2);
#   repair k = 25: mean 0.3, sd sqrt(0.02) (stable).
TEST_INSTABILITY = {"interpolate": {0: [4.0, 6.0], 25: [1.0, 2.0]},
                    "reset": {0: [2.0, 3.0], 25: [0.5, 0.5]},
                    "repair": {0: [1.0, 2.0], 25: [0.2, 0.4]}}
ENDPOINT_SHIFT = {"interpolate": 0.0, "reset": 0.2, "repair": 0.1}
REFINED_GAIN = 0.25  # refined_instability = instability + this
PEAK_ALPHAS = (0.48, 0.52)


def _split(mode, instability, endpoint_error, pair, extended, refined):
  bump = 1.0 - (2.0 * ALPHAS - 1.0) ** 2
  result = {"errors": (endpoint_error + instability * bump).tolist(),
            "losses": (0.1 + 0.1 * instability * bump).tolist(),
            "instability": instability, "loss_barrier": 0.1 * instability,
            "stable": instability < 2.0, "endpoint_error_mean": endpoint_error}
  if extended:
    # Beyond the copies the error climbs 30 pp per unit of alpha.
    a = np.asarray(EXTENDED)
    result["extended_errors"] = (endpoint_error + instability * np.maximum(
        1.0 - (2.0 * a - 1.0) ** 2, 0.0) + 30.0 * np.maximum(np.maximum(-a, a - 1.0), 0.0)
                                 ).tolist()
    result["extended_losses"] = [0.1] * len(EXTENDED)
  if refined:
    result.update(peak_alpha=PEAK_ALPHAS[pair],
                  peak_error=endpoint_error + instability + REFINED_GAIN,
                  refined_instability=instability + REFINED_GAIN)
  return result


def _metrics(mode, step, pair, extended=False, refined=False):
  pid = f"standard-k{step}-init0-pair{pair}"
  test = TEST_INSTABILITY[mode][step][pair]
  shift = ENDPOINT_SHIFT[mode]
  metrics = {"id": pid, "variant": "standard", "rewind_step": step, "init_seed": 0,
             "pair": pair, "alphas": ALPHAS.tolist()}
  if mode != layout.DEFAULT_BN_MODE:
    metrics["bn_mode"] = mode
  if extended:
    metrics["alpha_range"] = [-0.2, 1.2]
    metrics["extended_alphas"] = EXTENDED
  metrics["train"] = _split(mode, test / 2, 1.0 + pair + shift, pair, extended, refined)
  metrics["test"] = _split(mode, test, 10.0 + pair + shift, pair, extended, refined)
  metrics["distances"] = {"l2": 3.0, "cosine": 0.02}
  return metrics


# Which extras each mode was measured with: the paper's none, reset a refined peak, REPAIR both.
EXTRAS = {"interpolate": {}, "reset": {"refined": True},
          "repair": {"extended": True, "refined": True}}


def make_experiment(directory, modes=MODES, extras=None):
  """2 rewind steps × 2 pairs, each pair's metrics in every mode of `modes`."""
  extras = EXTRAS if extras is None else extras
  pairs = []
  for step in STEPS:
    for pair in (0, 1):
      pid = f"standard-k{step}-init0-pair{pair}"
      pairs.append({"id": pid, "variant": "standard", "rewind_step": step, "init_seed": 0,
                    "pair": pair, "copies": [f"runs/copy-{pid}-a", f"runs/copy-{pid}-b"],
                    "parent": "runs/parent-0"})
      os.makedirs(os.path.join(directory, "pairs", pid))
      for mode in modes:
        with open(layout.metrics(directory, pid, mode), "w") as f:
          json.dump(_metrics(mode, step, pair, **extras.get(mode, {})), f)
  manifest = {"rewind_steps": list(STEPS), "num_inits": 1, "num_pairs": 2, "total_steps": 4000,
              "steps_per_epoch": 1000, "num_alphas": 30, "every_epoch": False,
              "variants": ["standard"], "pairs": pairs}
  with open(os.path.join(directory, "instability.json"), "w") as f:
    json.dump(manifest, f)


def _by_mode(modes=MODES):
  return {mode: [_metrics(mode, k, p, **EXTRAS[mode]) for k in STEPS for p in (0, 1)]
          for mode in modes}


def _assert_png_decodes(path):
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300


PAPER_FILES = ["figure2_interpolation.png", "figure3_instability.png", "instability.csv",
               "instability.md"]
BN_FILES = ["bn_modes.csv", "bn_modes.md", "bn_modes_instability.png", "bn_modes_k0.png",
            "bn_modes_k25.png", "figure3_instability_repair.png",
            "figure3_instability_reset.png"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
  """The report of the three-mode experiment, and of the same with only metrics.json:
  {name: (directory, the job's result, what it printed)}."""
  out = {}
  for name, modes in (("all", MODES), ("default", ("interpolate",))):
    directory = str(tmp_path_factory.mktemp(name))
    make_experiment(directory, modes)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      result = report.report(directory, None, title="LeNet")
    out[name] = directory, result, printed.getvalue()
  return out


def _run(directory, console):
  result = report.report(directory, None, title="LeNet")
  return result, console()


@pytest.fixture
def unrendered(monkeypatch):
  """Figures are drawn but not rendered: for tests of which files the job writes (rendering
  is what takes the time; test_report_of_three_modes renders every kind)."""
  monkeypatch.setattr(figures, "png_bytes", lambda fig, dpi=None: b"\x89PNG unrendered")


# --- tables --------------------------------------------------------------------------------------


def test_modes_in_order_and_named_apart_from_the_variant():
  assert bn_tables.mode_order(["repair", "zeta", "reset", "interpolate"]) == [
      "interpolate", "reset", "repair", "zeta"]
  assert [bn_tables.mode_label(m) for m in MODES] == [
      "BN statistics: interpolated", "BN statistics: reset", "BN statistics: REPAIR"]
  assert not bn_tables.has_extras(_by_mode()["interpolate"])
  assert bn_tables.has_extras(_by_mode()["reset"]) and bn_tables.has_extras(_by_mode()["repair"])


def test_barriers_per_mode_are_the_hand_computed_means():
  agg = bn_tables.aggregate(_by_mode(("repair", "interpolate", "reset")))
  assert list(agg) == list(MODES)
  paper = agg["interpolate"]["standard"]["test"][0]
  assert paper["samples"] == 2
  assert paper["instability_mean"] == pytest.approx(5.0)
  assert paper["instability_sd"] == pytest.approx(math.sqrt(2.0))
  assert paper["loss_barrier_mean"] == pytest.approx(0.5)
  assert paper["loss_barrier_sd"] == pytest.approx(0.1 * math.sqrt(2.0))
  assert paper["endpoint_error_mean"] == pytest.approx(10.5)
  assert paper["stable"] is False
  assert paper["refined_samples"] == 0 and paper["refined_instability_mean"] is None
  reset = agg["reset"]["standard"]["test"][0]
  assert reset["instability_mean"] == pytest.approx(2.5)
  assert reset["instability_sd"] == pytest.approx(math.sqrt(0.5))
  assert reset["endpoint_error_mean"] == pytest.approx(10.7)
  assert reset["refined_instability_mean"] == pytest.approx(2.75)
  assert reset["refined_instability_sd"] == pytest.approx(math.sqrt(0.5))
  assert reset["peak_alpha_mean"] == pytest.approx(0.5)
  assert reset["peak_alpha_sd"] == pytest.approx(math.sqrt(2) * 0.02)
  repair = agg["repair"]["standard"]["train"][25]
  assert repair["instability_mean"] == pytest.approx(0.15)
  assert repair["stable"] is True and repair["refined_samples"] == 2


def test_markdown_and_csv_put_the_modes_of_one_k_side_by_side():
  agg = bn_tables.aggregate(_by_mode())
  lines = bn_tables.to_markdown(agg).strip().splitlines()
  assert len(lines) == 2 + 2 * 2 * 3  # header, rule, (train, test) × (k = 0, 25) × 3 modes
  k0 = lines.index("| standard | test | 0 | interpolated | 2 | 5.00 ± 1.41 | 0.50 ± 0.14 | "
                   "10.50 ± 0.71 | no |  |  |")
  assert lines[k0 + 1] == ("| standard | test | 0 | reset | 2 | 2.50 ± 0.71 | 0.25 ± 0.07 | "
                           "10.70 ± 0.71 | no | 2.75 ± 0.71 | 0.500 ± 0.028 |")
  assert lines[k0 + 2].startswith("| standard | test | 0 | REPAIR | 2 | 1.50 ± 0.71 |")
  assert ("| standard | test | 25 | REPAIR | 2 | 0.30 ± 0.14 | 0.03 ± 0.01 | 10.60 ± 0.71 | yes "
          "| 0.55 ± 0.14 | 0.500 ± 0.028 |") in lines

  parsed = list(csv.DictReader(io.StringIO(bn_tables.to_csv(agg))))
  assert tuple(parsed[0]) == bn_tables.COLUMNS
  assert [(r["split"], r["rewind_step"], r["bn_mode"]) for r in parsed[:4]] == [
      ("train", "0", "interpolate"), ("train", "0", "reset"), ("train", "0", "repair"),
      ("train", "25", "interpolate")]
  row = next(r for r in parsed if (r["split"], r["rewind_step"], r["bn_mode"]) == (
      "test", "0", "reset"))
  assert row == {"variant": "standard", "split": "test", "rewind_step": "0", "bn_mode": "reset",
                 "samples": "2", "instability_mean": "2.50", "instability_sd": "0.71",
                 "loss_barrier_mean": "0.25", "loss_barrier_sd": "0.07",
                 "endpoint_error_mean": "10.70", "endpoint_error_sd": "0.71",
                 "stable": "false", "refined_samples": "2", "refined_instability_mean": "2.75",
                 "refined_instability_sd": "0.71", "peak_alpha_mean": "0.500",
                 "peak_alpha_sd": "0.028"}
  paper = next(r for r in parsed if r["bn_mode"] == "interpolate")
  assert paper["refined_samples"] == "0" and paper["refined_instability_mean"] == ""


def test_refined_columns_say_when_fewer_pairs_have_them():
  metrics = _by_mode(("reset",))
  del metrics["reset"][0]["test"]["refined_instability"]
  lines = bn_tables.to_markdown(bn_tables.aggregate(metrics)).splitlines()
  row = next(l for l in lines if l.startswith("| standard | test | 0 |"))
  assert row.endswith("| 3.25 ± 0.00 (n = 1) | 0.520 ± 0.000 (n = 1) |")
  # Without any refined peak, the Markdown has no empty columns for one (the CSV keeps them).
  plain = {"interpolate": _by_mode()["interpolate"]}
  assert "refined_instability" not in bn_tables.to_markdown(bn_tables.aggregate(plain))
  assert "refined_instability" in bn_tables.to_csv(bn_tables.aggregate(plain))


def test_curves_are_extended_where_every_pair_was_measured_beyond_the_copies():
  by_mode = _by_mode()
  repair = bn_tables.curves(by_mode["repair"])["standard"]["test"][0]
  assert repair["extended"] is True
  assert repair["alphas"] == pytest.approx(EXTENDED)
  assert repair["error_mean"][0] == pytest.approx(10.6 + 30 * 5 * SPACING)
  assert repair["error_mean"][EXTENDED.index(0.0)] == pytest.approx(10.6)
  assert [a for a, _ in repair["peaks"]] == [0.48, 0.52]
  assert [e for _, e in repair["peaks"]] == pytest.approx([11.35, 13.35])
  paper = bn_tables.curves(by_mode["interpolate"])["standard"]["test"][0]
  assert paper["extended"] is False and paper["peaks"] == []
  assert paper["alphas"] == pytest.approx(ALPHAS.tolist())
  # A pair without the extended curve (evaluated before alpha_range was set): [0, 1] only.
  del by_mode["repair"][1]["extended_alphas"]
  assert bn_tables.curves(by_mode["repair"])["standard"]["test"][0]["extended"] is False


# --- figures -------------------------------------------------------------------------------------


def test_mode_figures_name_the_modes_the_band_and_the_marks():
  by_mode = _by_mode()
  curves = {m: bn_tables.curves(metrics) for m, metrics in by_mode.items()}
  fig = bn_figures.modes_interpolation(curves, "standard", 0, title="LeNet")
  assert [a.get_title() for a in fig.axes] == ["test set", "train set"]
  assert fig.axes[0].get_xlim() == pytest.approx((EXTENDED[0], EXTENDED[-1]))
  legend = fig.legends[0]
  labels = [t.get_text() for t in legend.get_texts()]
  assert labels == ["BN statistics: interpolated", "BN statistics: reset",
                    "BN statistics: REPAIR", "α = 0 and 1: the copies",
                    "refined peak, one per pair"]
  assert legend.get_title().get_text().startswith("mean ± sd over n=2 pairs")
  assert "k = 0" in fig.get_suptitle() and "n = 2" in fig.get_suptitle()
  # Figure 4's variant is never called bare "reset" next to the BN mode.
  fig = bn_figures.modes_interpolation(
      {m: {"reset": c["standard"]} for m, c in curves.items()}, "reset", 0)
  assert "LR schedule restarted" in fig.get_suptitle()

  fig3 = bn_figures.modes_instability(bn_tables.aggregate(by_mode), title="LeNet")
  assert fig3.axes[0].get_xscale() == "symlog"
  assert [t.get_text() for t in fig3.legends[0].get_texts()] == labels[:3] + [
      "stable below (2 pp)"]
  with pytest.raises(ValueError, match="no BN mode"):
    bn_figures.modes_interpolation(curves, "standard", 100)


# --- the job -------------------------------------------------------------------------------------


def test_report_of_three_modes(reports):
  directory, result, out = reports["all"]
  names = sorted(os.path.basename(f) for f in result["files"])
  assert names == sorted(PAPER_FILES + BN_FILES)
  report_dir = os.path.join(directory, "report")
  for name in names:
    if name.endswith(".png"):
      _assert_png_decodes(os.path.join(report_dir, name))
  with open(os.path.join(report_dir, "bn_modes.csv")) as f:
    parsed = list(csv.DictReader(f))
  assert len(parsed) == 12
  means = {(r["split"], int(r["rewind_step"]), r["bn_mode"]): float(r["instability_mean"])
           for r in parsed}
  for mode, by_k in TEST_INSTABILITY.items():
    for k, values in by_k.items():
      assert means["test", k, mode] == pytest.approx(np.mean(values), abs=0.005)
      assert means["train", k, mode] == pytest.approx(np.mean(values) / 2, abs=0.005)
  with open(os.path.join(report_dir, "bn_modes.md")) as f:
    markdown = f.read()
  assert "interpolated 4 of 4, reset 4 of 4, REPAIR 4 of 4" in markdown
  assert list(result["bn_modes"]) == ["reset", "repair"]
  assert result["bn_modes"]["reset"]["standard"]["test"][0]["instability_mean"] == 2.5
  assert result["table"]["standard"]["test"][0]["instability_mean"] == 5.0

  assert "Instability of LeNet: 4 of 4 pairs evaluated" in out
  assert "Instability of LeNet (BN statistics: REPAIR): 4 of 4 pairs evaluated" in out
  assert "  standard / test (BN statistics: reset):" in out
  assert "k =      0:   2.50 ±  0.71 pp  (n = 2)  stable: no" in out


def test_the_papers_outputs_do_not_change_with_other_modes_beside_them(reports):
  directory, result, out = reports["default"]
  assert sorted(os.path.basename(f) for f in result["files"]) == PAPER_FILES
  assert result["bn_modes"] == {}
  assert "BN statistics" not in out
  for name in PAPER_FILES:
    with open(os.path.join(directory, "report", name), "rb") as f:
      alone = f.read()
    with open(os.path.join(reports["all"][0], "report", name), "rb") as f:
      beside = f.read()
    assert alone == beside, name


def test_extras_of_the_papers_mode_alone_get_the_barriers_table(tmp_path, console, unrendered):
  make_experiment(str(tmp_path), ("interpolate",), {"interpolate": {"refined": True}})
  result, _ = _run(str(tmp_path), console)
  names = {os.path.basename(f) for f in result["files"]}
  assert names == set(PAPER_FILES) | {"bn_modes.md", "bn_modes.csv", "bn_modes_k0.png",
                                      "bn_modes_k25.png", "bn_modes_instability.png"}
  with open(tmp_path / "report" / "bn_modes.md") as f:
    assert "| standard | test | 0 | interpolated | 2 | 5.00 ± 1.41 |" in f.read()


def test_other_modes_without_the_papers_and_a_damaged_file(tmp_path, console, unrendered):
  make_experiment(str(tmp_path), ("reset", "repair"))
  damaged = layout.metrics(str(tmp_path), "standard-k0-init0-pair1", "reset")
  with open(damaged, "w") as f:
    f.write('{"id": ')
  shutil.copy(layout.metrics(str(tmp_path), "standard-k0-init0-pair0", "reset"),
              layout.metrics(str(tmp_path), "standard-k0-init0-pair0", "repair") + ".tmp-1")
  result, out = _run(str(tmp_path), console)
  assert damaged in out and "left out of BN statistics: reset" in out
  names = {os.path.basename(f) for f in result["files"]}
  assert not names & set(PAPER_FILES)
  assert {"bn_modes.md", "figure3_instability_reset.png", "bn_modes_k0.png"} <= names
  assert result["table"] == {}
  assert result["bn_modes"]["reset"]["standard"]["test"][0]["samples"] == 1
  assert result["bn_modes"]["repair"]["standard"]["test"][0]["samples"] == 2
  assert "Instability of LeNet (BN statistics: reset): 4 of 4 pairs evaluated" not in out
  assert "Instability of LeNet (BN statistics: reset): 3 of 4 pairs evaluated" in out
