"""The on-disk contract: every file and directory name of a run and an experiment, once.

Jobs ask this module where things go; the evaluator and the report ask it where things are,
and never import the jobs (as open_lth's foundations/paths.py does for open_lth).

  <run>/                           one training run (the train job's --model_dir, or runs/*)
    checkpoints/ckpt-<step>        kept: rewind points, the start and the end
    checkpoints/resume/ckpt-<step> the newest periodic checkpoint
    events/                        TensorBoard (a train job's run; an experiment's runs log
                                   to the experiment's tensorboard/ instead)
    lineage.json                   what the run is: experiment, role, k, init, pair, copy,
                                   seeds, mask, parent run, and its TensorBoard name
    operative_config.gin  run_config.json  final_train_metrics.json  lock.json (while training)
    wall_time.json                 training time so far, over every process (with each checkpoint)
    summary.json                   written last, once: the run is finished
  <experiment>/                    (a train job's run directory too)
    experiment.json                the job and the training config that own the directory
    instability.json               the instability plan (parents, copies, pairs), or the
                                   inits job's (networks as parents, pairs of networks)
    imp.json  masks/init<s>-k<k>/<variant>_level<L>.npz   IMP's levels and masks
    runs/<role>-<hash>/            the runs, named by the hash of what they compute
    pairs/<pair id>/{curve.json,curve_step<s>.json,metrics.json,events/}   the evaluator's
      (another BN mode than 'interpolate': curve_<mode>.json, metrics_<mode>.json, ...;
      copy B aligned: permutation_<method>.json, metrics_<method>[_<mode>].json, ...)
    instability/<variant>-level<L>-init<s>-k<k>/   IMP's sub-experiments (experiments)
    report/                        figures and tables; index.html shows them all on one page
    tensorboard/<name>/            TensorBoard, one run per training run and per pair, named
                                   by what it is (k=0100/init=0/pair=1/copy=A), and
                                   tensorboard/experiment/ (instability against k, mean curves)
    summary.json  operative_config.gin  evaluate_operative_config.gin

Run names are hashes of what a run computes (`run_hash`, `training_fingerprint`); a test pins
them, so old results stay findable.
"""

import dataclasses
import hashlib
import json
import os
import re

import gin

from lmc_tf import files

SUMMARY = "summary.json"
OPERATIVE_CONFIG = "operative_config.gin"
EVALUATE_OPERATIVE_CONFIG = "evaluate_operative_config.gin"
RUN_CONFIG = "run_config.json"
FINAL_TRAIN_METRICS = "final_train_metrics.json"
WALL_TIME = "wall_time.json"
LOCK = "lock.json"
LINEAGE = "lineage.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
RESUME = "resume"
CHECKPOINT_PREFIX = "ckpt"
EVENTS = "events"
RUNS = "runs"
MANIFEST = "instability.json"
IMP_RECORD = "imp.json"
EXPERIMENT = "experiment.json"
MASKS = "masks"
PAIRS = "pairs"
CURVE = "curve.json"
METRICS = "metrics.json"
INSTABILITY = "instability"
REPORT = "report"
REPORT_INDEX = "index.html"


# -- one run ------------------------------------------------------------------------------


def summary(directory):
  return files.join(directory, SUMMARY)


def operative_config(directory):
  return files.join(directory, OPERATIVE_CONFIG)


def run_config(run_dir):
  return files.join(run_dir, RUN_CONFIG)


def final_train_metrics(run_dir):
  """The train loss and accuracy of the last loop, kept for a run resumed at its end."""
  return files.join(run_dir, FINAL_TRAIN_METRICS)


def wall_time(run_dir):
  """The run's training wall time so far, summed over the processes that worked on it."""
  return files.join(run_dir, WALL_TIME)


def lock(run_dir):
  """Held by the one process that trains the run (files.DirectoryLock)."""
  return files.join(run_dir, LOCK)


def checkpoint_dir(run_dir):
  return files.join(run_dir, CHECKPOINTS)


def resume_dir(run_dir):
  return files.join(run_dir, CHECKPOINTS, RESUME)


def checkpoint(run_dir, step):
  """The kept checkpoint of `run_dir` at `step` (tf.train.CheckpointManager's naming)."""
  return files.join(run_dir, CHECKPOINTS, f"{CHECKPOINT_PREFIX}-{int(step)}")


def checkpoint_step(path):
  """The step a checkpoint path names: ckpt-<step>."""
  return int(path.rsplit("-", 1)[1])


def events(directory, kind=None):
  return files.join(directory, EVENTS, kind) if kind else files.join(directory, EVENTS)


def lineage(run_dir):
  """What the run is in its experiment (written by the job that trains it)."""
  return files.join(run_dir, LINEAGE)


def tensorboard_home(experiment_dir):
  """(TensorBoard directory, run-name prefix) of an experiment: its own tensorboard/, or for
  IMP's sub-experiments, the IMP experiment's, under the sub-experiment's name."""
  parent, name = os.path.split(files.join(experiment_dir))
  grandparent, folder = os.path.split(parent)
  if folder == INSTABILITY and files.exists(imp_record(grandparent)):
    return files.join(grandparent, TENSORBOARD), name + "/"
  return files.join(experiment_dir, TENSORBOARD), ""


def tensorboard_run(experiment_dir, name):
  """The TensorBoard run directory of `name` (a run's or a pair's) in an experiment."""
  root, prefix = tensorboard_home(experiment_dir)
  return files.join(root, prefix + name)


def rewind_name(k, width=5):
  """k as TensorBoard run names sort it: k=00100 comes before k=01000."""
  return f"k={int(k):0{width}d}"


def rewind_width(manifest):
  """The digits of the experiment's largest k, so its run names sort by k."""
  return len(str(max(manifest["rewind_steps"])))


def _tensorboard_pair_base(pair, width):
  if "init_seeds" in pair:  # the inits job: two networks from different inits
    return "networks/" + "-".join(f"init={s}" for s in pair["init_seeds"])
  reset = pair["variant"] == "reset" and pair["rewind_step"] > 0
  return (f"{'reset/' if reset else ''}{rewind_name(pair['rewind_step'], width)}"
          f"/init={pair['init_seed']}/pair={pair['pair']}")


def tensorboard_copy_name(pair, copy, width):
  """The TensorBoard name of copy `copy` (0: A, 1: B) of an instability pair: what it is in
  the paper (the pairs of the reset schedule under reset/)."""
  return f"{_tensorboard_pair_base(pair, width)}/copy={'AB'[copy]}"


def tensorboard_pair_name(pair, width):
  """The TensorBoard name of a pair's interpolation (its curves, instability and HParams)."""
  return f"{_tensorboard_pair_base(pair, width)}/interpolation"


def is_finished(run_dir):
  """A run is finished once its atomically written summary.json exists."""
  return files.exists(summary(run_dir))


def run_name(role, spec):
  """`runs/<role>-<hash>`, relative to the experiment: the run that `spec` describes."""
  return f"{RUNS}/{role}-{run_hash(spec)}"


# -- one experiment -----------------------------------------------------------------------


def run_dir(experiment_dir, name):
  """The directory of run `name` (relative, as manifests hold them; may climb with '..')."""
  return files.join(experiment_dir, name)


def manifest(experiment_dir):
  return files.join(experiment_dir, MANIFEST)


def experiment_record(directory):
  """Which job and training config own a directory (written before anything else)."""
  return files.join(directory, EXPERIMENT)


def imp_record(experiment_dir):
  return files.join(experiment_dir, IMP_RECORD)


def pair_dir(experiment_dir, pair_id):
  return files.join(experiment_dir, PAIRS, pair_id)


# The paper's BN mode (statistics interpolated like every other variable) with copy B as it
# was trained keeps the file names it always had. A curve with B aligned to A by a
# permutation (alignment/) or in another BN mode carries the method and the mode in its name:
# curve_reset.json, metrics_weight_matching.json, metrics_weight_matching_repair.json.
DEFAULT_BN_MODE = "interpolate"
ALIGN_METHODS = ("weight_matching", "activation_matching")
_KEY = re.compile(r"^metrics(?:_(%s))?(?:_([a-z]+))?\.json$" % "|".join(ALIGN_METHODS))


def key_parts(align, mode):
  """The parts that name an (alignment, BN mode) in files and tags: none for the paper's."""
  return [p for p in (align, None if mode == DEFAULT_BN_MODE else mode) if p]


def _with_key(name, mode, align):
  parts = key_parts(align, mode)
  if not parts:
    return name
  stem, ext = name.rsplit(".", 1)
  return f"{stem}_{'_'.join(parts)}.{ext}"


def curve(experiment_dir, pair_id, step=None, mode=DEFAULT_BN_MODE, align=None):
  """The pair's interpolation curve at the end of training, or at an earlier `step`, with
  BN statistics as BN mode `mode` gives them (evaluation/bn_modes.py), and copy B aligned
  to copy A by `align` if it is not None."""
  name = CURVE if step is None else f"curve_step{int(step)}.json"
  return files.join(experiment_dir, PAIRS, pair_id, _with_key(name, mode, align))


def metrics(experiment_dir, pair_id, mode=DEFAULT_BN_MODE, align=None):
  return files.join(experiment_dir, PAIRS, pair_id, _with_key(METRICS, mode, align))


def permutation(experiment_dir, pair_id, align):
  """The permutation that aligns the pair's copy B to copy A by method `align`."""
  return files.join(experiment_dir, PAIRS, pair_id, f"permutation_{align}.json")


def metrics_keys(experiment_dir, pair_id):
  """(align, BN mode) of every metrics file of the pair: the paper's (None, 'interpolate')
  first, then the other modes of the unaligned pair, then each alignment's."""
  keys = []
  for name in files.listdir(pair_dir(experiment_dir, pair_id)):
    match = _KEY.match(name)
    if match:
      keys.append((match.group(1), match.group(2) or DEFAULT_BN_MODE))
  return sorted(keys, key=lambda k: (k[0] is not None, k[0] or "",
                                     k[1] != DEFAULT_BN_MODE, k[1]))


def metrics_modes(experiment_dir, pair_id):
  """The BN modes the unaligned pair has metrics for, the default first."""
  return [mode for align, mode in metrics_keys(experiment_dir, pair_id) if align is None]


def report_dir(experiment_dir):
  return files.join(experiment_dir, REPORT)


def report_file(experiment_dir, name):
  return files.join(experiment_dir, REPORT, name)


def report_index(experiment_dir):
  """The report's one static page: every figure and table, the config, the raw JSON."""
  return files.join(experiment_dir, REPORT, REPORT_INDEX)


def mask_file(init_seed, rewind_step, variant, level):
  """IMP's mask of `variant` at `level`, relative to the experiment."""
  return f"{MASKS}/init{init_seed}-k{rewind_step}/{variant}_level{level:02d}.npz"


def sparsity_report(mask_path):
  """The .json sparsity report beside a mask .npz."""
  return mask_path[:-len(".npz")] + ".json"


@dataclasses.dataclass(frozen=True)
class SubExperiment:
  """An instability experiment of one IMP subnetwork: <experiment>/instability/<name>/."""
  variant: str
  level: int
  init_seed: int
  rewind_step: int

  _NAME = re.compile(r"^(?P<variant>[a-z_]+)-level(?P<level>\d+)-init(?P<init_seed>\d+)"
                     r"-k(?P<rewind_step>\d+)$")

  @property
  def name(self):
    return f"{self.variant}-level{self.level:02d}-init{self.init_seed}-k{self.rewind_step}"

  def directory(self, experiment_dir):
    return files.join(experiment_dir, INSTABILITY, self.name)

  @classmethod
  def parse(cls, name):
    match = cls._NAME.match(name)
    if not match:
      raise ValueError(f"{name!r} is not a sub-experiment name (variant-levelL-initS-kK)")
    fields = match.groupdict()
    return cls(fields.pop("variant"), **{k: int(v) for k, v in fields.items()})


def sub_experiments(experiment_dir):
  """IMP's sub-experiments under <experiment>/instability/ that have a manifest, in order."""
  root = files.join(experiment_dir, INSTABILITY)
  found = []
  for name in files.listdir(root):
    try:
      sub = SubExperiment.parse(name)
    except ValueError:
      continue
    if files.exists(manifest(sub.directory(experiment_dir))):
      found.append(sub)
  return found


# -- names by hash ------------------------------------------------------------------------

# Configurables that pick what to run and where, not what a run computes: the job and its
# experiment-level arguments (they enter each run's spec explicitly: rewind step, seeds,
# masks), the strategy, and the sweep launcher. Every other bound configurable, including
# one added later, enters the fingerprint.
NOT_FINGERPRINTED = frozenset({"experiment", "strategy", "train", "instability", "imp",
                               "inits", "evaluate", "report", "sweep"})
# Parameters of fingerprinted configurables that cannot change what a run computes:
# logging, checkpoint cadence, loop length, programs run at once, eval batch, XLA, and where
# ImageNet lives.
NOT_FINGERPRINTED_PARAMS = {
    "training": frozenset({"checkpoint_steps", "checkpoint_every", "log_every",
                           "steps_per_loop", "steps_per_program", "programs_at_once",
                           "eval_batch_size", "jit_compile"}),
    "imagenet": frozenset({"data_dir", "manual_dir"})}


def _bound_configurables():
  """(scope, configurable name) of every configurable with a binding in the parsed config."""
  # gin has no public listing of what is bound; its config dict is keyed by (scope, selector).
  names = set()
  for scope, selector in gin.config._CONFIG:  # pylint: disable=protected-access
    match = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
    names.add((scope, match.name if match else selector.rsplit(".", 1)[-1]))
  return sorted(names)


def training_fingerprint():
  """The gin values bound for what a run computes (as open_lth does, only the values a config
  sets: adding a parameter with a default keeps old hashes)."""
  fingerprint = {}
  for scope, name in _bound_configurables():
    if name in NOT_FINGERPRINTED:
      continue
    selector = f"{scope}/{name}" if scope else name
    bindings = {k: v for k, v in gin.get_bindings(selector).items()
                if k not in NOT_FINGERPRINTED_PARAMS.get(name, ())}
    if bindings:
      fingerprint[selector] = bindings
  return fingerprint


def run_hash(spec):
  """A short stable name for the run that `spec` (a JSON-able dict) describes."""
  canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=repr)
  return hashlib.sha256(canonical.encode()).hexdigest()[:12]
