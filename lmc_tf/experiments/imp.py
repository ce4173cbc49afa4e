"""The `imp` job: iterative magnitude pruning with rewinding (Algorithm 2) and its baselines.

For each init seed: a parent trains W_0 to W_k (k = `rewind_step`; k = 0 is the original
lottery ticket procedure). Level 0 trains the full network from W_k to T. Level L + 1 prunes
the lowest-magnitude surviving weights of level L's trained network (globally, 20% of what
remains, or one shot to `density`), rewinds the survivors to W_k, and trains m * W_k to T.
At every level the baselines train at the same density:
  random_pruning  the IMP mask's per-layer densities at new random positions;
  random_reinit   the IMP mask on a network of a new init seed (rewound to its own step k);
  snip            |g * w| on one batch at init, at the IMP level's global density.
Every level and baseline run uses the parent's data order, so the distance between a level's
subnetwork and the full network trained from the same W_k measures stability to pruning
(Stabilizing paper). Runs are hash-named; finished levels are skipped on a rerun.

  imp_settings.py  the bindings, checked;  imp_runs.py  names, masks, training;
  imp_plan.py      the step graph;         evaluation/imp_summary.py  summary.json
The files it writes are layout's: masks/, imp.json, summary.json, runs/, instability/.
"""

import time

import gin

from lmc_tf import distribute
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import imp_summary
from lmc_tf.experiments import common
from lmc_tf.experiments import imp_plan
from lmc_tf.experiments import imp_runs
from lmc_tf.experiments import imp_settings
from lmc_tf.experiments import steps as steps_lib
from lmc_tf.reporting import stabilizing_reference
from lmc_tf.reporting import tables
from lmc_tf.training import runner


def record(runs):
  """imp.json: the levels of every init and rewind step whose IMP runs have finished."""
  settings = runs.settings
  return {"rewind_steps": list(settings.rewind_steps), "total_steps": settings.total_steps,
          "levels": settings.levels, "layers_to_ignore": list(settings.layers_to_ignore),
          "prunable_weights": settings.prunable_weights,
          "inits": {str(seed): {str(k): runs.level_entries(seed, k)
                                for k in settings.rewind_steps}
                    for seed in settings.seeds}}


def _check_report_row():
  """A misspelled report.stabilizing_row fails now, not at --job=report after training."""
  try:
    row = gin.query_parameter("report.stabilizing_row")
  except ValueError:
    return
  if row is not None:
    stabilizing_reference.check_row(row)


@gin.configurable("imp", denylist=["model_dir", "strategy", "plan_only"])
def imp(model_dir, strategy, levels=15, rewind_steps=(0,), num_inits=1, init_seed=0,
        pruning_fraction=0.2, density=None, layers_to_ignore=None,
        baselines_to_run=imp_settings.BASELINES, instability_levels=(),
        instability_rewind_steps=None, instability_pairs=3, stability_baselines=False,
        plan_only=False, copies_per_program=1):
  """IMP with rewinding, and its baselines at every level.

  Args:
    levels: pruning levels after the full network (iterative: density 0.8^L at level L).
    rewind_steps: the k to rewind to, as ints or '500it' / '2ep'. The first is the main
      experiment (baselines, instability, Table 2); IMP alone runs at the others, for the
      extreme sparsity of Appendix A (the best accuracy over k at each density, Figure 10).
    num_inits, init_seed: init seeds init_seed, init_seed + 1, ...
    pruning_fraction: share of the remaining prunable weights removed per level.
    density: if set, prune one shot to this density (levels is then 1).
    layers_to_ignore: prunable layers left dense; None takes the model's default (SPEC §3).
    baselines_to_run: any of 'random_pruning', 'random_reinit', 'snip'.
    instability_levels: levels whose subnetworks (IMP and every baseline) get an instability
      experiment in DIR/instability/ (train here; then --job=evaluate and --job=report).
    instability_rewind_steps: the k grid of those experiments (default: the first k).
    instability_pairs: pairs of copies per init in those experiments.
    stability_baselines: also train the baselines at the instability levels at every
      instability k, from W_k with the parent's data order, for their accuracy and stability
      to pruning against k (the Stabilizing paper's Figures 3, 4, 10 and 11).
    plan_only: return the experiment's steps (steps.Experiment) instead of running them, for
      the sweep launcher.
    copies_per_program: train up to this many runs of one start and schedule, of several
      inits, in one program (training/group.py): the parents at a k, a level's runs of one
      variant, and a subnetwork's instability copies. The same runs and results, sooner.
      With training.programs_at_once = L, L such programs train side by side.
  """
  errors.positive_int(copies_per_program, "imp.copies_per_program")
  _check_report_row()
  data = data_base.get_dataset()
  hparams = runner.TrainingHParams()
  settings = imp_settings.resolve(
      data, runner.Schedule.resolve(hparams, data.num_train),
      gin.query_parameter("model.name"), levels=levels, rewind_steps=rewind_steps,
      num_inits=num_inits, init_seed=init_seed, pruning_fraction=pruning_fraction,
      density=density, layers_to_ignore=layers_to_ignore, baselines_to_run=baselines_to_run,
      instability_levels=instability_levels,
      instability_rewind_steps=instability_rewind_steps, instability_pairs=instability_pairs,
      stability_baselines=stability_baselines)
  chief = distribute.is_chief(strategy)
  if chief:
    common.record_experiment(model_dir, "imp", {
        "rewind_steps[0]": settings.main_step, "init_seed": init_seed,
        "pruning_fraction": None if settings.density is not None else settings.pruning_fraction,
        "density": settings.density,
        "layers_to_ignore": settings.layers_to_ignore})
    common.write_operative_config(model_dir)
  runs = imp_runs.ImpRuns(model_dir, strategy, data, hparams, layout.training_fingerprint(),
                          settings, copies_per_program)
  started = time.time()

  def finish():
    levels_record = record(runs)
    summary = imp_summary.summarize(model_dir, levels_record)
    if chief:
      files.write_json_atomic(layout.imp_record(model_dir), levels_record)
      files.write_json_atomic(layout.summary(model_dir), summary)
    print(f"IMP done in {time.time() - started:.0f} s. Table 2 row (mean over inits):",
          flush=True)
    for line in tables.table2_lines(summary):
      print("  " + line, flush=True)
    return summary

  experiment = steps_lib.Experiment(imp_plan.steps(runs), finish)
  return experiment if plan_only else experiment.run()
