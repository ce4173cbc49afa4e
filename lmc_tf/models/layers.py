"""Masked layers (SPEC §2): a 0/1 mask variable the shape of the kernel, multiplied in `call`.

The mask is a non-trainable weight of the layer, so it is saved and restored with every
checkpoint. The product kernel * mask makes the gradient of a pruned weight exactly zero; a
pruned weight that starts at zero (`set_mask` zeroes it) therefore stays exactly zero under
SGD with momentum, coupled L2 weight decay (wd * 0 = 0), Adam (m = v = 0) and RMSProp (its
momentum stays 0). The layers without weights to prune that several nets share live here too:
the fused BatchNorm and the stateless dropout.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from lmc_tf import hashing

_DROPOUT_SALT = 0x64726F70 * hashing.GOLDEN % 2**64  # "drop": the dropout's own hash stream


class _MaskMixin:
  """Adds the mask variable and `set_mask` to a layer that owns a `kernel`."""

  # Set while a graph is traced in which this layer's mask is all ones (full_masks_skipped).
  _mask_skipped = False

  def _build_mask(self):
    self.mask = self.add_weight(name="mask", shape=self.kernel.shape, initializer="ones",
                                trainable=False, dtype=self.variable_dtype)

  def set_mask(self, mask):
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != tuple(self.kernel.shape):
      raise ValueError(f"mask of shape {mask.shape} does not fit layer {self.name!r} "
                       f"with kernel {tuple(self.kernel.shape)}")
    if not np.all((mask == 0) | (mask == 1)):
      raise ValueError(f"mask for layer {self.name!r} must hold only 0 and 1")
    self.mask.assign(mask)
    self.kernel.assign(self.kernel * mask)

  @property
  def masked_kernel(self):
    if self._mask_skipped:
      return self.kernel  # the mask is all ones, and kernel * 1 is the kernel bit for bit
    return self.kernel * tf.cast(self.mask, self.kernel.dtype)


class MaskedDense(_MaskMixin, keras.layers.Dense):
  """keras.layers.Dense whose kernel is multiplied by a 0/1 mask."""

  def build(self, input_shape):
    super().build(input_shape)
    self._build_mask()

  def pre_activation(self, inputs):
    kernel = tf.cast(self.masked_kernel, self.compute_dtype)
    outputs = tf.matmul(inputs, kernel)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, self.compute_dtype))
    return outputs

  def call(self, inputs):
    outputs = self.pre_activation(inputs)
    return self.activation(outputs) if self.activation is not None else outputs


class MaskedConv2D(_MaskMixin, keras.layers.Conv2D):
  """keras.layers.Conv2D whose kernel is multiplied by a 0/1 mask."""

  def build(self, input_shape):
    super().build(input_shape)
    self._build_mask()

  def pre_activation(self, inputs):
    kernel = tf.cast(self.masked_kernel, self.compute_dtype)
    outputs = self.convolution_op(inputs, kernel)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, self.compute_dtype),
                               data_format="NHWC" if self.data_format == "channels_last"
                               else "NCHW")
    return outputs

  def call(self, inputs):
    outputs = self.pre_activation(inputs)
    return self.activation(outputs) if self.activation is not None else outputs


def masked_layers(model):
  """The prunable layers of `model`, in a fixed (build) order."""
  # Keras 3 has no public recursive layer walk; _flatten_layers is what Model.layers uses.
  return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
          if isinstance(layer, _MaskMixin)]


def density(model):
  """Fraction of prunable weights whose mask is 1."""
  layers = masked_layers(model)
  kept = sum(float(tf.reduce_sum(l.mask)) for l in layers)
  total = sum(int(np.prod(l.mask.shape)) for l in layers)
  return kept / total if total else 1.0


def full_masks(model):
  """The prunable layers of `model` whose mask keeps every weight (all of them, unpruned)."""
  return [l for l in masked_layers(model) if bool(tf.reduce_all(tf.equal(l.mask, 1)))]


@contextlib.contextmanager
def full_masks_skipped(layers):
  """Within, `layers` (full_masks: masks of all ones) use their kernel as it is, so a graph
  traced here has neither the mask's multiply nor its gradient's: the same numbers bit for
  bit (x * 1 == x), with two elementwise passes over each kernel fewer per step. Only for a
  graph used while the masks cannot change, as a run's train loop (a run's masks are fixed
  once it begins)."""
  for layer in layers:
    layer._mask_skipped = True  # pylint: disable=protected-access
  try:
    yield
  finally:
    for layer in layers:
      layer._mask_skipped = False  # pylint: disable=protected-access


def get_masks(model):
  return {l.name: l.mask.numpy() for l in masked_layers(model)}


def set_masks(model, masks):
  """Applies {layer name: 0/1 array}; a mask that does not fit the model is an error."""
  layers = {l.name: l for l in masked_layers(model)}
  unknown = sorted(set(masks) - set(layers))
  if unknown:
    raise ValueError(f"mask names layers the model does not have: {unknown}; "
                     f"the model's prunable layers are {sorted(layers)}")
  for name, mask in masks.items():
    layers[name].set_mask(mask)


class FeatureHashDropout(keras.layers.Layer):
  """Inverted dropout whose mask is a hash of each example's own features.

  keras.layers.Dropout keeps a SeedGenerator state variable in the model, which checkpoints
  would carry and interpolation would average. Here the mask of example b is a pure function
  of the float32 bits of its feature vector and the feature index: it changes from example to
  example and from step to step (as the features do), repeats exactly on a resumed run, and
  does not depend on the batch or on how it is split across replicas. Identity unless
  training=True. Inputs of any rank are seen as [B, D], each example's features flattened
  (SqueezeNet drops out a feature map); on [B, D] inputs (Inception-v3) the flattening is the
  identity.
  """

  def __init__(self, rate, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= rate < 1:
      raise ValueError(f"dropout rate {rate} must lie in [0, 1)")
    self.rate = float(rate)

  def mask(self, inputs):
    """The 0/1 keep mask for `inputs` [B, ...], as a bool tensor of their shape."""
    flat = tf.reshape(tf.cast(inputs, tf.float32), [tf.shape(inputs)[0], -1])
    bits = tf.cast(tf.bitcast(flat, tf.uint32), tf.uint64)
    index = tf.cast(tf.range(tf.shape(flat)[-1], dtype=tf.int64), tf.uint64)
    salted = hashing.mix64(index + tf.constant(_DROPOUT_SALT, tf.uint64))
    # One key per example: a sum of per-feature hashes, each < 2**32, so the int64 sum is
    # exact (no overflow below 2**31 features) and the same in any reduction order.
    per_feature = tf.bitwise.right_shift(hashing.mix64(bits ^ salted),
                                         tf.constant(32, tf.uint64))
    key = tf.reduce_sum(tf.bitcast(per_feature, tf.int64), axis=-1, keepdims=True)
    draws = hashing.mix64(hashing.mix64(tf.bitcast(key, tf.uint64)) ^ salted)
    # The top 32 bits as a uniform integer, kept with probability 1 - rate.
    threshold = tf.constant(int(round((1.0 - self.rate) * 2**32)), tf.uint64)
    keep = tf.bitwise.right_shift(draws, tf.constant(32, tf.uint64)) < threshold
    return tf.reshape(keep, tf.shape(inputs))

  def call(self, inputs, training=False):
    if not training or self.rate == 0:
      return inputs
    # One multiply, so XLA and TF round alike.
    scale = tf.where(self.mask(inputs), 1.0 / (1.0 - self.rate), 0.0)
    return inputs * tf.cast(scale, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "rate": self.rate}


def global_moments(inputs):
  """(x in float32, mean, biased variance, count) per channel (last axis) over every other
  axis of the global batch: summed across replicas when there are several.

  Two passes of one all-reduce each: E[x^2] - E[x]^2 in one pass loses the variance of deep
  layers to cancellation.
  """
  x = tf.cast(inputs, tf.float32)
  axes = list(range(len(x.shape) - 1))
  count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
  total = tf.reduce_sum(x, axes)
  context = tf.distribute.get_replica_context()
  several = context is not None and context.num_replicas_in_sync > 1
  if several:
    total, count = context.all_reduce("SUM", [total, count])
  mean = total / count
  squares = tf.reduce_sum(tf.square(x - mean), axes)
  if several:
    squares = context.all_reduce("SUM", squares)
  return x, mean, squares / count, count


class BatchNorm(keras.layers.Layer):
  """BatchNorm over the channels of NHWC inputs, with PyTorch's numerics, on TF's fused kernel.

  Keras 3's BatchNormalization composes moments from separate ops; the fused kernel is 1.5x
  faster for ResNet-20 training on CPU (../shared/bench/README.md). It also matches
  torch.nn.BatchNorm2d: the moving variance is updated with the unbiased batch variance, and
  `momentum` is the weight of the old value (0.9 = PyTorch's momentum 0.1, SPEC §2).
  The statistics are variables of the model, so checkpoints and interpolation carry them.

  With `synchronized` (the default) and several replicas, the batch statistics are those of
  the global batch, summed across replicas, so training does not depend on how the batch is
  split: 4 replicas compute what 1 device does (SPEC §1: the global batch is the configured
  one whatever the number of replicas). It costs two all-reduces of a vector per layer and
  step; `synchronized=False` gives each replica its own statistics, as the TPU reference does.
  """

  def __init__(self, momentum=0.9, epsilon=1e-5, gamma_initializer="ones",
               beta_initializer="zeros", synchronized=True, **kwargs):
    super().__init__(**kwargs)
    self.momentum = float(momentum)
    self.epsilon = float(epsilon)
    self.synchronized = bool(synchronized)
    self.gamma_initializer = keras.initializers.get(gamma_initializer)
    self.beta_initializer = keras.initializers.get(beta_initializer)

  def build(self, input_shape):
    if len(input_shape) != 4:
      raise ValueError(f"BatchNorm {self.name!r} takes NHWC inputs, got shape {input_shape}")
    shape = (input_shape[-1],)
    # autocast=False: the fused kernel takes float32 scale and statistics under mixed precision.
    self.gamma = self.add_weight(name="gamma", shape=shape, initializer=self.gamma_initializer,
                                 autocast=False)
    self.beta = self.add_weight(name="beta", shape=shape, initializer=self.beta_initializer,
                                autocast=False)
    # aggregation="mean": under MirroredStrategy each replica updates from its own batch and
    # the statistics are averaged across replicas.
    self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros",
                                       trainable=False, autocast=False, aggregation="mean")
    self.moving_variance = self.add_weight(name="moving_variance", shape=shape,
                                           initializer="ones", trainable=False,
                                           autocast=False, aggregation="mean")

  def call(self, inputs, training=False):
    replica_context = tf.distribute.get_replica_context()
    if (training and self.synchronized and replica_context is not None
        and replica_context.num_replicas_in_sync > 1):
      x, mean, variance, count = global_moments(inputs)
      outputs = tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma,
                                          self.epsilon)
      keep = self.momentum
      self.moving_mean.assign(keep * self.moving_mean + (1.0 - keep) * mean)
      self.moving_variance.assign(keep * self.moving_variance
                                  + (1.0 - keep) * variance * count / (count - 1.0))
      return tf.cast(outputs, inputs.dtype)
    if training:
      # With exponential_avg_factor < 1 the kernel returns the updated moving statistics
      # (the variance Bessel-corrected, as PyTorch's running_var), in one op.
      outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
          inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
          epsilon=self.epsilon, is_training=True,
          exponential_avg_factor=1.0 - self.momentum)
      self.moving_mean.assign(mean)
      self.moving_variance.assign(variance)
      return outputs
    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
        inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
        epsilon=self.epsilon, is_training=False)
    return outputs

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, epsilon=self.epsilon, synchronized=self.synchronized,
                  gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
                  beta_initializer=keras.initializers.serialize(self.beta_initializer))
    return config
