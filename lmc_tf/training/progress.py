"""Progress lines for long training: step, metrics, steps/s and ETA."""

import datetime
import time


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
    print(f"step {step}/{self.total} ({100.0 * step / self.total:3.0f}%) | {values} | "
          f"{rate:.0f} steps/s | ETA {datetime.timedelta(seconds=round(eta))}", flush=True)
