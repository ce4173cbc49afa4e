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

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "gin_configs")


class _LogFilter(std_logging.Filter):
  """What reaches the terminal and the log file.

  lmc_tf's own lines from INFO up; other libraries' (TF's checkpoint saves and sharding
  times, gin, matplotlib), even through absl's logger, from WARNING up (everything at
  --verbosity=1); and never TF's advice to reuse tf.functions (each run of an experiment
  builds its own model, by design) or gin's "Path not found" for each place it looked before
  finding an included file.
  """

  def __init__(self, verbose):
    super().__init__()
    self.verbose = verbose

  def filter(self, record):
    message = record.getMessage()
    if "triggered tf.function retracing" in message or message.startswith("Path not found"):
      return False
    return (self.verbose or record.levelno >= std_logging.WARNING
            or record.pathname.startswith(_PACKAGE))


class _TerminalFormatter(std_logging.Formatter):
  """A bare line for INFO (progress stays one short line), 'warning: ' / 'error: ' above."""

  def format(self, record):
    message = super().format(record)
    if record.levelno >= std_logging.ERROR:
      return f"error: {message}"
    if record.levelno >= std_logging.WARNING:
      return f"warning: {message}"
    return message


def setup_logging(log_dir=None, program="lmc_tf", verbosity=None):
  """Sends every line through absl logging, so --verbosity, --log_dir and --alsologtostderr work.

  With `log_dir`, absl's log files (PROGRAM.INFO, ...) in it get every line in absl's format,
  and the terminal gets warnings and errors (--stderrthreshold) or everything
  (--alsologtostderr). Without it, the terminal gets bare lines. `verbosity` sets absl's where
  no flags were parsed (a Ray worker).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.use_absl_handler()  # app.run has installed it already; a Ray worker has not
  if verbosity is not None:
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()  # absl's defaults, without its "before flag parsing" note
    logging.set_verbosity(verbosity)
  if flags.FLAGS.is_parsed() and not flags.FLAGS["stderrthreshold"].present:
    flags.FLAGS.stderrthreshold = "warning"  # with --log_dir, warnings reach the terminal too
  handler = logging.get_absl_handler()
  if log_dir:
    try:
      if "://" in log_dir:
        raise OSError("absl writes its log files locally: name a local directory (the "
                      "experiment itself may be on gs://)")
      os.makedirs(log_dir, exist_ok=True)
      handler.use_absl_log_file(program_name=program, log_dir=log_dir)
    except OSError as e:
      handler.setFormatter(_TerminalFormatter())  # the error itself goes to the terminal
      raise ConfigError(f"--log_dir={log_dir} cannot hold log files: {e}") from None
  else:
    handler.setFormatter(_TerminalFormatter())
  for old in [f for f in handler.filters if isinstance(f, _LogFilter)]:
    handler.removeFilter(old)
  handler.addFilter(_LogFilter(verbose=logging.get_verbosity() >= logging.DEBUG))


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

