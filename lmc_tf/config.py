"""gin wiring: parse files and bindings, with every configurable known up front (SPEC §5, §9).

The operative config is recorded by the jobs (experiments/common.py), once everything
configurable has been built.
"""

import logging as std_logging
import os
import tokenize

import gin
from gin import config_parser

from lmc_tf.errors import ConfigError  # noqa: F401  (config.ConfigError, for callers)

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "gin_configs")


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
  # The job table imports every job, and through them the runner, the model table (every
  # model), the datasets and the strategy factory.
  from lmc_tf import jobs  # noqa: F401
  from lmc_tf.data import cifar10  # noqa: F401
  from lmc_tf.data import imagenet  # noqa: F401
  from lmc_tf.data import mnist  # noqa: F401


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
  except (ValueError, KeyError, TypeError, SyntaxError, tokenize.TokenError) as e:
    unreadable = _unreadable_binding(gin_bindings)
    where = f" (in --gin_bindings={unreadable!r})" if unreadable else ""
    raise ConfigError(f"bad gin config{where}: {e}") from None


def _unreadable_binding(gin_bindings):
  """The first binding that is not even gin syntax, for naming it (gin's error does not)."""
  for binding in gin_bindings:
    try:
      list(config_parser.ConfigParser(binding, gin.config.ParserDelegate(skip_unknown=True)))
    except (ValueError, SyntaxError, tokenize.TokenError):
      return binding
  return None


def _findable(path, search_paths):
  return os.path.exists(path) or any(
      os.path.exists(os.path.join(d, path)) for d in (REPO_CONFIGS, *search_paths))

