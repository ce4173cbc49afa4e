"""Every CIFAR-10 config follows Table 1, and every standard CIFAR smoke config (and one
warmup one) runs end to end: the experiment job, then --job=evaluate, then --job=report, on the
shared CIFAR-10 sample. The low-LR and warmup smoke configs that do not are checked to differ
from their standard one only in Table 1's hyperparameters."""

import ast
import glob
import os

import gin
import pytest

from lmc_tf import config
from lmc_tf import jobs
from lmc_tf import files
from lmc_tf import layout
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

CONFIGS = os.path.join(REPO, "gin_configs")
GRID = [0, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000]

# Table 1 of the LMC paper: model, lr, warmup, IMP levels (density 0.8^levels).
TABLE_1 = {
    "resnet20_standard": ("resnet20", 0.1, "0it", 8),
    "resnet20_low": ("resnet20", 0.01, "0it", 11),
    "resnet20_warmup": ("resnet20", 0.03, "30000it", 11),
    "vgg16_standard": ("vgg16", 0.1, "0it", 19),
    "vgg16_low": ("vgg16", 0.01, "0it", 13),
    "vgg16_warmup": ("vgg16", 0.1, "30000it", 19),
}


def _query(name, default=None):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


@pytest.mark.parametrize("row", sorted(TABLE_1))
def test_cifar_configs_follow_table_1(row):
  model, lr, warmup, levels = TABLE_1[row]
  for experiment in ("", "_instability", "_imp"):
    gin.clear_config()
    config.parse([os.path.join(CONFIGS, f"{row}{experiment}.gin")])
    assert gin.query_parameter("model.name") == model
    assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(lr)
    assert _query("lr_schedule.warmup", "0it") == warmup
    assert gin.query_parameter("optimizer.name") == "sgd"
    assert gin.query_parameter("optimizer.momentum") == 0.9
    assert gin.query_parameter("optimizer.weight_decay") == 1e-4
    assert gin.query_parameter("training.batch_size") == 128
    assert gin.query_parameter("training.steps") == "63000it"
    assert list(gin.query_parameter("lr_schedule.drops")) == ["32000it", "48000it"]
    assert gin.query_parameter("cifar10.augment") is True
  assert list(gin.query_parameter("imp.rewind_steps")) == GRID
  assert gin.query_parameter("imp.levels") == levels
  assert list(gin.query_parameter("imp.instability_levels")) == [levels]
  assert list(gin.query_parameter("imp.instability_rewind_steps")) == GRID
  gin.clear_config()
  config.parse([os.path.join(CONFIGS, f"{row}_instability.gin")])
  assert list(gin.query_parameter("instability.rewind_steps")) == GRID
  assert gin.query_parameter("instability.reset_schedule") == "both"
  assert (gin.query_parameter("instability.num_inits"),
          gin.query_parameter("instability.num_pairs")) == (3, 3)
  assert tuple(gin.query_parameter("evaluate.splits")) == ("train", "test")


@pytest.mark.parametrize("row,levels", [("resnet20_standard", 12), ("vgg16_standard", 21)])
def test_sparsity_sweeps_cover_every_level(row, levels):
  config.parse([os.path.join(CONFIGS, f"{row}_sparsity_sweep.gin")])
  assert list(gin.query_parameter("imp.instability_levels")) == list(range(1, levels + 1))
  assert tuple(gin.query_parameter("imp.baselines_to_run")) == ("random_pruning",)


SMOKE = sorted(p for p in glob.glob(os.path.join(CONFIGS, "smoke", "*_smoke.gin"))
               if os.path.basename(p).startswith(("resnet20", "vgg16")))
# The networks-from-different-inits smoke configs run end to end in test_inits.py.
INSTABILITY_AND_IMP_SMOKE = [p for p in SMOKE if "_inits_" not in os.path.basename(p)]


def test_every_cifar_experiment_has_a_smoke_variant():
  experiments = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(CONFIGS, "*.gin"))
                 if os.path.basename(p).startswith(("resnet20_", "resnet20x", "vgg16_"))
                 and os.path.basename(p)[:-4] not in TABLE_1]
  assert len(experiments) == 14 + 4  # and the inits configs at widths x1, x2, x4, x8
  assert sorted(f"{e}_smoke.gin" for e in experiments) == [os.path.basename(p) for p in SMOKE]


# A low-LR or warmup smoke config is its row's standard smoke config with Table 1's other
# learning rate and warmup (and fewer baselines or rewind steps, a title, a row name): the
# same code paths on the same data. The standard ones and resnet20_warmup_instability (the
# warmup schedule in a whole job) run end to end; every other variant is checked here to
# differ from its standard config in those bindings only, each a subset where it is a list.
VARIANT_MAY_DIFFER = {"optimizer.learning_rate", "lr_schedule.warmup", "report.title",
                      "report.stabilizing_row"}
VARIANT_SUBSETS = {"imp.baselines_to_run", "imp.rewind_steps", "imp.instability_rewind_steps"}
END_TO_END_VARIANTS = {"resnet20_warmup_instability_smoke.gin"}


def standard_of(path):
  """The standard smoke config a low-LR or warmup one varies, or None."""
  name = os.path.basename(path)
  for row in ("_low_", "_warmup_"):
    standard = os.path.join(os.path.dirname(path), name.replace(row, "_standard_", 1))
    if row in name and os.path.exists(standard):
      return standard
  return None


def runs_end_to_end(path):
  """Whether the suite runs this smoke config end to end (else test_smoke_variants...)."""
  return standard_of(path) is None or os.path.basename(path) in END_TO_END_VARIANTS


def _all_bindings(path):
  """{`configurable.parameter`: value text} of every binding the config file makes."""
  gin.clear_config()
  config.parse([path])
  text = gin.config_str(max_line_length=10_000)
  gin.clear_config()
  return dict(line.split(" = ", 1) for line in text.splitlines()
              if line and not line.startswith("#") and " = " in line)


VARIANTS = sorted(p for p in glob.glob(os.path.join(CONFIGS, "smoke", "**", "*_smoke.gin"),
                                       recursive=True) if not runs_end_to_end(p))


def test_the_smoke_variants_not_run_end_to_end_are_known():
  assert sorted(os.path.basename(p) for p in VARIANTS) == [
      "resnet20_low_imp_smoke.gin", "resnet20_low_instability_smoke.gin",
      "resnet20_low_stability_smoke.gin", "resnet20_warmup_imp_smoke.gin",
      "resnet20_warmup_stability_smoke.gin", "vgg16_low_imp_smoke.gin",
      "vgg16_low_instability_smoke.gin", "vgg16_warmup_imp_smoke.gin",
      "vgg16_warmup_instability_smoke.gin", "vgg19_low_stability_smoke.gin",
      "vgg19_warmup_stability_smoke.gin"]


@pytest.mark.parametrize("path", VARIANTS, ids=os.path.basename)
def test_smoke_variants_differ_from_their_standard_config_only_in_hyperparameters(path):
  variant, standard = _all_bindings(path), _all_bindings(standard_of(path))
  differ = {k for k in variant.keys() | standard.keys() if variant.get(k) != standard.get(k)}
  assert differ - VARIANT_MAY_DIFFER - VARIANT_SUBSETS == set(), path
  assert "optimizer.learning_rate" in differ or "lr_schedule.warmup" in differ
  for key in differ & VARIANT_SUBSETS:
    assert key in variant and key in standard, key
    assert set(ast.literal_eval(variant[key])) <= set(ast.literal_eval(standard[key])), key
  # Its own learning rate and warmup are Table 1's (the smoke configs shorten the warmup).
  config.parse([path])
  full = os.path.basename(path).replace("_smoke", "")
  row = next((r for r in TABLE_1 if full.startswith(r + "_")), None)
  if row is not None:  # (VGG-19's rows are the Stabilizing paper's: test_stabilizing.py)
    assert gin.query_parameter("optimizer.learning_rate") == pytest.approx(TABLE_1[row][1])
  assert (_query("lr_schedule.warmup", "0it") != "0it") == ("_warmup_" in full)


def _run(path, model_dir, data, job=None):
  gin.clear_config()
  bindings = [f"cifar10.path = '{data}'"]
  if job:
    bindings.append(f"experiment.job = '{job}'")
  config.parse([path], bindings)
  return jobs.run(str(model_dir))


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in INSTABILITY_AND_IMP_SMOKE
                                  if "resnet20" in os.path.basename(p) and runs_end_to_end(p)],
                         ids=os.path.basename)
def test_smoke_config_runs_end_to_end(path, tmp_path, cifar10_sample):
  check_smoke_config(path, tmp_path, cifar10_sample)


def check_smoke_config(path, tmp_path, cifar10_sample):
  """The smoke config's experiment, evaluate and report jobs, and what they must produce.
  (VGG-16's smoke configs run in test_cifar_smoke_vgg16.py, so that xdist's loadscope
  spreads the two networks over two workers.)"""
  experiment = _run(path, tmp_path, cifar10_sample.npz)
  summary = _run(path, tmp_path, cifar10_sample.npz, job="evaluate")
  report = tmp_path / "report"
  _run(path, tmp_path, cifar10_sample.npz, job="report")
  pngs = sorted(p.name for p in report.glob("*.png"))
  if "instability" in os.path.basename(path):
    assert summary["pairs_done"] == summary["pairs_total"] == 4  # k in {0, 2}, both schedules
    assert sorted(summary["test"]) == sorted(summary["train"]) == ["0", "2"]
    assert sorted(summary["reset"]["test"]) == ["0", "2"]
    assert {"figure2_interpolation.png", "figure3_instability.png", "figure4_reset.png"} <= set(pngs)
  else:
    assert layout.is_finished(str(tmp_path))
    levels = gin.query_parameter("imp.levels")
    assert len(experiment["levels"]) == levels + 1
    sub = sorted(p.name for p in (tmp_path / "instability").iterdir())
    variants = {name.split("-")[0] for name in sub}
    if "sparsity_sweep" in path:
      assert variants == {"imp", "random_pruning"} and len(sub) == 2 * levels
    else:
      assert variants == {"imp", *gin.query_parameter("imp.baselines_to_run")}
    for name in sub:
      assert files.read_json(tmp_path / "instability" / name / "summary.json")["pairs_done"] == 1
    assert "accuracy_vs_density.png" in pngs and any(p.startswith("figure5") for p in pngs)
