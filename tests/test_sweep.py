"""The sweep launcher: an experiment as a graph of steps, run as Ray tasks on a local cluster."""

import glob
import os

import gin
import pytest

from lmc_tf import config
from lmc_tf import sweep
from lmc_tf import files
from tests.conftest import REPO

CONFIGS = os.path.join(REPO, "gin_configs", "smoke")


def _config_text(name, *bindings):
  gin.clear_config()
  config.parse([os.path.join(CONFIGS, name)], list(bindings))
  return gin.config_str()


def test_imp_plan_orders_levels_and_parents_before_what_reads_them(tmp_path):
  experiment = sweep.plan(_config_text("lenet_mnist_imp_smoke.gin"), str(tmp_path))
  deps = {s.key: s.deps for s in experiment.steps}
  assert "init0-k0-level00-imp" in deps["init0-k0-level01-imp"]  # level n before n + 1
  assert "init0-k0-level02-imp" in deps["init0-k0-level03-imp"]
  assert "init0-k0-level03-imp" in deps["init0-k0-level03-random_pruning"]  # its mask
  # Random reinitialization rewinds to the W_k of its own init.
  assert "parent-init10000-k0" in deps["init0-k0-level03-random_reinit"]
  copy = "instability/imp-level03-init0-k0/standard-k0-init0-pair0-copy0"
  assert set(deps[copy]) == {"init0-k0-level03-imp", "parent-init0-k0"}
  # Planning trains nothing.
  assert not glob.glob(str(tmp_path / "runs" / "*" / "summary.json"))


def test_plan_of_a_single_run_job_is_refused(tmp_path):
  with pytest.raises(config.ConfigError, match="not a sweep"):
    sweep.plan(_config_text("lenet_mnist_instability_smoke.gin", "experiment.job = 'train'"),
               str(tmp_path))


def _mtimes(model_dir):
  return {p: os.path.getmtime(p) for p in glob.glob(os.path.join(model_dir, "runs", "*",
                                                                 "summary.json"))}


@pytest.mark.slow
def test_local_two_worker_ray_sweep_runs_every_run_once_and_a_rerun_does_nothing(
    tmp_path, monkeypatch):
  ray = pytest.importorskip("ray")
  # The suite's two long-lived workers hold most of the memory by now; Ray's own OOM killer
  # (at 95 % of the machine's memory) would kill these small tasks and retry them forever.
  monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "0")
  instability_dir, imp_dir = str(tmp_path / "instability"), str(tmp_path / "imp")
  experiments = [
      (_config_text("lenet_mnist_instability_smoke.gin"), instability_dir),
      (_config_text("lenet_mnist_imp_smoke.gin", "imp.levels = 2",
                    "imp.baselines_to_run = ('random_pruning',)", "imp.instability_levels = []"),
       imp_dir)]
  ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
           runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
  try:
    first = [sweep.sweep(text, d) for text, d in experiments]
    before = {d: _mtimes(d) for _, d in experiments}
    again = [sweep.sweep(text, d) for text, d in experiments]
  finally:
    ray.shutdown()

  (inst_results, _), (imp_results, imp_summary) = first
  # 1 parent + 2 rewind steps x 1 pair x 2 copies; IMP: parent, levels 0-2, 2 baselines.
  assert len(inst_results) == 5 and len(imp_results) == 6
  for results in (inst_results, imp_results):
    assert len({r["key"] for r in results}) == len(results)
    assert all(r["trained"] for r in results)
  # Every run of the plan finished, each trained in one session (one event file).
  manifest = files.read_json(os.path.join(instability_dir, "instability.json"))
  runs = {p["run"] for p in manifest["parents"].values()}
  runs |= {c for p in manifest["pairs"] for c in p["copies"]}
  assert {os.path.relpath(os.path.dirname(p), instability_dir)
          for p in before[instability_dir]} == runs
  for d in (instability_dir, imp_dir):
    for run in glob.glob(os.path.join(d, "runs", "*")):
      if not os.path.basename(run).startswith("parent"):
        board = os.path.join(run, files.read_json(os.path.join(run, "lineage.json"))[
            "tensorboard_dir"])
        assert len(glob.glob(os.path.join(board, "events.out.*"))) == 1, run
  # The driver wrote IMP's record and summary from the runs on disk, levels in order.
  record = files.read_json(os.path.join(imp_dir, "imp.json"))
  levels = record["inits"]["0"]["0"]
  assert [e["level"] for e in levels] == [0, 1, 2]
  assert set(levels[2]["runs"]) == {"imp", "random_pruning"}
  assert levels[2]["density"] == pytest.approx(0.64, abs=0.01)
  assert [l["level"] for l in imp_summary["levels"]] == [0, 1, 2]

  # A rerun finds everything finished and touches no result.
  for results, _ in again:
    assert not any(r["trained"] for r in results)
  assert {d: _mtimes(d) for _, d in experiments} == before
