"""The in-memory dataset every loader returns, and the gin-selected `dataset` factory."""

import dataclasses
import importlib
import sys
import tempfile
from typing import Callable, Optional

import gin
import numpy as np

from lmc_tf import errors


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Train and test splits held in host memory as uint8 images and int labels.

  `augment(images, seeds)` is the training augmentation: a pure function of a float batch and
  one stateless seed per example (SPEC §4). None means no augmentation (MNIST).
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  mean: Optional[np.ndarray] = None  # per-channel standardisation after scaling to [0, 1]
  std: Optional[np.ndarray] = None
  augment: Optional[Callable] = None

  # Every pipeline slices the same global batches (data/pipeline.py), so the order does not
  # depend on their number (not a dataclass field: no annotation).
  order_depends_on_input_pipelines = False

  @property
  def image_shape(self):
    return self.x_train.shape[1:]

  @property
  def num_train(self):
    return len(self.x_train)

  @property
  def num_test(self):
    return len(self.x_test)

  def num_examples(self, split):
    return self.num_train if split == "train" else self.num_test

  def with_caps(self, max_train=None, max_test=None):
    """The same dataset restricted to the first `max_train` / `max_test` examples."""
    return dataclasses.replace(
        self, x_train=self.x_train[:max_train], y_train=self.y_train[:max_train],
        x_test=self.x_test[:max_test], y_test=self.y_test[:max_test])

  # Every dataset, in memory or streamed (data/imagenet.py), hands the runner and evaluators
  # its batches through these three methods.

  def train_batches(self, batch_size, data_order_seed, augmentation_seed, start_step,
                    num_steps, input_context=None, augment=True):
    """Per-replica (images, labels) batches for steps [start_step, start_step + num_steps);
    `augment=False` gives the same examples without the training augmentation."""
    from lmc_tf.data import pipeline  # pylint: disable=g-import-not-at-top  (imports TF)
    return pipeline.train_dataset(self, batch_size, data_order_seed, augmentation_seed,
                                  start_step, num_steps, input_context, augment)

  def train_chunks(self, batch_size, data_order_seed, augmentation_seed, start_step, lengths,
                   size, input_context=None):
    """train_batches from `start_step` in chunks of `size` steps, cut at the ends of loops of
    `lengths` steps: (images, labels, real), each with a leading axis of `size`."""
    from lmc_tf.data import pipeline  # pylint: disable=g-import-not-at-top
    return pipeline.train_chunks(self, batch_size, data_order_seed, augmentation_seed,
                                 start_step, lengths, size, input_context)

  def eval_batches(self, split, batch_size, max_examples=None, input_context=None):
    """Per-replica (images, labels, weights) batches of `split`, unaugmented, in order."""
    from lmc_tf.data import pipeline  # pylint: disable=g-import-not-at-top
    images = getattr(self, f"x_{split}")[:max_examples]
    labels = getattr(self, f"y_{split}")[:max_examples]
    return pipeline.eval_dataset(images, labels, self, batch_size, input_context)[0]


def prepare_tfds(name, data_dir, manual_dir, num_shards=None):
  """Prepares TFDS dataset `name` in `data_dir` with TFDS's own builder, offline, from the
  files in `manual_dir` (TFDS takes a file there whose name and checksum it has registered
  for a URL as already downloaded); returns the builder. `num_shards` overrides TFDS's
  choice of file count."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  try:
    importlib.import_module("importlib_resources")
  except ModuleNotFoundError:
    # tfds imports the importlib_resources backport when preparing (dataset_builder.code_path)
    # without declaring it; on Python >= 3.11 the standard library's module has what it uses.
    importlib.import_module("importlib.resources.abc")
    sys.modules["importlib_resources"] = importlib.import_module("importlib.resources")
  builder = tfds.builder(name, data_dir=data_dir)
  # The extracted downloads are needed only while preparing: a temporary directory holds them.
  with tempfile.TemporaryDirectory(prefix=f"tfds-{name}-") as download_dir:
    builder.download_and_prepare(download_dir=download_dir,
                                 download_config=tfds.download.DownloadConfig(
                                     manual_dir=manual_dir, num_shards=num_shards))
  return builder


def load_tfds_arrays(name, data_dir, offline_prepare=None, dir_binding=None):
  """Both splits of TFDS dataset `name` as uint8 images and int32 labels, in TFDS order.

  `offline_prepare` says how to prepare the dataset without a network, if it can be;
  `dir_binding` is the binding that names the data_dir (default: `name`.data_dir)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  arrays = {}
  for split in ("train", "test"):
    try:
      # download=False: nothing is downloaded at run time (and TFDS's download_and_prepare
      # needs importlib_resources, which it does not declare).
      ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=False)
    except AssertionError as e:  # TFDS's "could not find data in ..."
      raise FileNotFoundError(
          f"TFDS {name} is not prepared in {data_dir or 'TFDS default data_dir'} ({e}). "
          f"Prepare it where there is a network (`tfds build {name} --data_dir=DIR`)"
          + (f" or offline ({offline_prepare})" if offline_prepare else "")
          + f" and set {dir_binding or name + '.data_dir'}=DIR, or use {name}.source='files'"
          ) from None
    # Batches of 10k rather than batch_size=-1, which needs a known cardinality.
    parts = list(tfds.as_numpy(ds.batch(10000)))
    arrays[f"x_{split}"] = np.concatenate([x for x, _ in parts]).astype(np.uint8)
    arrays[f"y_{split}"] = np.concatenate([y for _, y in parts]).astype(np.int32)
  return arrays


def load_arrays(name, source, from_files, from_tfds):
  """x_train, y_train, x_test, y_test from `from_files()` or `from_tfds()`, by `source`."""
  if source == "files":
    return from_files()
  if source == "tfds":
    return from_tfds()
  raise ValueError(f"{name}.source={source!r} must be 'files' or 'tfds'")


_LOADERS = {}


def register(name):
  def wrap(fn):
    _LOADERS[name] = fn
    return fn
  return wrap


@gin.configurable("dataset")
def get_dataset(name=gin.REQUIRED, max_train_examples=None, max_test_examples=None):
  """Loads the dataset named in gin. The `max_*` caps take a prefix, for quick configs."""
  if name not in _LOADERS:
    raise ValueError(f"dataset.name={name!r}: unknown dataset; known: {sorted(_LOADERS)}")
  for binding, cap in (("max_train_examples", max_train_examples),
                       ("max_test_examples", max_test_examples)):
    if cap is not None:
      errors.positive_int(cap, f"dataset.{binding}")
  data = _LOADERS[name]()
  return data.with_caps(max_train_examples, max_test_examples)
