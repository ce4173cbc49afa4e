"""The errors a user acts on, shared by every floor (main.py maps them to exit codes)."""


class ConfigError(ValueError):
  """A gin file or binding that cannot be applied (unknown name, bad value, missing file)."""


class DirectoryBusyError(ValueError):
  """Another live process holds the run directory's lock."""
