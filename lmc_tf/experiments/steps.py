"""An experiment as a graph of steps: the unit a sweep launcher fans out (lmc_tf/sweep.py).

A step trains one run (or writes one result) and names the steps whose output it reads: a
copy reads its parent's W_k, IMP level n + 1 reads level n's trained weights. The jobs run
their steps in order in one process; `lmc_tf.sweep` runs the same steps as Ray tasks, with
the dependencies as task dependencies. A step finds its inputs on disk, by the hash names of
layout, so it can run in any process that parsed the same config; a step whose run is
finished returns at once, so reruns and retries never redo work.
"""

import dataclasses
from typing import Callable, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Step:
  """key: unique and stable in the experiment; run(): does the work and returns True if it
  trained, False if it found its run finished; deps: keys of the steps it reads from;
  members: the keys of the runs a step trains together in one program, if several
  (instability.copies_per_program), each of which finds the step (Experiment.step)."""
  key: str
  run: Callable[[], bool]
  deps: Tuple[str, ...] = ()
  members: Tuple[str, ...] = ()


def chunks(items, size):
  """`items` in consecutive lists of at most `size`: the runs one program trains."""
  return [items[i:i + size] for i in range(0, len(items), size)]


def together(keys, run, deps):
  """One step whose `run` trains the runs `keys` in one program (a plain step for one key);
  `deps` is every member's dependencies, each once, in order."""
  return Step("+".join(keys), run, tuple(dict.fromkeys(deps)),
              members=tuple(keys) if len(keys) > 1 else ())


@dataclasses.dataclass
class Experiment:
  """The steps of an experiment, in an order that respects the dependencies, and `finish`,
  which gathers their results (summary files) once all are done."""
  steps: list
  finish: Optional[Callable[[], object]] = None

  def __post_init__(self):
    seen = set()
    for step in self.steps:
      if step.key in seen:
        raise ValueError(f"two steps share the key {step.key!r}")
      missing = [d for d in step.deps if d not in seen]
      if missing:
        raise ValueError(f"step {step.key!r} depends on {missing}, which do not come before it")
      seen.add(step.key)

  def step(self, key):
    for step in self.steps:
      if step.key == key or key in step.members:
        return step
    raise KeyError(f"no step {key!r} in this experiment")

  def run(self):
    """Runs every step in order in this process, then `finish`."""
    for step in self.steps:
      step.run()
    return self.finish() if self.finish else None
