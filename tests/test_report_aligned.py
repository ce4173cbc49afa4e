"""The report of naive and aligned pairs (issue 15) and the width study, on fabricated metrics
files (no training): 2 pairs from different inits, naive and weight-matched, each with BN
statistics interpolated and reset; and 3 such experiments at widths ×1, ×2, ×4."""

import csv
import io
import json
import math
import os

import gin
import matplotlib
import matplotlib.image
import numpy as np
import pytest

from lmc_tf import layout
from lmc_tf.experiments import report
from lmc_tf.reporting import aligned_figures
from lmc_tf.reporting import aligned_tables
from lmc_tf.reporting import bn_figures
from lmc_tf.reporting import figures
from lmc_tf.reporting import width_study

matplotlib.use("Agg")

ALPHAS = np.linspace(0.0, 1.0, 30)
WM = "weight_matching"
KEYS = ((None, "interpolate"), (None, "reset"), (WM, "interpolate"), (WM, "reset"))
PAIRS = ("inits-pair0", "inits-pair1")
# Hand-made test-set instabilities per key over the 2 pairs, at width ×1; train has half of
# each, loss barriers are 0.05 × the instability, and a width w divides them all by w.
#   naive interpolated: mean 32, sd 2√2; naive reset: 21, √2;
#   aligned interpolated: 12, 2√2; aligned reset: 2, √2 (stable at width ×2 and above).
TEST_INSTABILITY = {KEYS[0]: (30.0, 34.0), KEYS[1]: (20.0, 22.0),
                    KEYS[2]: (10.0, 14.0), KEYS[3]: (1.0, 3.0)}
# The permutation found per pair: 1 s and 30 of 100 units moved; 3 s and 50 of 100.
ALIGNMENT = ({"method": WM, "sweeps": 3, "changed_units": 30, "units": 100, "seconds": 1.0},
             {"method": WM, "sweeps": 4, "changed_units": 50, "units": 100, "seconds": 3.0})


def _split(instability, endpoint_error):
  bump = 1.0 - (2.0 * ALPHAS - 1.0) ** 2
  return {"errors": (endpoint_error + instability * bump).tolist(),
          "losses": (0.1 + 0.05 * instability * bump).tolist(),
          "instability": instability, "loss_barrier": 0.05 * instability,
          "stable": instability < 2.0, "endpoint_error_mean": endpoint_error}


def _metrics(key, index, width=1.0):
  align, mode = key
  metrics = {"id": PAIRS[index], "variant": "inits", "rewind_step": 0, "init_seed": index,
             "pair": index, "alphas": ALPHAS.tolist()}
  if mode != layout.DEFAULT_BN_MODE:
    metrics["bn_mode"] = mode
  if align is not None:
    metrics["align"] = align
  test = TEST_INSTABILITY[key][index] / width
  metrics["train"] = _split(test / 2, 1.0 + index)
  metrics["test"] = _split(test, 8.0 + index)
  metrics["distances"] = {"l2": 3.0, "cosine": 0.02}
  if align is not None:
    metrics["alignment"] = ALIGNMENT[index]
  return metrics


def make_experiment(directory, keys=KEYS, width=1.0, config=None, record=None):
  """An inits experiment of 2 pairs with metrics for every key of `keys`; `config` is the
  operative_config.gin text and `record` experiment.json, if given."""
  os.makedirs(directory, exist_ok=True)
  pairs = []
  for index, pid in enumerate(PAIRS):
    pairs.append({"id": pid, "variant": "inits", "rewind_step": 0, "init_seed": index,
                  "pair": index, "copies": [f"runs/net-{index}", f"runs/net-{index + 1}"]})
    os.makedirs(os.path.join(directory, "pairs", pid))
    for key in keys:
      with open(layout.metrics(directory, pid, key[1], key[0]), "w") as f:
        json.dump(_metrics(key, index, width), f)
  with open(layout.manifest(directory), "w") as f:
    json.dump({"rewind_steps": [0], "num_alphas": 30, "every_epoch": False,
               "variants": ["inits"], "pairs": pairs}, f)
  if config is not None:
    with open(layout.operative_config(directory), "w") as f:
      f.write(config)
  if record is not None:
    with open(layout.experiment_record(directory), "w") as f:
      json.dump(record, f)


def _run(console, directory, **kwargs):
  result = report.report(str(directory), None, title="ResNet-20", **kwargs)
  return result, console()


def _names(result, directory):
  return sorted(os.path.relpath(f, os.path.join(directory, "report")) for f in result["files"])


def _described(fig, dpi=None):
  """What a figure shows, as bytes: its size, titles, axes, and every line's and band's data,
  colour, style and label (rendering is what takes the time; a few tests render)."""
  parts = [fig.get_size_inches().tolist(), fig.get_suptitle()]
  for ax in fig.axes:
    parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale(), ax.get_xlim()]
    for line in ax.get_lines():
      parts += [line.get_label(), line.get_color(), line.get_linestyle(),
                np.round(line.get_xydata(), 9).tolist()]
    parts += [np.round(c.get_paths()[0].vertices, 9).tolist() for c in ax.collections
              if c.get_paths()]
  for legend in fig.legends:
    parts += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
  return "\n".join(map(repr, parts)).encode()


@pytest.fixture
def unrendered(monkeypatch):
  """Figures drawn and described (`_described`), not rendered."""
  monkeypatch.setattr(figures, "png_bytes", _described)


_RENDER = figures.png_bytes


def _assert_renders(fig):
  image = matplotlib.image.imread(io.BytesIO(_RENDER(fig)))
  assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300


PAPER_FILES = ["figure2_interpolation.png", "figure3_instability.png", "instability.csv",
               "instability.md"]
BN_FILES = ["bn_modes.csv", "bn_modes.md", "bn_modes_instability.png", "bn_modes_k0.png",
            "figure3_instability_reset.png"]
ALIGNED_FILES = ["aligned.csv", "aligned.md", "aligned_k0.png", "pairs/inits-pair0.png",
                 "pairs/inits-pair1.png"]


# --- tables --------------------------------------------------------------------------------------


def test_barriers_per_alignment_and_mode_are_the_hand_computed_means():
  by_key = {key: [_metrics(key, i) for i in (0, 1)] for key in reversed(KEYS)}
  agg = aligned_tables.aggregate(by_key)
  assert list(agg) == list(KEYS)  # the naive first, each alignment's modes in order
  naive = agg[None, "interpolate"]["inits"]["test"][0]
  assert naive["samples"] == 2
  assert naive["instability_mean"] == pytest.approx(32.0)
  assert naive["instability_sd"] == pytest.approx(2 * math.sqrt(2))
  assert naive["loss_barrier_mean"] == pytest.approx(1.6)
  assert naive["alignment_samples"] == 0 and naive["alignment_seconds_mean"] is None
  aligned = agg[WM, "reset"]["inits"]["test"][0]
  assert aligned["instability_mean"] == pytest.approx(2.0)
  assert aligned["instability_sd"] == pytest.approx(math.sqrt(2))
  assert aligned["loss_barrier_mean"] == pytest.approx(0.1)
  assert aligned["loss_barrier_sd"] == pytest.approx(0.05 * math.sqrt(2))
  assert aligned["alignment_seconds_mean"] == pytest.approx(2.0)
  assert aligned["changed_fraction_mean"] == pytest.approx(0.4)

  lines = aligned_tables.to_markdown(agg).splitlines()
  assert len(lines) == 2 + 2 * 4  # header, rule, (train, test) × 4 keys
  assert lines[0] == ("| variant | split | rewind_step | alignment | BN statistics | samples | "
                      "instability | loss_barrier | endpoint_error | stable | alignment seconds "
                      "| changed units (fraction) |")
  assert ("| inits | test | 0 | naive | interpolated | 2 | 32.00 ± 2.83 | 1.60 ± 0.14 | "
          "8.50 ± 0.71 | no |  |  |") in lines
  assert ("| inits | test | 0 | aligned (weight matching) | reset | 2 | 2.00 ± 1.41 | "
          "0.10 ± 0.07 | 8.50 ± 0.71 | no | 2.00 | 0.400 |") in lines
  parsed = list(csv.DictReader(io.StringIO(aligned_tables.to_csv(agg))))
  assert tuple(parsed[0]) == aligned_tables.COLUMNS
  assert [(r["split"], r["align"], r["bn_mode"]) for r in parsed[:4]] == [
      ("train", "naive", "interpolate"), ("train", "naive", "reset"),
      ("train", WM, "interpolate"), ("train", WM, "reset")]
  row = parsed[-1]
  assert row == {"variant": "inits", "split": "test", "rewind_step": "0", "align": WM,
                 "bn_mode": "reset", "samples": "2", "instability_mean": "2.00",
                 "instability_sd": "1.41", "loss_barrier_mean": "0.10",
                 "loss_barrier_sd": "0.07", "endpoint_error_mean": "8.50",
                 "endpoint_error_sd": "0.71", "stable": "false", "alignment_samples": "2",
                 "alignment_seconds_mean": "2.00", "changed_fraction_mean": "0.400"}


def test_width_comes_from_the_operative_config_then_experiment_json_then_1():
  assert width_study.width_of("# Parameters for resnet_cifar:\n"
                              "resnet_cifar.width_multiplier = 4\n") == 4.0
  assert width_study.width_of("resnet_cifar.depth = 20\nvgg.width_multiplier = 0.5\n") == 0.5
  record = {"job": "inits", "training": {"resnet_cifar": {"width_multiplier": 8}}}
  assert width_study.width_of("model.name = 'resnet20'\n", record) == 8.0
  assert width_study.width_of(None, {"job": "inits", "training": {}}) == 1.0
  assert width_study.width_text(0.25) == "×0.25"


# --- the job -------------------------------------------------------------------------------------


def test_report_of_naive_and_aligned_pairs(tmp_path, unrendered, console):
  directory = str(tmp_path / "exp")
  make_experiment(directory)
  result, out = _run(console, directory)
  assert _names(result, directory) == sorted(PAPER_FILES + BN_FILES + ALIGNED_FILES)
  with open(os.path.join(directory, "report", "aligned.csv")) as f:
    parsed = list(csv.DictReader(f))
  means = {(r["split"], r["align"], r["bn_mode"]): float(r["instability_mean"])
           for r in parsed}
  for (align, mode), values in TEST_INSTABILITY.items():
    assert means["test", align or "naive", mode] == pytest.approx(np.mean(values))
    assert means["train", align or "naive", mode] == pytest.approx(np.mean(values) / 2)
  with open(os.path.join(directory, "report", "aligned.md")) as f:
    markdown = f.read()
  assert ("naive, BN statistics: interpolated 2 of 2, naive, BN statistics: reset 2 of 2, "
          "aligned (weight matching), BN statistics: interpolated 2 of 2") in markdown
  assert result["aligned"][WM]["reset"]["inits"]["test"][0]["instability_mean"] == 2.0
  assert result["table"]["inits"]["test"][0]["instability_mean"] == 32.0
  assert "Instability of ResNet-20 (aligned (weight matching), BN statistics: reset): " \
         "2 of 2 pairs evaluated" in out
  assert "k =      0:   2.00 ±  1.41 pp  (n = 2)  stable: no" in out


def test_aligned_figures_name_naive_and_aligned_with_the_bn_statistics():
  """The mean ± sd curves at one k and one pair's curves; both render to PNG."""
  by_key = {key: [_metrics(key, i) for i in (0, 1)] for key in KEYS}
  fig = bn_figures.modes_interpolation(aligned_tables.curves(by_key), "inits", 0, "ResNet-20")
  assert [t.get_text() for t in fig.legends[0].get_texts()] == [
      "naive, BN statistics: interpolated", "naive, BN statistics: reset",
      "aligned (weight matching), BN statistics: interpolated",
      "aligned (weight matching), BN statistics: reset"]
  assert "naive and aligned" in fig.get_suptitle()
  assert "different inits" in fig.get_suptitle()
  # Naive dashed, aligned solid, in the BN mode's colour.
  lines = fig.axes[0].get_lines()
  assert [l.get_linestyle() for l in lines] == ["--", "--", "-", "-"]
  assert lines[0].get_color() == lines[2].get_color()
  _assert_renders(fig)
  fig = aligned_figures.pair_interpolation(aligned_tables.pair_curves(by_key, PAIRS[1]),
                                           PAIRS[1], "ResNet-20")
  labels = [t.get_text() for t in fig.legends[0].get_texts()]
  assert labels[3] == ("aligned (weight matching), BN statistics: reset: instability "
                       "test 3.00, train 1.50 pp")
  assert "pair inits-pair1" in fig.get_suptitle()
  _assert_renders(fig)


def test_aligned_files_beside_change_nothing_of_the_naive_outputs(tmp_path, unrendered, console):
  naive = [k for k in KEYS if k[0] is None]
  outputs = {}
  for name, keys in (("naive", naive), ("both", KEYS), ("default", naive[:1])):
    make_experiment(str(tmp_path / name), keys)
    outputs[name] = _run(console, tmp_path / name)
  assert _names(outputs["default"][0], str(tmp_path / "default")) == PAPER_FILES
  assert outputs["default"][0]["aligned"] == {}
  assert "aligned (" not in outputs["default"][1]
  for name in PAPER_FILES + BN_FILES:
    with open(tmp_path / "naive" / "report" / name, "rb") as f:
      alone = f.read()
    with open(tmp_path / "both" / "report" / name, "rb") as f:
      assert f.read() == alone, name
  for name in PAPER_FILES:
    with open(tmp_path / "default" / "report" / name, "rb") as f:
      assert f.read() == open(tmp_path / "naive" / "report" / name, "rb").read(), name
  with open(tmp_path / "naive" / "report" / "bn_modes.md") as f:
    assert "| inits | test | 0 | reset | 2 | 21.00 ± 1.41 |" in f.read()


def test_a_damaged_or_mislabelled_aligned_file_is_left_out(tmp_path, unrendered, console):
  make_experiment(str(tmp_path))
  damaged = layout.metrics(str(tmp_path), PAIRS[1], "reset", WM)
  with open(damaged, "w") as f:
    f.write('{"id": ')
  mislabelled = layout.metrics(str(tmp_path), PAIRS[0], "interpolate", WM)
  with open(mislabelled, "w") as f:
    json.dump(_metrics((None, "interpolate"), 0), f)  # no "align": copy B as trained
  result, out = _run(console, tmp_path, pair_figures=1)
  assert damaged in out
  assert "left out of aligned (weight matching), BN statistics: reset" in out
  assert f"{mislabelled} says it holds alignment None" in out
  assert result["aligned"][WM]["reset"]["inits"]["test"][0]["samples"] == 1
  assert result["aligned"][WM]["interpolate"]["inits"]["test"][0]["samples"] == 1
  assert "pairs/inits-pair1.png" not in _names(result, str(tmp_path))  # report.pair_figures
  assert "1 more pairs with aligned curves have no figure of their own" in out


def test_barrier_vs_width_over_three_experiments(tmp_path, unrendered, console):
  """×1 binds no width, ×2 says it in its operative config, ×4 in experiment.json only."""
  dirs = [str(tmp_path / f"r20_x{w}") for w in (1, 2, 4)]
  make_experiment(dirs[2], width=4.0, config="model.name = 'resnet20'\n",
                  record={"job": "inits", "training": {"resnet_cifar": {"width_multiplier": 4}}})
  make_experiment(dirs[0], width=1.0, config="model.name = 'resnet20'\n")
  make_experiment(dirs[1], width=2.0, config="resnet_cifar.width_multiplier = 2\n")
  study = tmp_path / "study"
  gin.parse_config(f"report.compare = {dirs!r}")
  result, out = _run(console, study)
  assert _names(result, str(study)) == ["barrier_vs_width.csv", "barrier_vs_width.md",
                                        "barrier_vs_width.png"]
  assert "r20_x1 at ×1, r20_x2 at ×2, r20_x4 at ×4" in out
  fig = aligned_figures.barrier_vs_width(result["width_study"], "inits", 0, "ResNet-20")
  assert [a.get_xscale() for a in fig.axes] == ["log"] * 4
  assert [a.get_ylabel() for a in fig.axes] == ["error barrier (pp)", "loss barrier"] * 2
  assert [a.get_title() for a in fig.axes] == ["test set"] * 2 + ["train set"] * 2
  wm = next(l for l in fig.axes[0].get_lines()
            if l.get_label() == "aligned (weight matching), BN statistics: interpolated")
  assert wm.get_xydata().tolist() == [[1.0, 12.0], [2.0, 6.0], [4.0, 3.0]]
  _assert_renders(fig)
  assert sorted(result["width_study"]) == [1.0, 2.0, 4.0]
  with open(study / "report" / "barrier_vs_width.csv") as f:
    parsed = list(csv.DictReader(f))
  assert len(parsed) == 3 * 2 * 4  # widths × splits × keys
  series = [(r["width"], float(r["instability_mean"]), float(r["loss_barrier_mean"]))
            for r in parsed if (r["split"], r["align"], r["bn_mode"]) == (
                "test", WM, "interpolate")]
  assert series == [("1", 12.0, 0.6), ("2", 6.0, 0.3), ("4", 3.0, 0.15)]
  x4 = next(r for r in parsed if (r["width"], r["split"], r["align"], r["bn_mode"]) == (
      "4", "test", WM, "reset"))
  assert x4["experiments"] == "r20_x4" and x4["instability_sd"] == "0.35"
  assert x4["stable"] == "true" and x4["changed_fraction_mean"] == "0.400"
  with open(study / "report" / "barrier_vs_width.md") as f:
    markdown = f.read()
  assert ("| ×2 | r20_x2 | inits | test | 0 | aligned (weight matching) | interpolated | 2 | "
          "6.00 ± 1.41 | 0.30 ± 0.07 |") in markdown

  # Reported from one of the experiments, the study includes it, and it is reported as usual.
  gin.clear_config()
  result, _ = _run(console, dirs[0], compare=dirs[1:])
  names = _names(result, dirs[0])
  assert "barrier_vs_width.csv" in names and "aligned.md" in names
  assert sorted(result["width_study"]) == [1.0, 2.0, 4.0]
