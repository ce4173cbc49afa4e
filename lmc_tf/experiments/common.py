"""What every job does the same way: record its config, refuse another config's directory,
and train one run to its summary.

`import gin.tf` crashes on TF 2.21 (tf.estimator is gone), so the operative config is written
here by hand: to `operative_config.gin` in the run directory and to `tf.summary.text`.
"""

import gin
import tensorflow as tf

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.errors import ConfigError
from lmc_tf.training import runner


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


def check_same_config(directory, text):
  """A run dir holds one config: refuse to resume someone else's run."""
  path = layout.operative_config(directory)
  if not files.exists(path):
    return
  old = files.read_text(path)
  if old != text:
    differ = sorted(set(old.splitlines()) ^ set(text.splitlines()))
    raise ConfigError(
        f"{directory} already holds a run of a different config (differs in: "
        f"{'; '.join(l.strip() for l in differ[:6])}). Use a fresh --model_dir.")


def train_run(run_dir, label, **trainer_kwargs):
  """Trains one run unless it is finished; writes its summary.json at the end."""
  if layout.is_finished(run_dir):
    print(f"{label}: finished already ({run_dir})", flush=True)
    return files.read_json(layout.summary(run_dir))
  print(f"{label}: training in {run_dir}", flush=True)
  trainer = runner.Trainer(run_dir, **trainer_kwargs)
  if trainer.is_chief:
    write_operative_config(run_dir, summary_writer=trainer.summary_writer)
  trainer.begin()
  results = trainer.train()
  if trainer.is_chief:
    files.write_json_atomic(layout.summary(run_dir), results)
  return results


def training_step(run_dir, label, **trainer_kwargs):
  """A Step.run that trains one run (train_run) and says whether it had to."""
  def run():
    finished = layout.is_finished(run_dir)
    train_run(run_dir, label, **trainer_kwargs)
    return not finished
  return run
