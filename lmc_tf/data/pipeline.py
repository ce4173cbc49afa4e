"""The seeded input pipeline: data order and augmentation as pure functions of (seed, step).

Every training step s reads global batch s of a per-epoch permutation drawn statelessly from
(data_order_seed, epoch), so a run resumed at step s sees exactly the batches it would have
seen, whatever the replica count (SPEC §4). Augmentation draws one stateless seed per example
from (augmentation_seed, step, position in the global batch). The init seed plays no part here.
"""

import os

import tensorflow as tf

# Salts keep the order and augmentation streams apart even when the two seeds are equal.
_ORDER_SALT = 0x6F72
_AUGMENT_SALT = 0x6175


def steps_per_epoch(num_examples, batch_size):
  """Full batches per epoch; the few examples left over are dropped (a new set each epoch)."""
  if batch_size > num_examples:
    raise ValueError(f"batch size {batch_size} exceeds the {num_examples} training examples")
  return num_examples // batch_size


def epoch_order(data_order_seed, epoch, num_examples):
  """The permutation of the training set used in `epoch`."""
  seed = tf.stack([tf.cast(data_order_seed, tf.int64) * 65536 + _ORDER_SALT,
                   tf.cast(epoch, tf.int64)])
  return tf.argsort(tf.random.stateless_uniform([num_examples], seed=seed), stable=True)


def example_seeds(augmentation_seed, step, batch_size):
  """One stateless seed pair per example of global batch `step`, shape [batch_size, 2]; for
  steps of shape [S], of each of them: [S, batch_size, 2]."""
  step = tf.cast(step, tf.int64)
  index = step[..., None] * batch_size + tf.range(batch_size, dtype=tf.int64)
  first = tf.fill(tf.shape(index),
                  tf.cast(augmentation_seed, tf.int64) * 65536 + _AUGMENT_SALT)
  return tf.stack([first, index], axis=-1)


# Fixed parallelism instead of tf.data's autotuner: destroying an autotuned iterator waits on
# the autotune thread, which stalled every other evaluation pass (3.4 s -> 5-10 s for 10k
# ResNet-20 test images, benchmarks/throughput.py), and the pipeline is far from the
# bottleneck either way (75k augmented CIFAR images/s on 2 cores).
_PARALLELISM = max(2, min(8, os.cpu_count() or 2))


def replica_layout(batch_size, input_context=None):
  """How input pipeline `pipeline_id` feeds its replicas from a global batch of `batch_size`.

  Returns (per-replica batch, replicas fed by this pipeline, pipelines, pipeline_id); without
  an input context, one pipeline feeds one replica.
  """
  replicas = input_context.num_replicas_in_sync if input_context else 1
  pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  if batch_size % replicas:
    raise ValueError(f"batch {batch_size} is not divisible by {replicas} replicas")
  if replicas % pipelines:
    raise ValueError(f"{replicas} replicas cannot be spread evenly over {pipelines} input "
                     "pipelines")
  return batch_size // replicas, replicas // pipelines, pipelines, pipeline_id


def fixed_parallelism(ds):
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.with_options(options)


def _scale(images, data):
  images = tf.cast(images, tf.float32) / 255.0
  if data.mean is not None:
    images = (images - data.mean) / data.std
  return images


def _scale_table(data):
  """_scale of each uint8 value, per channel: [256, channels], computed eagerly (lifted out
  of any graph being traced), where it rounds as tf.data's kernels do. (A traced graph or
  XLA turns the division by a constant into a multiply by its inverse, which rounds about
  half of the values differently.)"""
  with tf.init_scope():
    return _scale(tf.range(256, dtype=tf.int32)[:, None], data).numpy()


def scaled(images, data):
  """`images` as the network takes them: train_chunks' uint8 images scaled, looked up in
  _scale_table, so the floats are the pipeline's bit for bit, in any graph or XLA program;
  float images as they are."""
  if images.dtype != tf.uint8:
    return images
  table = _scale_table(data)
  index = tf.cast(images, tf.int32)
  if table.shape[-1] > 1:  # one mean and std per channel (the last axis)
    index = index * table.shape[-1] + tf.range(table.shape[-1])
  return tf.gather(tf.constant(table.reshape(-1)), index)


def _epoch_batches(data, batch_size, data_order_seed, epoch):
  """The global batches of `epoch`: their examples [steps per epoch, batch_size]."""
  n = data.num_train
  per_epoch = steps_per_epoch(n, batch_size)
  return tf.reshape(epoch_order(data_order_seed, epoch, n)[:per_epoch * batch_size],
                    [per_epoch, batch_size])


def _train_steps(data, batch_size, data_order_seed, start_step, num_steps):
  """(indices [batch_size], step) of every step in [start_step, start_step + num_steps): the
  examples of its global batch, in order."""
  per_epoch = steps_per_epoch(data.num_train, batch_size)
  first_epoch = start_step // per_epoch
  last_epoch = (start_step + num_steps - 1) // per_epoch

  def epoch_batches(epoch):
    order = _epoch_batches(data, batch_size, data_order_seed, epoch)
    steps = epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((order, steps))

  ds = tf.data.Dataset.range(first_epoch, last_epoch + 1).flat_map(epoch_batches)
  return ds.skip(start_step - first_epoch * per_epoch).take(num_steps)


def _train_step_chunks(data, batch_size, data_order_seed, start_step, lengths, size):
  """in_chunks(_train_steps(...), lengths, size), an epoch at a time: (indices [size,
  batch_size], steps [size], real [size]). Each epoch's rows are cut into the chunks'
  real steps by one rebatch, rather than passed through tf.data step by step (for LeNet's
  steps that per-step work was half of the input pipeline's, ~5 % of a 2-core CPU)."""
  total = sum(lengths)
  per_epoch = steps_per_epoch(data.num_train, batch_size)
  first_epoch = start_step // per_epoch
  last_epoch = (start_step + total - 1) // per_epoch
  counts = [c for length in lengths
            for c in [size] * (length // size) + [length % size] * bool(length % size)]

  def epoch_rows(epoch):
    order = _epoch_batches(data, batch_size, data_order_seed, epoch)
    first = epoch * per_epoch
    lo = tf.maximum(start_step - first, 0)
    hi = tf.minimum(start_step + total - first, per_epoch)
    return order[lo:hi], first + tf.range(lo, hi, dtype=tf.int64)

  def pad(indices, steps):
    missing = size - tf.shape(steps)[0]
    real = tf.concat([tf.ones_like(steps, tf.int32), tf.zeros([missing], tf.int32)], 0)
    indices = tf.pad(indices, [[0, missing], [0, 0]])
    steps = tf.pad(steps, [[0, missing]])
    return (tf.ensure_shape(indices, [size, batch_size]), tf.ensure_shape(steps, [size]),
            tf.ensure_shape(real, [size]))

  epochs = tf.data.Dataset.range(first_epoch, last_epoch + 1).map(epoch_rows)
  return epochs.rebatch(tf.constant(counts, tf.int64)).map(pad)


def _loader(data, batch_size, augmentation_seed, input_context, augment, scale=True):
  """load(indices, steps) -> (images, labels) of the steps whose global batches `indices`
  are ([..., batch_size] for `steps` of shape [...]): this input pipeline's share of each,
  [..., local replicas, per-replica batch, ...]. Every example is scaled and augmented by
  itself (its own stateless seed), so a step's batch is the same read alone or with others.
  Without `scale` (and with no augmentation), the images stay uint8."""
  per_replica, local_replicas, _, pipeline_id = replica_layout(batch_size, input_context)
  local_batch = per_replica * local_replicas
  mine = slice(pipeline_id * local_batch, (pipeline_id + 1) * local_batch)
  x_all = tf.constant(data.x_train)
  y_all = tf.constant(data.y_train)
  image_shape = list(data.image_shape)

  def load(indices, steps):
    lead = indices.shape[:-1].as_list()
    local = indices[..., mine]
    images = tf.gather(x_all, local)
    if scale:
      images = _scale(images, data)
    if augment and data.augment is not None:
      seeds = example_seeds(augmentation_seed, steps, batch_size)[..., mine, :]
      images = data.augment(tf.reshape(images, [-1] + image_shape), tf.reshape(seeds, [-1, 2]))
    labels = tf.gather(y_all, local)
    return (tf.reshape(images, lead + [local_replicas, per_replica] + image_shape),
            tf.reshape(labels, lead + [local_replicas, per_replica]))
  return load


def train_dataset(data, batch_size, data_order_seed, augmentation_seed, start_step,
                  num_steps, input_context=None, augment=True):
  """Batches for steps [start_step, start_step + num_steps) as (images, labels).

  With an `input_context` (distribute_datasets_from_function), each input pipeline yields the
  per-replica slices of the global batch that belong to its replicas, in replica order, so the
  replicas together see exactly the global batch of a single-device run.
  """
  load = _loader(data, batch_size, augmentation_seed, input_context, augment)
  ds = _train_steps(data, batch_size, data_order_seed, start_step, num_steps)
  ds = ds.map(load, num_parallel_calls=_PARALLELISM, deterministic=True)
  return fixed_parallelism(ds.unbatch().prefetch(2))


def train_chunks(data, batch_size, data_order_seed, augmentation_seed, start_step, lengths,
                 size, input_context=None, augment=True):
  """train_dataset's batches from `start_step`, in the chunks of in_chunks(ds, lengths,
  size): (images, labels, real) with a leading axis of `size`. Each chunk's examples are
  gathered, scaled and augmented at once rather than step by step: the same real batches bit
  for bit, with a chunk's worth less of tf.data's per-element work (for LeNet's 60-image
  steps that work took a fifth of a 2-core CPU). Unaugmented images stay uint8, for the
  program that takes them to scale (`scaled`): a quarter of the bytes to write and hand
  over, and no float pass in tf.data. A padding step (real 0) holds some batch of the run
  rather than zeros: a program runs only the real steps. Chunks feed one replica per input
  pipeline (several steps per program run on one device)."""
  per_replica, local_replicas, _, _ = replica_layout(batch_size, input_context)
  if local_replicas != 1:
    raise ValueError(f"steps in chunks feed one replica per input pipeline, not "
                     f"{local_replicas}")
  augmented = augment and data.augment is not None
  raw = not augmented and tf.as_dtype(data.x_train.dtype) == tf.uint8
  load = _loader(data, batch_size, augmentation_seed, input_context, augment,
                 scale=not raw)

  def load_chunk(indices, steps, real):
    images, labels = load(indices, steps)
    return (tf.reshape(images, [size, per_replica] + list(data.image_shape)),
            tf.reshape(labels, [size, per_replica]), real)

  ds = _train_step_chunks(data, batch_size, data_order_seed, start_step, lengths, size)
  return fixed_parallelism(ds.map(load_chunk).prefetch(1))


def eval_dataset(images, labels, data, batch_size, input_context=None):
  """Fixed-order evaluation batches as (images, labels, weights); padding has weight 0.

  The split is padded to whole global batches so every replica runs the same number of
  steps; weights mark the real examples, so counts and means stay exact.
  """
  per_replica, local_replicas, _, pipeline_id = replica_layout(batch_size, input_context)
  n = len(images)
  num_batches = -(-n // batch_size)
  x = tf.constant(images)
  y = tf.constant(labels)

  def load(b):
    index = b * batch_size + tf.range(batch_size, dtype=tf.int64)
    weight = tf.cast(index < n, tf.float32)
    index = tf.minimum(index, n - 1)
    local = slice(pipeline_id * per_replica * local_replicas,
                  (pipeline_id + 1) * per_replica * local_replicas)
    shape = [local_replicas, per_replica]
    return (tf.reshape(_scale(tf.gather(x, index[local]), data), shape + list(images.shape[1:])),
            tf.reshape(tf.gather(y, index[local]), shape), tf.reshape(weight[local], shape))

  ds = tf.data.Dataset.range(num_batches).map(load, num_parallel_calls=_PARALLELISM,
                                              deterministic=True)
  return fixed_parallelism(ds.unbatch().prefetch(2)), num_batches


def in_chunks(ds, lengths, size):
  """The batches of `ds` in chunks of `size` steps, as (images, labels, real) with a leading
  axis of `size`: each loop of `lengths` (step counts, in order, summing to the length of
  `ds`) is cut into chunks, the last padded with zero batches that `real` marks 0. So a chunk
  never spans two loops, and a compiled program can run one chunk in its own loop.
  """
  specs = ds.element_spec
  if not all(spec.shape.is_fully_defined() for spec in specs):
    raise ValueError(f"steps in chunks need batches of static shape, not {specs}")
  real = ds.map(lambda *batch: (*batch, tf.constant(1, tf.int32)))
  padding = tf.data.Dataset.from_tensors(
      (*(tf.zeros(s.shape, s.dtype) for s in specs), tf.constant(0, tf.int32))).repeat()
  # 0: the next real step; 1: a padding step. The padding closes each loop's last chunk.
  selector = tf.data.Dataset.from_tensor_slices(tf.constant(lengths, tf.int64)).flat_map(
      lambda n: tf.data.Dataset.from_tensor_slices(tf.concat(
          [tf.zeros([n], tf.int64), tf.ones([(size - n % size) % size], tf.int64)], 0)))
  chunks = tf.data.Dataset.choose_from_datasets([real, padding], selector,
                                                stop_on_empty_dataset=True)
  return fixed_parallelism(chunks.batch(size, drop_remainder=True).prefetch(1))
