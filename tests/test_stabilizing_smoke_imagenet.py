"""The Stabilizing paper's ImageNet stability smokes (Figures 7 and 12) run end to end on the
tiny imagenet2012: the experiment, evaluate and report, with random pruning's pruning
stability measured beside IMP's."""

import glob
import os

import gin
import pytest

from lmc_tf import config
from lmc_tf import files
from lmc_tf import jobs
from tests.test_stabilizing import SMOKES

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(SMOKES, "*_imagenet_*_smoke.gin"))),
                         ids=os.path.basename)
def test_imagenet_stability_smoke_runs_end_to_end(path, tmp_path, imagenet_sample):
  for job in (None, "evaluate", "report"):
    gin.clear_config()
    config.parse([path], [f"imagenet.data_dir = '{imagenet_sample}'"]
                 + ([f"experiment.job = '{job}'"] if job else []))
    jobs.run(str(tmp_path))
  summary = files.read_json(tmp_path / "summary.json")
  (entry,) = summary["stability"]
  assert entry["rewind_step"] == 0 and sorted(entry["variants"]) == ["imp", "random_pruning"]
  for measured in entry["variants"].values():
    assert measured["data_order"]["l2"]["n"] == 1 and measured["pruning"]["l2"]["mean"] > 0
  report = {p.name for p in (tmp_path / "report").iterdir()}
  assert {"stabilizing_figure3.md", "stabilizing_figure4_l2_vs_k.png",
          "stabilizing_figure11_angle_vs_k.png"} <= report
