"""The errors a user acts on, shared by every floor (main.py maps them to exit codes)."""


class ConfigError(ValueError):
  """A gin file or binding that cannot be applied (unknown name, bad value, missing file)."""


class DirectoryBusyError(ValueError):
  """Another live process holds the run directory's lock."""


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value, name):
  """`value` if it is an int > 0; else a ConfigError naming the binding."""
  if not _is_int(value) or value <= 0:
    raise ConfigError(f"{name}={value!r} must be a positive integer (at least 1)")
  return value


def non_negative_int(value, name):
  if not _is_int(value) or value < 0:
    raise ConfigError(f"{name}={value!r} must be an integer >= 0")
  return value


def number_in(value, name, low, high, low_open=False, high_open=False):
  """`value` as a float if it is a number in the interval; else a ConfigError naming it."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      (low < value if low_open else low <= value) and
      (value < high if high_open else value <= high)):
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    raise ConfigError(f"{name}={value!r} must be a number in {interval}")
  return float(value)


def positive_number(value, name):
  """A finite number > 0 (an infinite learning rate or width is no setting)."""
  return number_in(value, name, 0, float("inf"), low_open=True, high_open=True)
