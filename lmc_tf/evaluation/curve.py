"""One interpolation curve's points on disk, measured once each and resumed after a kill."""

import os

from absl import logging

from lmc_tf import files


class Curve:
  """One curve's points on disk: grid points by index (as the paper's curve.json always
  held them), any other alpha by its value under "extra". Measured once each, resumed."""

  def __init__(self, path, grid, measure, on_point=None, measure_many=None, per_program=1):
    self.path = path
    self.grid = [float(a) for a in grid]
    self._measure = measure
    self._measure_many = measure_many
    self._per_program = per_program
    self._on_point = on_point
    self.points, self.extra = {}, {}
    if files.exists(path):
      try:
        saved = files.read_json(path)
      except files.UnreadableFileError as e:
        logging.warning(f"{e}; its alpha points are measured again")
        saved = {}
      if saved.get("alphas") == self.grid:
        self.points, self.extra = saved["points"], saved.get("extra", {})
        logging.info(f"{os.path.basename(os.path.dirname(path))}: "
                     f"{len(self.points)}/{len(self.grid)} alpha points already measured")

  def at(self, alpha):
    alpha = float(alpha)
    index = self.grid.index(alpha) if alpha in self.grid else None
    store, key = (self.points, str(index)) if index is not None else (self.extra, repr(alpha))
    if key not in store:
      store[key] = self._measure(alpha)
      self._saved([index] if index is not None else [])
    return store[key]

  def missing(self):
    """The grid indices not yet measured."""
    return [i for i in range(len(self.grid)) if str(i) not in self.points]

  def add(self, points):
    """{grid index: point} measured elsewhere (several curves' points in one program):
    kept, written and reported as if measured here."""
    for i, point in points.items():
      self.points[str(i)] = point
    self._saved(list(points))

  def _saved(self, indices):
    saved = {"alphas": self.grid, "points": self.points}
    if self.extra:
      saved["extra"] = self.extra
    files.write_json_atomic(self.path, saved)
    if self._on_point:
      for index in indices:
        self._on_point(index, self.points[str(index)])

  def on_grid(self):
    """Every grid point; the missing ones measured `per_program` at a time (each group of
    points written as soon as it is measured)."""
    missing = self.missing()
    if self._measure_many is None or self._per_program == 1:
      for i in missing:
        self.at(self.grid[i])
    else:
      for start in range(0, len(missing), self._per_program):
        chunk = missing[start:start + self._per_program]
        for i, point in zip(chunk, self._measure_many([self.grid[i] for i in chunk])):
          self.points[str(i)] = point
        self._saved(chunk)
    return [self.points[str(i)] for i in range(len(self.grid))]
