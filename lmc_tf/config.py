"""gin wiring: parse files and bindings, and record the operative config (SPEC §5, §9).

`import gin.tf` crashes on TF 2.21 (tf.estimator is gone), so the operative config is written
here by hand: to `operative_config.gin` in the run directory and to `tf.summary.text`.
"""

import logging as std_logging
import os

import gin
import tensorflow as tf

from lmc_tf.experiments import rundirs

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "gin_configs")
OPERATIVE_CONFIG = "operative_config.gin"


class ConfigError(ValueError):
  """A gin file or binding that cannot be applied (unknown name, bad value, missing file)."""


def quiet_logs():
  """Keeps the console to what a user acts on (--verbosity=0 shows everything)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)  # TF logs every checkpoint save at INFO
  # Each run of an experiment builds its own model and tf.functions, by design; TF's advice
  # to reuse them is noise here.
  std_logging.getLogger("tensorflow").addFilter(
      lambda record: "triggered tf.function retracing" not in record.getMessage())
  # gin logs each place it looked for an included file before the one where it found it; a
  # file it cannot find anywhere is still an error.
  std_logging.getLogger().addFilter(
      lambda record: not record.getMessage().startswith("Path not found"))


def register_configurables():
  """Imports every module that defines a configurable, so gin knows all names up front."""
  # pylint: disable=g-import-not-at-top,unused-import
  from lmc_tf import distribute  # noqa: F401
  from lmc_tf.data import cifar10  # noqa: F401
  from lmc_tf.data import imagenet  # noqa: F401
  from lmc_tf.data import mnist  # noqa: F401
  from lmc_tf.experiments import jobs
  from lmc_tf.models import registry
  from lmc_tf.training import runner  # noqa: F401
  registry.names()  # imports every model module
  jobs.job_names()  # imports every job module


def parse(gin_files=(), gin_bindings=(), search_paths=()):
  """Parses config files then bindings; an unknown or misspelled name is a ConfigError."""
  register_configurables()
  for path in (os.getcwd(), REPO_CONFIGS, *search_paths):
    gin.add_config_file_search_path(path)
  missing = [f for f in gin_files if not _findable(f, search_paths)]
  if missing:
    raise ConfigError(f"gin file(s) not found: {', '.join(missing)}")
  try:
    gin.parse_config_files_and_bindings(list(gin_files), list(gin_bindings),
                                        finalize_config=True)
  except (ValueError, KeyError, TypeError, SyntaxError) as e:
    raise ConfigError(f"bad gin config: {e}") from None


def _findable(path, search_paths):
  return os.path.exists(path) or any(
      os.path.exists(os.path.join(d, path)) for d in (REPO_CONFIGS, *search_paths))


def operative_config():
  return gin.operative_config_str()


def record_operative_config(model_dir, summary_writer=None):
  """Writes the operative config to the run dir (atomically) and, if given, to TensorBoard.

  Returns the config text. Call it once everything configurable has been built, so the config
  holds every value that was used.
  """
  text = operative_config()
  rundirs.write_text_atomic(os.path.join(model_dir, OPERATIVE_CONFIG), text)
  if summary_writer is not None:
    with summary_writer.as_default(step=0):
      # Markdown code block, one line per binding, as TensorBoard's text plugin renders it.
      tf.summary.text("operative_config", "\n".join("    " + l for l in text.splitlines()))
    summary_writer.flush()
  return text
