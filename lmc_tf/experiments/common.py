"""What every job does the same way: record its config, refuse another config's directory,
and train one run to its summary.

`import gin.tf` crashes on TF 2.21 (tf.estimator is gone), so the operative config is written
here by hand: to `operative_config.gin` in the run directory and to `tf.summary.text`.
"""

import contextlib
import json

from absl import logging
import gin
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.errors import ConfigError
from lmc_tf.training import group
from lmc_tf.training import runner
from lmc_tf.training import summaries


def write_operative_config(directory, name=layout.OPERATIVE_CONFIG, summary_writer=None):
  """Writes the operative config to `directory`/`name` (atomically) and, if given, to
  TensorBoard. Returns the config text.

  Call it once everything configurable has been built, so the config holds every value that
  was used.
  """
  text = gin.operative_config_str()
  files.write_text_atomic(files.join(directory, name), text)
  if summary_writer is not None:
    with summary_writer.as_default(step=0):
      # Markdown code block, one line per binding, as TensorBoard's text plugin renders it.
      tf.summary.text("operative_config", "\n".join("    " + l for l in text.splitlines()))
    summary_writer.flush()
  return text


def _named(identity):
  """{'configurable.param': value} of an identity (or of a training fingerprint alone), for
  naming what differs: the fingerprint's bindings under their own names."""
  if "job" not in identity:
    return _flat(identity)
  rest = {k: v for k, v in identity.items() if k != "training"}
  return {**_flat(identity.get("training") or {}), **_flat(rest)}


def _flat(value, prefix=""):
  if isinstance(value, dict):
    out = {}
    for key, inner in value.items():
      out.update(_flat(inner, f"{prefix}.{key}" if prefix else key))
    return out
  return {prefix: value}


def _as_json(value):
  """`value` as JSON reads it back: tuples become lists, other values their repr."""
  return json.loads(json.dumps(value, sort_keys=True, default=repr))


def experiment_identity(job):
  """What makes a directory's experiment itself: the job, the training fingerprint and, for
  a single run, its seeds. Logging, XLA and loop length are not part of it."""
  identity = {"job": job, "training": layout.training_fingerprint()}
  if job == "train":
    identity["seeds"] = gin.get_bindings("train")
  return _as_json(identity)


def record_experiment(directory, job, settings=None):
  """Writes experiment.json, which claims `directory` for this job and training config; a
  job calls it once its values are checked, before it writes anything else.

  `settings` are the job's own values that change what its runs compute (resolved: '2ep' and
  its step count are one value). Values that only size the experiment (how many inits, pairs,
  levels) are left out: changing them grows or shrinks the plan and keeps every finished run.
  A directory claimed with other settings is refused, naming them (check_directory has
  compared the rest); one claimed before settings were recorded is taken as it is.
  """
  path = layout.experiment_record(directory)
  mine = experiment_identity(job)
  if settings is not None:
    mine[job] = _as_json(settings)
  if not files.exists(path):
    files.write_json_atomic(path, mine)
    return
  theirs = files.read_json(path)
  if settings is not None and job in theirs and theirs[job] != mine[job]:
    raise _refusal(directory, {job: theirs[job]}, {job: mine[job]})


def _refusal(directory, theirs, mine):
  old, new = _named(theirs or {}), _named(mine)
  differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
  return ConfigError(
      f"{directory} already holds a different config's experiment; it differs in "
      + "; ".join(f"{k}: {old.get(k, '(unset)')!r} there, {new.get(k, '(unset)')!r} here"
                  for k in differ[:8])
      + ". Use a fresh --model_dir.")


def check_directory(directory, job):
  """Refuses `directory` if it holds another config's experiment, naming the bindings that
  differ, before anything is written into it (the job's own settings are compared when it
  claims the directory: record_experiment).

  The evaluate job reads an experiment: only the training config has to match.
  """
  path = layout.experiment_record(directory)
  if not files.exists(path):
    return
  mine = experiment_identity(job)
  theirs = files.read_json(path)
  theirs.pop(theirs.get("job"), None)
  if job == "evaluate":
    theirs, mine = theirs.get("training"), mine["training"]
  if theirs != mine:
    raise _refusal(directory, theirs, mine)


def train_run(run_dir, label, strategy, lineage=None, **trainer_kwargs):
  """Trains one run unless it is finished; writes its summary.json at the end.

  `lineage` (lineage()) says what the run is in its experiment: it is written to the run's
  lineage.json (also for a run found finished, so older experiments gain it), and the run
  logs to TensorBoard under its lineage's name, with its lineage as HParams.
  """
  return train_group([dict(run_dir=run_dir, label=label, lineage=lineage, **trainer_kwargs)],
                     strategy)[0]


def train_group(runs, strategy):
  """Trains `runs` (dicts of run_dir, label, lineage and Trainer keywords) that share a
  start and a schedule in one compiled program (group.GroupTrainer), skipping finished ones;
  returns each run's summary. Each run ends as it would alone: its checkpoints, summary and
  lineage in its own directory.

  Runs resumed at different steps (a process killed while the group saved) train in one
  group per step, so each run follows its own uninterrupted course.
  """
  chief = distribute.is_chief(strategy)
  results = [None] * len(runs)
  todo = []
  for i, run in enumerate(runs):
    if run.get("lineage") is not None and chief:
      _record_lineage(run["run_dir"], run["lineage"])
    if layout.is_finished(run["run_dir"]):
      logging.info(f"{run['label']}: finished already ({run['run_dir']})")
      results[i] = files.read_json(layout.summary(run["run_dir"]))
    else:
      todo.append(i)
  with contextlib.ExitStack() as held:
    trainers = {}
    for i in todo:
      held.enter_context(owned(runs[i]["run_dir"], chief))
      trainers[i] = _begun_trainer(strategy, **runs[i])
    by_step = {}
    for i, trainer in trainers.items():
      by_step.setdefault(trainer.step, []).append(i)
    for members in by_step.values():
      if len(members) == 1:
        done = [trainers[members[0]].train()]
      else:
        done = group.GroupTrainer([trainers[i] for i in members]).train()
      for i, summary in zip(members, done):
        if trainers[i].is_chief:
          files.write_json_atomic(layout.summary(runs[i]["run_dir"]), summary)
        results[i] = summary
        trainers[i].release()  # the next run of the same build reuses its model and loop
  return results


def _begun_trainer(strategy, run_dir, label, lineage=None, **trainer_kwargs):
  """A run's Trainer, its config and HParams written, restored or set at its start."""
  if lineage is not None:
    trainer_kwargs["events_dir"] = files.join(run_dir, lineage["tensorboard_dir"])
  logging.info(f"{label}: training in {run_dir}")
  trainer = runner.Trainer(run_dir, strategy=strategy, reuse=True, **trainer_kwargs)
  if trainer.is_chief:
    write_operative_config(run_dir, summary_writer=trainer.summary_writer)
    if lineage is not None:
      summaries.write_hparams(trainer.summary_writer, summaries.run_hparams(lineage),
                              lineage["tensorboard"])
  trainer.begin()
  return trainer


def lineage(experiment_dir, run_dir, tensorboard, role, **fields):
  """What a run is: its experiment and role, the paper's coordinates of it (`fields`: k,
  init, pair, copy, level, variant, seeds, mask, parent) and its TensorBoard run name
  `tensorboard`, under the experiment's tensorboard/ (or IMP's, for a sub-experiment)."""
  root, prefix = layout.tensorboard_home(experiment_dir)
  events = files.join(root, prefix + tensorboard)
  return {"experiment": files.relative(experiment_dir, run_dir), "role": role,
          "run": files.relative(run_dir, experiment_dir), **fields,
          "tensorboard": prefix + tensorboard,
          "tensorboard_dir": files.relative(events, run_dir)}


def parent_seeds(init_seed):
  """The seeds of a run on the parent's data order and augmentation (seed 0 for both)."""
  return {"init_seed": init_seed, "data_order_seed": 0, "augmentation_seed": 0}


def _record_lineage(run_dir, record):
  """The first job to name a run records its lineage; a run another experiment reuses (IMP's
  parents, for its sub-experiments) keeps the lineage it was trained under."""
  path = layout.lineage(run_dir)
  if not files.exists(path):
    files.write_json_atomic(path, _as_json(record))


def owned(run_dir, chief):
  """The run directory's lock, held while its chief trains it (workers write elsewhere)."""
  return files.DirectoryLock(layout.lock(run_dir)) if chief else contextlib.nullcontext()


def training_step(run_dir, label, strategy, lineage=None, **trainer_kwargs):
  """A Step.run that trains one run (train_run) and says whether it had to."""
  return group_step([dict(run_dir=run_dir, label=label, lineage=lineage, **trainer_kwargs)],
                    strategy)


def runs_per_step(copies_per_program, hparams):
  """How many runs of one start and schedule a step trains together: `copies_per_program`
  to a program, training.programs_at_once programs at once (group.GroupTrainer)."""
  return copies_per_program * hparams.programs_at_once


def group_step(runs, strategy):
  """A Step.run that trains `runs` in one program (train_group) and says whether it had to
  train any."""
  def run():
    finished = all(layout.is_finished(r["run_dir"]) for r in runs)
    train_group(runs, strategy)
    return not finished
  return run
