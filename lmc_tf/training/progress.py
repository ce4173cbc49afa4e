"""Progress lines for long training (step, metrics, steps/s and ETA), and its wall time."""

import datetime
import time

from absl import logging

from lmc_tf import files


class Progress:
  """One plain line per report, with steps/s and ETA: readable in a terminal and in a log.

  (keras.utils.Progbar redraws in place with backspaces whenever `posix` is imported, which
  garbles log files, so the runner prints its own line.)
  """

  def __init__(self, total, start):
    self.total, self.start = total, start
    self.started = self.last_time = time.time()
    self.last_step = start

  def report(self, step, metrics):
    now = time.time()
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    overall = (step - self.start) / max(now - self.started, 1e-9)
    eta = (self.total - step) / max(overall, 1e-9)
    self.last_time, self.last_step = now, step
    values = " | ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    logging.info(f"step {step}/{self.total} ({100.0 * step / self.total:3.0f}%) | {values} | "
                 f"{rate:.0f} steps/s | ETA {datetime.timedelta(seconds=round(eta))}")


class WallClock:
  """A run's training wall time summed over every process that worked on it.

  Each process adds its own time to what the earlier ones recorded in `path`, a small JSON
  file written atomically beside each checkpoint it saves and at the end. So a run killed and
  resumed reports the time of all its processes (a killed one's up to its last checkpoint:
  the work after it is done again, and timed, by the next process).
  """

  def __init__(self, path, write):
    self.path, self.write = path, write
    self.started = time.time()
    self.before = 0.0

  def resume(self):
    """Takes up the time the earlier processes of this run recorded, if any."""
    if not files.exists(self.path):
      return
    try:
      self.before = float(files.read_json(self.path)["wall_time_s"])
    except (files.UnreadableFileError, KeyError, TypeError, ValueError) as e:
      # A wall time is not worth stopping a run for: it is named, and counted from here.
      logging.warning(f"{self.path} cannot be read ({e}); wall_time_s counts this process "
                      "only")

  def seconds(self):
    return self.before + time.time() - self.started

  def record(self, step):
    """Writes the time so far (every process's) at `step`; returns it in seconds."""
    seconds = self.seconds()
    if self.write:
      files.write_json_atomic(self.path, {"wall_time_s": round(seconds, 3), "step": step})
    return seconds
