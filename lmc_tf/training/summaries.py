"""What a run shows in TensorBoard besides its curves: tag descriptions, and its lineage and
hyperparameters in the HParams plugin, so runs can be filtered and sorted by k, level or seed.
"""

import gin
from tensorboard.plugins.hparams import api as hp

DESCRIPTIONS = {
    "loss": "Training cross-entropy, mean over the iterations since the previous point. "
            "Step: iteration.",
    "accuracy": "Training accuracy (%), mean over the iterations since the previous point. "
                "Step: iteration.",
    "lr": "Learning rate at this iteration. Step: iteration.",
    "density": "Fraction of the prunable weights that the mask keeps (1 = dense). Step: "
               "iteration.",
    "test/accuracy": "Test accuracy (%) at the end of training. Step: iteration.",
    "test/loss": "Test cross-entropy at the end of training. Step: iteration.",
}

# Training hyperparameters shown beside the lineage (the gin bindings, when bound).
_BOUND = ("training.batch_size", "training.steps", "optimizer.name", "optimizer.learning_rate",
          "optimizer.momentum", "optimizer.weight_decay", "lr_schedule.warmup_steps",
          "model.name", "dataset.name")
_NOT_SHOWN = ("experiment", "tensorboard_dir")  # paths, the same for every run


def alpha_step(alpha):
  """The TensorBoard step of a point at `alpha` on an interpolation path: 1000 alpha (steps
  are integers), so 0 is copy A and 1000 copy B."""
  return int(round(1000 * float(alpha)))


def hparam_value(value):
  """`value` as the HParams plugin takes it: bool, int, float or str."""
  if isinstance(value, (bool, int, float, str)):
    return value
  return "" if value is None else str(value)


def run_hparams(lineage):
  """The HParams of a run: its lineage's scalar fields, then the bound training values."""
  values = {key: hparam_value(value) for key, value in lineage.items()
            if not isinstance(value, dict) and key not in _NOT_SHOWN}
  for key, value in lineage.get("seeds", {}).items():
    values[key] = hparam_value(value)
  for name in _BOUND:
    try:
      values[name] = hparam_value(gin.query_parameter(name))
    except (ValueError, KeyError):  # not bound in this config
      continue
  return values


def write_hparams(writer, hparams, trial_id):
  """Logs one HParams session (`hparams`: {name: scalar}) to `writer`'s run."""
  with writer.as_default(step=0):
    hp.hparams(hparams, trial_id=trial_id)
  writer.flush()
