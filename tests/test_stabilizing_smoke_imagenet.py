"""The Stabilizing paper's ImageNet stability experiments (Figures 7 and 12). SqueezeNet's smoke
runs end to end on the tiny imagenet2012 (experiment, evaluate, report); ResNet-50's and
Inception-v3's run the same code on networks whose IMP and instability smokes already run end
to end (test_imagenet_configs.py), so here their plans are checked instead: random pruning
beside IMP at every rewind epoch, each with its copies. (End to end they cost ~150 s of the
suite.)"""

import os

import gin
import pytest

from lmc_tf import config
from lmc_tf import distribute
from lmc_tf import files
from lmc_tf import jobs
from lmc_tf.experiments import imp as imp_lib
from tests.test_stabilizing import SMOKES

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")


def _smoke(net):
  return os.path.join(SMOKES, f"{net}_imagenet_stability_smoke.gin")


@pytest.mark.slow
def test_squeezenet_stability_smoke_runs_end_to_end(tmp_path, imagenet_sample):
  for job in (None, "evaluate", "report"):
    gin.clear_config()
    config.parse([_smoke("squeezenet")], [f"imagenet.data_dir = '{imagenet_sample}'"]
                 + ([f"experiment.job = '{job}'"] if job else []))
    jobs.run(str(tmp_path))
  summary = files.read_json(tmp_path / "summary.json")
  (entry,) = summary["stability"]
  assert entry["rewind_step"] == 0 and sorted(entry["variants"]) == ["imp", "random_pruning"]
  assert entry["density"] == pytest.approx(0.5, abs=1e-3)
  for measured in entry["variants"].values():
    assert measured["data_order"]["l2"]["n"] == 1 and measured["pruning"]["l2"]["mean"] > 0
  report = {p.name for p in (tmp_path / "report").iterdir()}
  assert {"stabilizing_figure3.md", "stabilizing_figure4_l2_vs_k.png",
          "stabilizing_figure11_angle_vs_k.png"} <= report


@pytest.mark.parametrize("net", ["resnet50", "inception_v3", "squeezenet"])
def test_imagenet_stability_plans_random_pruning_at_every_k(net, tmp_path, imagenet_sample):
  gin.clear_config()
  config.parse([_smoke(net)], [f"imagenet.data_dir = '{imagenet_sample}'",
                               "imp.rewind_steps = [0, 2]",
                               "imp.instability_rewind_steps = [0, 2]",
                               "imp.instability_pairs = 2"])
  experiment = imp_lib.imp(str(tmp_path), distribute.get_strategy(), plan_only=True)
  keys = [s.key for s in experiment.steps]
  for k in (0, 2):
    for variant in ("imp", "random_pruning"):
      assert f"init0-k{k}-level01-{variant}" in keys
      copies = [key for key in keys
                if key.startswith(f"instability/{variant}-level01-init0-k{k}/")]
      assert len(copies) == 2 * 2  # 2 pairs of copies
  assert not any("random_reinit" in key or "snip" in key for key in keys)
  assert not (tmp_path / "runs").exists()  # planned, not trained
