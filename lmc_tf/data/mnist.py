"""MNIST from the four official idx `.gz` files (bundled copy by default), or from TFDS."""

import gzip
import os
import zlib

import gin
import numpy as np

from lmc_tf.data import base

BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "bundled", "mnist")
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def read_idx(path):
  """Reads one idx file (big-endian header: magic, then one uint32 per dimension)."""
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated, damaged
    raise ValueError(f"{path} is not a readable gzip file ({e}): replace it with the "
                     "official MNIST file of that name") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise ValueError(f"{path} is not an idx file of uint8 (bad magic number)")
  ndim = raw[3]
  dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int)
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != np.prod(dims):
    raise ValueError(f"{path}: header says {tuple(dims)} but holds {data.size} bytes")
  return data.reshape(dims)


def _layout_message(data_dir):
  return (f"MNIST not found in {data_dir!r}: expected the four official files "
          f"{', '.join(FILES.values())} there (or mnist.source='tfds').")


def load_from_files(data_dir):
  missing = [f for f in FILES.values() if not os.path.exists(os.path.join(data_dir, f))]
  if missing:
    raise FileNotFoundError(_layout_message(data_dir) + f" Missing: {', '.join(missing)}")
  arrays = {k: read_idx(os.path.join(data_dir, f)) for k, f in FILES.items()}
  for split in ("train", "test"):
    if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
      raise ValueError(f"{data_dir}: {split} images and labels differ in count")
  return {k: v[..., None] if k.startswith("x") else v.astype(np.int32)
          for k, v in arrays.items()}


def prepare_tfds(data_dir, files_dir=None):
  """Prepares TFDS `mnist` in `data_dir` from the four official `.gz` files in `files_dir`
  (None: the bundled copy), offline: they have the names and checksums TFDS registers for
  its download URLs. Returns the builder; then mnist.source='tfds', mnist.data_dir=data_dir.

    python -c "from lmc_tf.data import mnist; mnist.prepare_tfds('data/tfds')"
  """
  files_dir = files_dir or BUNDLED_DIR
  missing = [f for f in FILES.values() if not os.path.exists(os.path.join(files_dir, f))]
  if missing:
    raise FileNotFoundError(_layout_message(files_dir) + f" Missing: {', '.join(missing)}")
  return base.prepare_tfds("mnist", data_dir, files_dir)


@base.register("mnist")
@gin.configurable("mnist")
def load(data_dir=None, source="files", standardize=True):
  """MNIST: 60,000 train and 10,000 test 28x28x1 images; no augmentation (SPEC §4).

  Args:
    data_dir: for source='files', a directory with the four idx `.gz` files (None: the copy
      bundled with lmc_tf); for source='tfds', the TFDS data_dir (None: TFDS's default).
    source: 'files' or 'tfds'.
    standardize: after scaling to [0, 1], subtract 0.1307 and divide by 0.3081, as the
      paper's reference code (open_lth) does.
  """
  arrays = base.load_arrays("mnist", source, lambda: load_from_files(data_dir or BUNDLED_DIR),
                            lambda: base.load_tfds_arrays(
                                "mnist", data_dir, "lmc_tf.data.mnist.prepare_tfds(DIR) "
                                "does it from the bundled files"))
  stats = dict(mean=np.float32([0.1307]), std=np.float32([0.3081])) if standardize else {}
  return base.ImageDataset(name="mnist", num_classes=10, **stats, **arrays)
