"""Copy B of a pair aligned to copy A by a permutation of its hidden units (alignment/).

The permutation is found once per pair and method and saved beside the pair's results
(layout.permutation); a rerun applies the saved one rather than searching again, so the
aligned curves of every BN mode, and a resumed sweep, use the same network.
"""

import time

from absl import logging
import numpy as np

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.alignment import align as align_lib
from lmc_tf.alignment import permute
from lmc_tf.alignment import spec as spec_lib


class Aligner:
  """Aligns pairs for one evaluator: its scratch model, and the training batches activation
  matching observes (the same for every pair)."""

  def __init__(self, model, data, num_batches, batch_size, seed):
    self._model = model
    self._spec = None
    self._batches = None
    self._data_args = (data, num_batches, batch_size, seed)

  @property
  def spec(self):
    if self._spec is None:
      self._spec = spec_lib.permutation_spec(self._model)
    return self._spec

  def _input_batches(self):
    if self._batches is None:
      data, num_batches, batch_size, seed = self._data_args
      # Un-augmented: matching compares what the two networks compute on the same images.
      dataset = data.train_batches(batch_size, seed, seed, 0, num_batches, augment=False)
      self._batches = [images.numpy() for images, _ in dataset]
    return self._batches

  def aligned(self, model_dir, pair_id, method, weights_a, weights_b, seed=0):
    """Copy B's weights permuted onto A's by `method`, and the saved permutation's record."""
    path = layout.permutation(model_dir, pair_id, method)
    if files.exists(path):
      try:
        record = files.read_json(path)
        perms = permute.from_dict(self.spec, record["perms"])
        return permute.apply_permutation(self.spec, weights_b, perms), record
      except (files.UnreadableFileError, KeyError, ValueError) as e:
        logging.warning(f"{path} cannot be used ({e}); the permutation is found again")
    tic = time.time()
    batches = self._input_batches() if method == align_lib.ACTIVATION_MATCHING else None
    result = align_lib.align(self._model, weights_a, weights_b, method, batches=batches,
                             seed=seed, spec=self.spec)
    record = {"method": method, **result.to_dict(),
              "changed_units": int(sum((p != np.arange(len(p))).sum() for p in result.perms)),
              "units": int(sum(len(p) for p in result.perms)),
              "seconds": round(time.time() - tic, 2)}
    files.write_json_atomic(path, record)
    return result.weights_b, record
