"""ImageNet (ILSVRC 2012) streamed from a prepared TFDS `imagenet2012`, seeded and sharded by host.

ImageNet does not fit in host memory, so unlike data/pipeline.py this reads TFDS's TFRecord
files, decodes JPEGs on the fly and gives each input pipeline (host) its own contiguous shard of
the split. It yields the same per-replica layout as pipeline.py, so the runner and evaluators
cannot tell the difference. SPEC §4's rules, as they apply to a stream:

- Data order is a pure function of (data_order_seed, epoch, pipeline): each epoch permutes the
  shard's files and then permutes each window of `shuffle_buffer` consecutive examples, both
  with stateless ops (Dataset.shuffle's seed also depends on the global seed; STYLE.md). It
  therefore depends on the number of input pipelines (the runner records that in
  run_config.json), but with one pipeline not on the number of replicas: they split each global
  batch in order. A run resumed at step s skips to s within its epoch and sees the batches of
  an uninterrupted run.
- Augmentation is keyed by (augmentation_seed, global step, position in the global batch), as
  in pipeline.py.
- Train crops decode only the crop window (`decode_and_crop_jpeg`); TFDS stores every
  imagenet2012 image as an RGB JPEG.

The files come from TFDS's split API (`train[a:b]` -> file instructions) but are read here
rather than by `builder.as_dataset`: TFDS shuffles files with Dataset.shuffle, and its
ReadConfig(input_context) shards by whole files (unequal shares, and none at all with fewer
files than hosts), whereas a slice gives every host exactly its share. Mixing is that of the
TPU reference (file shuffle, interleave of 16 files, a shuffle buffer): a window holds
consecutive records of the files being read, so with few files per host, the same examples
tend to share windows from one epoch to the next (their order within a window does not repeat).
"""

import dataclasses
import os
from typing import Any

import gin
import numpy as np
import tensorflow as tf

from lmc_tf.data import base
from lmc_tf.data import color
from lmc_tf.data import pipeline

TFDS_NAME = "imagenet2012"
NUM_CLASSES = 1000
SPLITS = {"train": "train", "test": "validation"}  # the paper's test set is the validation set
MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
PREPROCESSINGS = {"resnet": 224, "inception": 299}
# torchvision / TPU reference statistics, on the [0, 1] scale.
MEAN = np.float32([0.485, 0.456, 0.406])
STD = np.float32([0.229, 0.224, 0.225])

_FILE_SALT = 0x6669
_WINDOW_SALT = 0x7769
# JPEG decoding, not the model, is the bottleneck of an ImageNet input pipeline, so it gets every
# core rather than pipeline.py's CIFAR-sized cap; still fixed, not autotuned (see pipeline.py).
_DECODE_PARALLELISM = max(2, os.cpu_count() or 2)
_READ_CYCLE = 16  # files read at once, as TFDS's default interleave


def _missing_message(data_dir, manual_dir):
  where = data_dir or "TFDS's default data_dir (~/tensorflow_datasets)"
  return (f"ImageNet ({TFDS_NAME}) is not prepared in {where}"
          + (f" and {manual_dir!r} lacks {' / '.join(MANUAL_FILES)}" if manual_dir else "")
          + f". Put {MANUAL_FILES[0]} and {MANUAL_FILES[1]} (from image-net.org) in a directory "
          "and set imagenet.manual_dir to it (the first run prepares the TFRecords in "
          "imagenet.data_dir), or point imagenet.data_dir at a prepared copy (the directory "
          f"holding {TFDS_NAME}/<version>/).")


def prepare(data_dir, manual_dir, num_shards=None):
  """Prepares imagenet2012 in `data_dir` from the two official tars in `manual_dir`; returns
  the builder. `num_shards` overrides TFDS's choice of file count (tests use several)."""
  missing = [f for f in MANUAL_FILES if not os.path.isfile(os.path.join(manual_dir, f))]
  if missing:
    raise FileNotFoundError(_missing_message(data_dir, manual_dir))
  return base.prepare_tfds(TFDS_NAME, data_dir, manual_dir, num_shards=num_shards)


def _crop_window(shape, fraction, square):
  """[y, x, h, w] of the central crop keeping `fraction` of the shorter side (square) or of
  each side (as tf.image.central_crop)."""
  height, width = shape[0], shape[1]
  if square:
    side = tf.cast(fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    size = tf.stack([side, side])
    offset = (tf.stack([height, width]) - size + 1) // 2
  else:
    hw = tf.stack([height, width])
    offset = tf.cast((tf.cast(hw, tf.float32) * (1.0 - fraction)) / 2.0, tf.int32)
    size = hw - 2 * offset
  return tf.concat([offset, size], 0)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """The standard ResNet (TPU resnet_preprocessing.py) or Inception (inception_preprocessing.py)
  transforms, stateless. Images come out float32 [size, size, 3].

  Resizing is antialiased bilinear, as PIL's in the torchvision pipeline the paper's code used
  (the TPU ResNet reference resizes bicubic). `color_distortion` (Inception only) distorts
  brightness, saturation, hue and contrast in a random order (data/color.py).
  """
  kind: str
  size: int
  eval_resize: float = 0.875
  color_distortion: bool = False

  def _resized(self, image):
    """`image` resized to size x size, on the [0, 1] scale."""
    image = tf.image.resize(image, [self.size, self.size], method="bilinear", antialias=True)
    return image / 255.0

  def _scaled(self, image):
    if self.kind == "resnet":
      return (image - MEAN) / STD
    return (image - 0.5) * 2.0  # Inception: [-1, 1]

  def train(self, image_bytes, seed):
    """A random-resized crop (area [0.08, 1] ResNet, [0.05, 1] Inception; aspect [3/4, 4/3]),
    resized to `size`, flipped left-right with probability 1/2. As in both references, the crop
    must also cover 10% of the image (min_object_covered=0.1 of the whole-image box). With
    `color_distortion`, the resized crop is colour-distorted on [0, 1], as in the Inception
    reference; its draws come from their own stream of `seed` (data/color.py), so the crop
    and flip are those of the same seed without it."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.image.extract_jpeg_shape(image_bytes)
    resnet = self.kind == "resnet"
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), seed=crop_seed,
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0) if resnet else (0.05, 1.0),
        max_attempts=10 if resnet else 100, use_image_if_no_bounding_boxes=True)
    window = tf.concat([begin[:2], size[:2]], 0)
    if resnet:
      # The sampler returns the whole image when all attempts fail; the ResNet reference then
      # takes the evaluation crop instead.
      failed = tf.reduce_all(tf.equal(size[:2], shape[:2]))
      window = tf.where(failed, _crop_window(shape, self.eval_resize, square=True), window)
    image = self._resized(tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3))
    if self.color_distortion:
      image = color.distort(image, seed)
    return tf.image.stateless_random_flip_left_right(self._scaled(image), flip_seed)

  def eval(self, image_bytes):
    """ResNet: the shorter side resized to size / eval_resize, the central size x size crop
    (as crop then resize). Inception: central crop of eval_resize of each side, resized."""
    shape = tf.image.extract_jpeg_shape(image_bytes)
    window = _crop_window(shape, self.eval_resize, square=self.kind == "resnet")
    return self._scaled(self._resized(
        tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)))


@dataclasses.dataclass(frozen=True)
class StreamedImageNet:
  """ImageNet read from TFDS TFRecords, with ImageDataset's interface (data/base.py).

  `num_train` / `num_test` may be below the split sizes (dataset.max_*_examples): the run then
  uses that prefix of the split, in TFDS's file order.
  """
  builder: Any = dataclasses.field(repr=False, compare=False)
  preprocessing: Preprocessing
  num_train: int
  num_test: int
  shuffle_buffer: int = 10_000
  name: str = TFDS_NAME
  num_classes: int = NUM_CLASSES

  # Each input pipeline reads its own shard, so the order depends on their number (not a
  # dataclass field: no annotation).
  order_depends_on_input_pipelines = True

  @property
  def image_shape(self):
    return (self.preprocessing.size, self.preprocessing.size, 3)

  def num_examples(self, split):
    if split not in SPLITS:
      raise ValueError(f"split {split!r} must be one of {sorted(SPLITS)}")
    return self.num_train if split == "train" else self.num_test

  def with_caps(self, max_train=None, max_test=None):
    """The same dataset restricted to the first `max_train` / `max_test` examples."""
    return dataclasses.replace(
        self, num_train=min(self.num_train, max_train or self.num_train),
        num_test=min(self.num_test, max_test or self.num_test))

  # -- reading -----------------------------------------------------------------------------

  def _files(self, split, start, stop):
    """(paths, skips, takes) of the TFRecord files holding examples [start, stop) of `split`."""
    instructions = self.builder.info.splits[f"{SPLITS[split]}[{start}:{stop}]"].file_instructions
    return (tf.constant([os.fspath(f.filename) for f in instructions]),
            tf.constant([f.skip for f in instructions], tf.int64),
            tf.constant([f.take for f in instructions], tf.int64))

  @staticmethod
  def _read(path, skip, take):
    return tf.data.TFRecordDataset(path).skip(skip).take(take)

  def _parse(self, record):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    example = self.builder.info.features.deserialize_example(
        record, decoders={"image": tfds.decode.SkipDecoding()})
    return example["image"], tf.cast(example["label"], tf.int32)

  # -- the protocol ------------------------------------------------------------------------

  def train_batches(self, batch_size, data_order_seed, augmentation_seed, start_step,
                    num_steps, input_context=None, augment=True):
    """Per-replica (images, labels) batches for steps [start_step, start_step + num_steps);
    `augment=False` preprocesses them as evaluation does (central crop, no distortion).

    Input pipeline p of P reads examples [p, p + 1) * (n // P) of the (capped) train split and
    supplies the slice [p, p + 1) * batch_size / P of every global batch.
    """
    per_epoch = pipeline.steps_per_epoch(self.num_train, batch_size)
    per_replica, local_replicas, pipelines, pipeline_id = pipeline.replica_layout(
        batch_size, input_context)
    local_batch = per_replica * local_replicas
    shard = self.num_train // pipelines
    # shard >= per_epoch * local_batch: local_batch = batch_size / pipelines.
    paths, skips, takes = self._files("train", pipeline_id * shard, (pipeline_id + 1) * shard)
    num_files = int(paths.shape[0])
    window = max(1, min(self.shuffle_buffer, shard))
    order_key = tf.constant([data_order_seed * 65536 + _FILE_SALT, pipeline_id], tf.int64)
    window_key = tf.constant([data_order_seed * 65536 + _WINDOW_SALT, pipeline_id], tf.int64)

    def epoch_batches(epoch):
      file_order = tf.argsort(tf.random.stateless_uniform(
          [num_files], seed=tf.random.experimental.stateless_fold_in(order_key, epoch)),
                              stable=True)
      files = tf.data.Dataset.from_tensor_slices(
          (tf.gather(paths, file_order), tf.gather(skips, file_order),
           tf.gather(takes, file_order)))
      records = files.interleave(self._read, cycle_length=min(_READ_CYCLE, num_files),
                                 block_length=1, num_parallel_calls=min(_READ_CYCLE, num_files),
                                 deterministic=True)
      epoch_key = tf.random.experimental.stateless_fold_in(window_key, epoch)

      def permute(index, chunk):
        key = tf.random.experimental.stateless_fold_in(epoch_key, index)
        noise = tf.random.stateless_uniform(tf.shape(chunk), seed=key)
        return tf.gather(chunk, tf.argsort(noise, stable=True))

      # prefetch(1): the next window is read while this one is consumed.
      records = records.batch(window).enumerate().map(permute).prefetch(1).unbatch()
      steps = tf.data.Dataset.range(epoch * per_epoch, (epoch + 1) * per_epoch)
      return tf.data.Dataset.zip(
          steps, records.batch(local_batch, drop_remainder=True).take(per_epoch))

    def with_seeds(step, records):
      seeds = pipeline.example_seeds(augmentation_seed, step, batch_size)
      return records, seeds[pipeline_id * local_batch:(pipeline_id + 1) * local_batch]

    def example(record, seed):
      image_bytes, label = self._parse(record)
      if not augment:
        return self.preprocessing.eval(image_bytes), label
      return self.preprocessing.train(image_bytes, seed), label

    first_epoch = start_step // per_epoch
    last_epoch = (start_step + num_steps - 1) // per_epoch
    ds = tf.data.Dataset.range(first_epoch, last_epoch + 1).flat_map(epoch_batches)
    # Skipping before decoding: resuming mid-epoch reads the skipped records but decodes none.
    ds = ds.skip(start_step - first_epoch * per_epoch).take(num_steps)
    ds = ds.map(with_seeds).unbatch()
    ds = ds.map(example, num_parallel_calls=_DECODE_PARALLELISM, deterministic=True)
    ds = ds.batch(per_replica, drop_remainder=True)
    return pipeline.fixed_parallelism(ds.prefetch(2))

  def train_chunks(self, batch_size, data_order_seed, augmentation_seed, start_step, lengths,
                   size, input_context=None):
    """train_batches from `start_step` in chunks of `size` steps cut at the ends of loops of
    `lengths` steps (pipeline.in_chunks): decoded example by example, then chunked."""
    return pipeline.in_chunks(
        self.train_batches(batch_size, data_order_seed, augmentation_seed, start_step,
                           sum(lengths), input_context), lengths, size)

  def eval_batches(self, split, batch_size, max_examples=None, input_context=None):
    """Per-replica (images, labels, weights) batches of the first `max_examples` of `split`.

    There are ceil(n / batch_size) global batches. Pipeline p reads the contiguous block
    [p, p + 1) * n_batches * batch_size / P of the split, padded with weight-0 examples, so
    with one pipeline the examples come in the split's order.
    """
    n = self.num_examples(split)
    if max_examples is not None:
      n = min(n, max_examples)
    per_replica, local_replicas, _, pipeline_id = pipeline.replica_layout(
        batch_size, input_context)
    local_batch = per_replica * local_replicas
    block = -(-n // batch_size) * local_batch
    start, stop = min(pipeline_id * block, n), min((pipeline_id + 1) * block, n)

    def example(record):
      image_bytes, label = self._parse(record)
      return self.preprocessing.eval(image_bytes), label, tf.constant(1.0)

    padding = tf.data.Dataset.from_tensors(
        (tf.zeros(self.image_shape), tf.constant(0), tf.constant(0.0)))
    ds = padding.repeat(block - (stop - start))
    if stop > start:
      files = tf.data.Dataset.from_tensor_slices(self._files(split, start, stop))
      real = files.flat_map(self._read).map(
          example, num_parallel_calls=_DECODE_PARALLELISM, deterministic=True)
      ds = real.concatenate(ds)
    ds = ds.batch(per_replica, drop_remainder=True)
    return pipeline.fixed_parallelism(ds.prefetch(2))


@base.register(TFDS_NAME)
@gin.configurable("imagenet")
def load(data_dir=None, manual_dir=None, preprocessing="resnet", image_size=None,
         shuffle_buffer=10_000, eval_resize=0.875, color_distortion=False):
  """ImageNet through TFDS: 1,281,167 train and 50,000 validation (our test) images.

  Args:
    data_dir: the TFDS data_dir holding (or to hold) the prepared imagenet2012; None: TFDS's
      default. gs:// paths work.
    manual_dir: a directory with ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar; used to
      prepare the dataset in `data_dir` when it is not prepared yet.
    preprocessing: 'resnet' (random-resized crop, flip, mean/std standardisation) or
      'inception' (distorted crop, flip, scaled to [-1, 1]).
    image_size: the side S of the square inputs; None: 224 for resnet, 299 for inception.
    shuffle_buffer: examples per stateless shuffle window, per input pipeline.
    eval_resize: the central-crop fraction at evaluation, 224/256: ResNet resizes the shorter
      side to S / eval_resize and keeps the central S x S; Inception keeps this fraction of
      each side and resizes to S x S.
    color_distortion: Inception only: distort each training crop's brightness, saturation, hue
      and contrast, in one of four random orders, as the TPU reference's `distort_color`
      (data/color.py). The ResNet reference has no colour distortion, so 'resnet' rejects it.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  if preprocessing not in PREPROCESSINGS:
    raise ValueError(f"imagenet.preprocessing={preprocessing!r} must be one of "
                     f"{sorted(PREPROCESSINGS)}")
  if color_distortion and preprocessing != "inception":
    raise ValueError(f"imagenet.color_distortion is Inception's (the {preprocessing!r} "
                     "reference preprocessing has no colour distortion); set "
                     "imagenet.preprocessing='inception' or leave color_distortion False")
  if not 0 < eval_resize <= 1:
    raise ValueError(f"imagenet.eval_resize={eval_resize} must lie in (0, 1]")
  if shuffle_buffer < 1:
    raise ValueError(f"imagenet.shuffle_buffer={shuffle_buffer} must be positive")
  builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
  if not builder.is_prepared():
    if not manual_dir:
      raise FileNotFoundError(_missing_message(data_dir, manual_dir))
    builder = prepare(data_dir, manual_dir)
  missing = [s for s in SPLITS.values() if s not in builder.info.splits]
  if missing:
    raise FileNotFoundError(f"{builder.data_dir} lacks the {missing} split(s). "
                            + _missing_message(data_dir, manual_dir))
  if builder.info.file_format.value != "tfrecord":
    raise ValueError(f"{builder.data_dir} is stored as {builder.info.file_format.value}; "
                     "lmc_tf reads TFDS's default tfrecord files. Prepare it again with the "
                     "default file format.")
  return StreamedImageNet(
      builder=builder,
      preprocessing=Preprocessing(preprocessing, image_size or PREPROCESSINGS[preprocessing],
                                  eval_resize, bool(color_distortion)),
      num_train=builder.info.splits["train"].num_examples,
      num_test=builder.info.splits["validation"].num_examples,
      shuffle_buffer=shuffle_buffer)
