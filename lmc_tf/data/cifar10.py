"""CIFAR-10 from the official `cifar-10-batches-py` directory or an `.npz` file, or from TFDS.

Training augmentation is the standard one the paper uses (SPEC §4): pad 4, random 32x32 crop,
random horizontal flip, drawn statelessly per example so that a copy's augmentation is a pure
function of its augmentation seed and the example's place in the run.
"""

import functools
import os
import pickle

import gin
import numpy as np
import tensorflow as tf

from lmc_tf import files
from lmc_tf import hashing
from lmc_tf.data import base

DEFAULT_PATH = os.path.join("data", "cifar-10-batches-py")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
# The training-set statistics of open_lth (and most PyTorch CIFAR code). Fixed constants, so a
# subset standardises exactly as the full set does.
MEAN = np.float32([0.4914, 0.4822, 0.4465])
STD = np.float32([0.2023, 0.1994, 0.2010])
PAD = 4


def _layout_message(path):
  return (f"CIFAR-10 at {path!r}: expected either the official 'cifar-10-batches-py' directory "
          f"(pickled {', '.join(TRAIN_BATCHES)} and {TEST_BATCH}, each a dict with b'data' "
          f"[N, 3072] uint8 in CHW order and b'labels') or an .npz file with arrays "
          f"{', '.join(NPZ_KEYS)} (x uint8 [N, 32, 32, 3]). Set cifar10.path=... (relative to "
          f"the working directory) or cifar10.source='tfds'.")


def _to_nhwc(x, where):
  """Images as uint8 [N, 32, 32, 3]; accepts NHWC, NCHW or the batches' flat CHW rows."""
  x = np.asarray(x)
  if x.dtype != np.uint8:
    raise ValueError(f"{where}: images must be uint8, got {x.dtype}")
  if x.ndim == 2 and x.shape[1] == 3 * 32 * 32:
    x = x.reshape(-1, 3, 32, 32)
  if x.ndim == 4 and x.shape[1:] == (3, 32, 32):
    x = x.transpose(0, 2, 3, 1)
  if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
    raise ValueError(f"{where}: images have shape {x.shape}; expected [N, 32, 32, 3], "
                     f"[N, 3, 32, 32] or [N, 3072]")
  return np.ascontiguousarray(x)


def _to_labels(y, num_images, where):
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:  # keras.datasets.cifar10 gives [N, 1]
    y = y[:, 0]
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{where}: labels must be integers of shape [N], got {y.dtype} {y.shape}")
  if len(y) != num_images:
    raise ValueError(f"{where}: {num_images} images but {len(y)} labels")
  if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
    raise ValueError(f"{where}: labels must lie in 0..{NUM_CLASSES - 1}, "
                     f"got {y.min()}..{y.max()}")
  return y.astype(np.int32)


def _split(x, y, where):
  x = _to_nhwc(x, where)
  return x, _to_labels(y, len(x), where)


def checked(arrays, where):
  """x_train, y_train, x_test, y_test as uint8 NHWC images and int32 labels in 0..9; a
  ValueError naming `where` otherwise."""
  out = {}
  for split in ("train", "test"):
    out[f"x_{split}"], out[f"y_{split}"] = _split(
        arrays[f"x_{split}"], arrays[f"y_{split}"], f"{where} [x_{split}/y_{split}]")
  return out


class _BatchUnpickler(pickle.Unpickler):
  """Unpickles only what the official batches hold (numpy arrays, lists, strings): a stray
  pickle then fails to load instead of running code."""
  _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
      (f"numpy.{core}.{module}", name) for core in ("core", "_core")
      for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                           ("numeric", "_frombuffer"))}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
    return super().find_class(module, name)


def _read_batch(path):
  try:
    with open(path, "rb") as f:
      batch = _BatchUnpickler(f, encoding="bytes").load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
          ImportError) as e:
    raise ValueError(f"{path} is not a CIFAR-10 python batch ({e}). "
                     + _layout_message(os.path.dirname(path))) from e
  if not isinstance(batch, dict):
    raise ValueError(f"{path} holds a {type(batch).__name__}, not a batch dict. "
                     + _layout_message(os.path.dirname(path)))
  batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
  missing = [k for k in ("data", "labels") if k not in batch]
  if missing:
    raise ValueError(f"{path} lacks {missing}. " + _layout_message(os.path.dirname(path)))
  return _split(batch["data"], batch["labels"], path)


def load_from_batches(directory):
  """The official python version: five training batches and one test batch."""
  missing = [f for f in TRAIN_BATCHES + (TEST_BATCH,)
             if not os.path.isfile(os.path.join(directory, f))]
  if missing:
    raise FileNotFoundError(_layout_message(directory) + f" Missing: {', '.join(missing)}")
  train = [_read_batch(os.path.join(directory, f)) for f in TRAIN_BATCHES]
  x_test, y_test = _read_batch(os.path.join(directory, TEST_BATCH))
  return dict(x_train=np.concatenate([x for x, _ in train]),
              y_train=np.concatenate([y for _, y in train]), x_test=x_test, y_test=y_test)


def load_from_npz(path):
  with open(path, "rb") as f:
    data = f.read()
  try:
    raw = {k: v for k, v in files.npz_arrays(data).items() if k in NPZ_KEYS}
  except ValueError as e:
    raise ValueError(f"{path} is not a readable .npz ({e}). " + _layout_message(path)) from None
  missing = [k for k in NPZ_KEYS if k not in raw]
  if missing:
    raise ValueError(f"{path} lacks {missing}. " + _layout_message(path))
  return checked(raw, path)


def load_from_files(path):
  """A `cifar-10-batches-py` directory or an `.npz` file."""
  if os.path.isdir(path):
    return load_from_batches(path)
  if os.path.isfile(path):
    return load_from_npz(path)
  raise FileNotFoundError(f"Nothing at {os.path.abspath(path)!r}. " + _layout_message(path))


def load_from_tfds(data_dir):
  arrays = base.load_tfds_arrays("cifar10", data_dir, dir_binding="cifar10.path")
  return checked(arrays, f"tfds cifar10 in {data_dir}")


def crop_and_flip_draws(seeds):
  """Per-example (row offset, column offset, flip) from seeds [B, 2], each a pure function of
  its own seed pair.

  tf.random.stateless_* take one seed per call and tf.vectorized_map cannot batch them (no pfor
  rule for StatelessRandomGetKeyCounter), so the draws hash the seed pair instead: a few
  elementwise ops on the whole batch. For a fixed first seed, distinct second seeds (example
  indices) give distinct hashes.
  """
  seeds = tf.bitcast(tf.cast(seeds, tf.int64), tf.uint64)
  golden = tf.constant(hashing.GOLDEN, tf.uint64)
  h = hashing.mix64(hashing.mix64(seeds[:, 0] + golden) ^ seeds[:, 1])
  # The top 53 bits as a non-negative int64; 2**53 mod 162 makes the bias negligible.
  v = tf.bitcast(tf.bitwise.right_shift(h, tf.constant(11, tf.uint64)), tf.int64)
  span = 2 * PAD + 1
  return v % span, (v // span) % span, (v // span ** 2) % 2 == 1


def pad_crop_flip(images, seeds, fill):
  """Pad by 4 with `fill`, take a random 32x32 window, flip it left-right with probability 1/2.

  Args:
    images: float [B, H, W, C], already standardised.
    seeds: int [B, 2], one stateless seed per example (pipeline.example_seeds).
    fill: [C], the padding value per channel (black after standardisation).

  Returns:
    [B, H, W, C]: pixel (i, j) of example b is padded[b, dy + i, dx + j'] with j' = W - 1 - j
    when flipped, else j, as torchvision's RandomCrop(padding=4) then RandomHorizontalFlip.
  """
  height, width = images.shape[1], images.shape[2]
  dy, dx, flip = crop_and_flip_draws(seeds)
  # tf.pad takes one scalar; adding `fill` on the border (and -0.0 inside) keeps pixels exact.
  border = np.ones([height + 2 * PAD, width + 2 * PAD, 1], np.float32)
  border[PAD:PAD + height, PAD:PAD + width] = 0
  padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
  padded += tf.cast(border * fill, images.dtype)
  rows = dy[:, None] + tf.range(height, dtype=tf.int64)[None]
  cols = tf.range(width, dtype=tf.int64)[None]
  cols = dx[:, None] + tf.where(flip[:, None], width - 1 - cols, cols)
  out = tf.gather(padded, rows, axis=1, batch_dims=1)
  return tf.gather(out, cols, axis=2, batch_dims=1)


@base.register("cifar10")
@gin.configurable("cifar10")
def load(path=None, source="files", augment=True):
  """CIFAR-10: 50,000 train and 10,000 test 32x32x3 images, 10 classes.

  Args:
    path: for source='files', the `cifar-10-batches-py` directory or an `.npz` with
      x_train, y_train, x_test, y_test (None: data/cifar-10-batches-py); relative paths are
      relative to the working directory. For source='tfds', the TFDS data_dir (None: TFDS's
      default).
    source: 'files' or 'tfds'.
    augment: pad 4, random crop, random horizontal flip on training batches (SPEC §4).
  """
  arrays = base.load_arrays("cifar10", source, lambda: load_from_files(path or DEFAULT_PATH),
                            lambda: load_from_tfds(path))
  # Black after standardisation, as torchvision pads before normalising.
  fill = (np.float32(0) - MEAN) / STD
  return base.ImageDataset(
      name="cifar10", num_classes=NUM_CLASSES, mean=MEAN, std=STD,
      augment=functools.partial(pad_crop_flip, fill=fill) if augment else None, **arrays)
