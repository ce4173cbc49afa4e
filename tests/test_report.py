"""The `report` job and the reporting functions, on a synthetic experiment (no training)."""

import csv
import io
import json
import math
import os

import numpy as np
import pytest

from lmc_tf import jobs
from lmc_tf.experiments import report
from lmc_tf.reporting import figures
from lmc_tf.reporting import tables
from lmc_tf import files

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALPHAS = np.linspace(0.0, 1.0, 30)

# Hand-made test-set instabilities, per rewind step, over 2 inits × 2 pairs:
#   k = 0:  mean 3.0, sd sqrt(10/3), median 3.0 → unstable;
#   k = 25: mean 1.0, sd sqrt(1/6),  median 1.0 → stable.
TEST_INSTABILITY = {0: [1.0, 2.0, 4.0, 5.0], 25: [0.5, 1.5, 1.0, 1.0]}
TRAIN_INSTABILITY = {0: [2.0, 2.0, 2.0, 2.0], 25: [0.0, 0.2, 0.4, 0.6]}


def _split(instability, endpoint_error, loss_barrier):
  """A split's result whose error curve has the given barrier at α = ½."""
  bump = 1.0 - (2.0 * ALPHAS - 1.0) ** 2
  errors = endpoint_error + instability * bump
  return {"errors": errors.tolist(), "losses": (0.1 + loss_barrier * bump).tolist(),
          "instability": instability, "loss_barrier": loss_barrier,
          "stable": instability < 2.0, "endpoint_error_mean": endpoint_error}


def _pair_id(variant, step, init, pair):
  return f"{variant}-k{step}-init{init}-pair{pair}"


def _metrics(variant, step, init, pair, index, per_epoch):
  metrics = {"id": _pair_id(variant, step, init, pair), "variant": variant, "rewind_step": step,
             "init_seed": init, "pair": pair, "alphas": ALPHAS.tolist(),
             "test": _split(TEST_INSTABILITY[step][index], 10.0 + index, 0.1 * index),
             "train": _split(TRAIN_INSTABILITY[step][index], 1.0 + index, 0.05),
             "distances": {"l2": 3.0, "cosine": 0.02, "angle_deg": 11.5, "disagreements": 120,
                           "loss_l2": 4.2, "l2_init_to_k": 0.5, "l2_k_to_T": [7.0, 7.1]}}
  if per_epoch:
    # Instability falls over the copies' training, from the final value + 3 pp to it.
    metrics["per_epoch"] = [
        {"epoch": e, "step": 1000 * e,
         "train": {"instability": TRAIN_INSTABILITY[step][index] + 3.0 / e},
         "test": {"instability": TEST_INSTABILITY[step][index] + 3.0 / e}}
        for e in (1, 2, 3, 4)]
  return metrics


def make_experiment(directory, variants=("standard",), per_epoch=False, evaluated=None):
  """A fake instability experiment: 2 rewind steps × 2 inits × 2 pairs per variant.

  Args:
    evaluated: how many pairs (in manifest order) have a metrics.json; all if None.

  Returns:
    The metrics dicts written.
  """
  pairs, written = [], []
  for variant in variants:
    for step in (0, 25):
      for init in (0, 1):
        for pair in (0, 1):
          pid = _pair_id(variant, step, init, pair)
          pairs.append({"id": pid, "variant": variant, "rewind_step": step, "init_seed": init,
                        "pair": pair, "copies": [f"runs/copy-{pid}-a", f"runs/copy-{pid}-b"],
                        "parent": f"runs/parent-{init}"})
          if evaluated is None or len(pairs) <= evaluated:
            metrics = _metrics(variant, step, init, pair, 2 * init + pair, per_epoch)
            os.makedirs(os.path.join(directory, "pairs", pid))
            with open(os.path.join(directory, "pairs", pid, "metrics.json"), "w") as f:
              json.dump(metrics, f)
            written.append(metrics)
  manifest = {"rewind_steps": [0, 25], "num_inits": 2, "num_pairs": 2, "total_steps": 4000,
              "steps_per_epoch": 1000, "num_alphas": 30, "every_epoch": per_epoch,
              "variants": list(variants), "pairs": pairs}
  with open(os.path.join(directory, "instability.json"), "w") as f:
    json.dump(manifest, f)
  return written


def _metrics_list(variants=("standard",), per_epoch=False):
  return [_metrics(v, k, i, p, 2 * i + p, per_epoch)
          for v in variants for k in (0, 25) for i in (0, 1) for p in (0, 1)]


def _assert_png(path):
  assert os.path.getsize(path) > 1000
  with open(path, "rb") as f:
    assert f.read(8) == PNG_SIGNATURE


# --- tables --------------------------------------------------------------------------------------


def test_aggregate_arithmetic_on_hand_made_numbers():
  agg = tables.aggregate(_metrics_list())
  assert list(agg) == ["standard"]
  assert list(agg["standard"]) == ["train", "test"]
  k0, k25 = agg["standard"]["test"][0], agg["standard"]["test"][25]
  assert k0["instability_mean"] == pytest.approx(3.0)
  assert k0["instability_sd"] == pytest.approx(math.sqrt(10.0 / 3.0))
  assert k0["instability_median"] == pytest.approx(3.0)
  assert k0["endpoint_error_mean"] == pytest.approx(11.5)
  assert k0["loss_barrier_mean"] == pytest.approx(0.15)
  assert k0["samples"] == 4
  assert k0["stable"] is False
  assert k25["instability_mean"] == pytest.approx(1.0)
  assert k25["instability_sd"] == pytest.approx(math.sqrt(1.0 / 6.0))
  assert k25["instability_median"] == pytest.approx(1.0)
  assert k25["stable"] is True
  # Exactly 2 pp is not stable: the paper's criterion is a strict "below 2%".
  assert agg["standard"]["train"][0]["instability_mean"] == pytest.approx(2.0)
  assert agg["standard"]["train"][0]["instability_sd"] == 0.0
  assert agg["standard"]["train"][0]["stable"] is False


def test_aggregate_one_sample_and_a_missing_split():
  metrics = _metrics("standard", 25, 0, 0, 3, per_epoch=False)
  del metrics["train"]
  agg = tables.aggregate([metrics])
  assert list(agg["standard"]) == ["test"]
  stats = agg["standard"]["test"][25]
  assert stats["samples"] == 1
  assert stats["instability_sd"] == 0.0
  assert stats["instability_mean"] == stats["instability_median"] == 1.0


def test_aggregate_orders_standard_first_then_k_ascending():
  metrics = list(reversed(_metrics_list(variants=("reset", "standard"))))
  agg = tables.aggregate(metrics)
  assert list(agg) == ["standard", "reset"]
  assert list(agg["reset"]["test"]) == [0, 25]


def test_markdown_and_csv_rows():
  agg = tables.aggregate(_metrics_list())
  markdown = tables.to_markdown(agg)
  lines = markdown.strip().splitlines()
  assert lines[0] == "| " + " | ".join(tables.COLUMNS) + " |"
  assert len(lines) == 2 + 4  # header, rule, (train, test) × (k = 0, 25)
  assert "| standard | test | 0 | 4 | 3.00 | 1.83 | 3.00 | 0.15 | 11.50 | no |" in lines
  assert "| standard | test | 25 | 4 | 1.00 | 0.41 | 1.00 | 0.15 | 11.50 | yes |" in lines
  assert "| standard | train | 0 | 4 | 2.00 | 0.00 | 2.00 | 0.05 | 2.50 | no |" in lines

  parsed = list(csv.DictReader(io.StringIO(tables.to_csv(agg))))
  assert [(r["variant"], r["split"], r["rewind_step"]) for r in parsed] == [
      ("standard", "train", "0"), ("standard", "train", "25"),
      ("standard", "test", "0"), ("standard", "test", "25")]
  assert parsed[2] == {"variant": "standard", "split": "test", "rewind_step": "0",
                       "samples": "4", "instability_mean": "3.00", "instability_sd": "1.83",
                       "instability_median": "3.00", "loss_barrier_mean": "0.15",
                       "endpoint_error_mean": "11.50", "stable": "false"}
  assert parsed[3]["stable"] == "true"


def test_interpolation_and_per_epoch_curves():
  metrics = _metrics_list(per_epoch=True)
  curve = tables.interpolation_curves(metrics)["standard"]["test"][0]
  assert curve["samples"] == 4
  assert curve["alphas"] == pytest.approx(ALPHAS.tolist())
  # The endpoints are the endpoint errors 10..13, so their mean is 11.5 at α = 0.
  assert curve["error_mean"][0] == pytest.approx(11.5)
  assert curve["error_sd"][0] == pytest.approx(np.std([10, 11, 12, 13], ddof=1))

  epochs = tables.per_epoch_curves(metrics)["standard"]["test"][25]
  assert epochs["epochs"] == [1, 2, 3, 4]
  assert epochs["samples"] == [4, 4, 4, 4]
  assert epochs["instability_mean"] == pytest.approx([4.0, 2.5, 2.0, 1.75])
  assert tables.per_epoch_curves(_metrics_list()) == {}


def test_interpolation_curves_refuse_mixed_alphas():
  metrics = _metrics_list()
  metrics[1]["alphas"] = np.linspace(0, 1, 11).tolist()
  with pytest.raises(ValueError, match="other alphas"):
    tables.interpolation_curves(metrics)


# --- figures -------------------------------------------------------------------------------------


def test_figures_name_the_experiment_and_the_samples():
  metrics = _metrics_list(variants=("standard", "reset"), per_epoch=True)
  agg = tables.aggregate(metrics)
  fig3 = figures.figure3_instability(agg, title="LeNet MNIST")
  ax = fig3.axes[0]
  assert "LeNet MNIST" in ax.get_title() and "n = 4" in ax.get_title()
  assert ax.get_xscale() == "symlog"
  assert any(list(line.get_ydata()) == [2.0, 2.0] for line in ax.get_lines())
  assert "stable below" in " ".join(ax.get_legend_handles_labels()[1])

  fig2 = figures.figure2_interpolation(metrics, title="LeNet MNIST")
  assert len([a for a in fig2.axes if a.get_visible()]) == 2  # one panel per k
  assert "LeNet MNIST" in fig2.get_suptitle()
  assert fig2.axes[0].get_xlabel() == "interpolation α"
  assert fig2.axes[0].get_ylabel() == "error (%)"

  fig4 = figures.figure4_reset(agg)
  assert [a.get_title() for a in fig4.axes] == ["test set", "train set"]
  figc = figures.appendix_c_per_epoch(metrics)
  assert len(figc.axes) == 4  # (standard, reset) × (test, train)

  with pytest.raises(ValueError, match="reset"):
    figures.figure4_reset(tables.aggregate(_metrics_list()))
  with pytest.raises(ValueError, match="per_epoch"):
    figures.appendix_c_per_epoch(_metrics_list())


# --- the job -------------------------------------------------------------------------------------


def test_report_writes_figures_and_tables(tmp_path, console):
  make_experiment(str(tmp_path))
  result = report.report(str(tmp_path), None)
  out_dir = tmp_path / "report"
  names = sorted(os.path.basename(f) for f in result["files"])
  assert names == ["figure2_interpolation.png", "figure3_instability.png", "instability.csv",
                   "instability.md"]
  for name in ("figure2_interpolation.png", "figure3_instability.png"):
    _assert_png(out_dir / name)
  assert not list(out_dir.glob("*.tmp-*"))
  assert result["index"] == str(out_dir / "index.html")  # written last: it shows them all
  page = (out_dir / "index.html").read_text()
  assert all(f'src="{name}"' in page for name in names if name.endswith(".png"))
  assert result["table"]["standard"]["test"][0]["instability_mean"] == pytest.approx(3.0)
  markdown = (out_dir / "instability.md").read_text()
  assert "8 of 8 pairs evaluated" in markdown
  assert "| standard | test | 25 | 4 | 1.00 | 0.41 |" in markdown
  assert (out_dir / "instability.csv").read_text() == tables.to_csv(result["table"])

  out = console()
  assert "8 of 8 pairs evaluated" in out
  assert "k =      0:   3.00 ±  1.83 pp  (n = 4)  stable: no" in out
  assert "k =     25:   1.00 ±  0.41 pp  (n = 4)  stable: yes" in out
  for path in result["files"]:
    assert path in out


def test_report_with_both_variants_and_per_epoch(tmp_path):
  make_experiment(str(tmp_path), variants=("standard", "reset"), per_epoch=True)
  result = report.report(str(tmp_path), None, title="LeNet MNIST")
  names = {os.path.basename(f) for f in result["files"]}
  assert {"figure4_reset.png", "appendix_c_per_epoch.png"} <= names
  for path in result["files"]:
    if path.endswith(".png"):
      _assert_png(path)
  assert list(result["table"]) == ["standard", "reset"]
  csv_rows = (tmp_path / "report" / "instability.csv").read_text().strip().splitlines()
  assert len(csv_rows) == 1 + 8  # header + 2 variants × 2 splits × 2 k


def test_report_on_a_partially_evaluated_experiment(tmp_path, console):
  make_experiment(str(tmp_path), evaluated=5)
  result = report.report(str(tmp_path), None)
  assert "5 of 8 pairs evaluated" in console()
  assert "5 of 8 pairs evaluated" in (tmp_path / "report" / "instability.md").read_text()
  test = result["table"]["standard"]["test"]
  assert test[0]["samples"] == 4 and test[25]["samples"] == 1
  _assert_png(tmp_path / "report" / "figure3_instability.png")


def test_report_without_a_manifest(tmp_path):
  with pytest.raises(FileNotFoundError, match="instability job first"):
    report.report(str(tmp_path), None)


def test_report_before_any_pair_is_evaluated(tmp_path):
  make_experiment(str(tmp_path), evaluated=0)
  with pytest.raises(ValueError, match="--job=evaluate"):
    report.report(str(tmp_path), None)
  assert not (tmp_path / "report").exists()


def test_report_is_a_registered_job():
  assert jobs.JOBS["report"] is report.report


def test_write_bytes_atomic_replaces_whole_files(tmp_path):
  path = str(tmp_path / "sub" / "x.bin")
  files.write_bytes_atomic(path, b"first")
  files.write_bytes_atomic(path, b"second")
  with open(path, "rb") as f:
    assert f.read() == b"second"
  assert os.listdir(tmp_path / "sub") == ["x.bin"]


def test_first_k_medians_follow_the_majority_rule():
  def m(variant, init, pair, k, inst, err):
    return {"variant": variant, "init_seed": init, "pair": pair, "rewind_step": k,
            "test": {"instability": inst, "endpoint_error_mean": err}}
  metrics = [
      # sample (0, 0): stable from k=100, matching (acc >= 97.8) from k=500
      m("imp", 0, 0, 0, 5.0, 3.0), m("imp", 0, 0, 100, 1.0, 2.5), m("imp", 0, 0, 500, 0.5, 2.0),
      # sample (0, 1): stable from k=0, never matching
      m("imp", 0, 1, 0, 1.5, 3.0), m("imp", 0, 1, 100, 1.0, 2.5), m("imp", 0, 1, 500, 0.5, 2.4),
      # sample (1, 0): stable from k=500, matching from k=100
      m("imp", 1, 0, 0, 9.0, 3.0), m("imp", 1, 0, 100, 3.0, 2.1), m("imp", 1, 0, 500, 1.0, 2.0),
  ]
  out = tables.first_k_medians(metrics, full_accuracy=98.0)["imp"]
  assert out["samples"] == 3
  assert out["stable"] == 100.0          # median of 100, 0, 500
  assert out["matching"] == 300.0        # 2 of 3 reach it: median of 500 and 100
  out = tables.first_k_medians(metrics[:6] + [m("imp", 1, 0, 0, 9.0, 9.0)], 98.0)["imp"]
  assert out["matching"] is None         # only 1 of 3 samples is ever matching
