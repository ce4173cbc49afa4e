"""BatchNorm-aware interpolation: the statistics an interpolated network is measured with.

Interpolating BatchNorm's moving statistics, as the LMC paper does, does not give the
statistics of the interpolated network: its activations shrink and shift along the path, so
part of a barrier can be a statistics mismatch rather than a property of the weights (Jordan
et al., "REPAIR", ICLR 2023). `BNModes.weights(mode, alpha, interpolated)` returns the
variables a point of the curve is measured with, in one of three modes:

- 'interpolate': every variable interpolated, BN statistics included (the paper).
- 'reset': BN's moving statistics are re-estimated for the interpolated network, as the
  cumulative average (PyTorch's `momentum=None`) of the batch means and unbiased batch
  variances over `num_batches` training batches, each BN normalising its batch by the batch's
  own statistics as in training. A network without BN is unchanged.
- 'repair': REPAIR. Each channel (or unit) of every pre-activation is rescaled so that its
  mean and standard deviation over the training batches are the interpolation of the two
  endpoints' (the standard deviations interpolated, as REPAIR does). The pre-activations are
  the outputs of every BN, and of every conv or dense layer that no BN normalises, the logits
  included, as in REPAIR's MLPs. The correction is found in one pass, as REPAIR's: each
  corrected layer standardises its batch by the batch's statistics and gives it the target
  ones, so the layers after it see corrected inputs, and the batches' pooled statistics then
  fix an affine map per channel, folded into the layer (a BN's gamma and beta, or a conv or
  dense layer's kernel columns and bias). On a single measuring batch the corrected network's
  statistics equal the targets exactly; over several they match up to the batch-to-batch
  spread. At alpha = 0 and 1 the network is an endpoint and nothing is changed. Beyond the
  endpoints (evaluate.alpha_range) the targets are the nearest endpoint's statistics.

Every mode measures on the same training batches (seeded, augmented as in training unless
`augment=False`) at every alpha and for every pair, with global-batch statistics across
replicas, as training's synchronized BN.
"""

import keras
import numpy as np
import tensorflow as tf

from lmc_tf import errors
from lmc_tf import layout
from lmc_tf.models import layers

INTERPOLATE, RESET, REPAIR = layout.DEFAULT_BN_MODE, "reset", "repair"
MODES = (INTERPOLATE, RESET, REPAIR)
DEFAULT = INTERPOLATE


def check_modes(modes, name="evaluate.bn_modes"):
  """The modes as a tuple, each known and named once; else a ConfigError naming `name`."""
  if isinstance(modes, str):
    modes = (modes,)
  modes = tuple(modes)
  unknown = [m for m in modes if m not in MODES]
  if not modes or unknown or len(set(modes)) != len(modes):
    raise errors.ConfigError(f"{name}={modes!r}: give one or more of {MODES}, each once")
  return modes


def _batch_norms(model):
  return [l for l in model._flatten_layers(include_self=False, recursive=True)  # pylint: disable=protected-access
          if isinstance(l, layers.BatchNorm)]


def _producer(layer):
  return layer.input._keras_history[0]  # pylint: disable=protected-access


def correction_points(model):
  """The layers whose outputs REPAIR corrects, in graph order: every BatchNorm, and every
  masked conv or dense layer whose output no BatchNorm normalises."""
  normalised = {id(_producer(bn)) for bn in _batch_norms(model)}
  return [l for l in model._flatten_layers(include_self=False, recursive=True)  # pylint: disable=protected-access
          if isinstance(l, layers.BatchNorm)
          or (isinstance(l, layers._MaskMixin) and id(l) not in normalised)]  # pylint: disable=protected-access


def _is_linear(activation):
  return activation is None or activation is keras.activations.linear


class _Moments(keras.layers.Layer):
  """Passes its input through, and returns its per-channel batch statistics beside it."""

  def call(self, x):
    _, mean, variance, count = layers.global_moments(x)
    return x, mean, variance, count


class _BatchStatNorm(keras.layers.Layer):
  """A BatchNorm as in training: normalised by its batch's own (global) statistics."""

  def __init__(self, bn, **kwargs):
    super().__init__(**kwargs)
    self._bn = [bn]  # a list: the probe must not track the shared layer as its own

  def call(self, x):
    bn = self._bn[0]
    x32, mean, variance, count = layers.global_moments(x)
    outputs = tf.nn.batch_normalization(x32, mean, variance, bn.beta, bn.gamma, bn.epsilon)
    return tf.cast(outputs, x.dtype), mean, variance, count


class _Renormalize(keras.layers.Layer):
  """REPAIR's measuring pass: the batch standardised by its own statistics, then given the
  target mean and standard deviation (a channel with no spread is only shifted)."""

  def build(self, input_shape):
    shape = (input_shape[-1],)
    self.target_mean = self.add_weight(name="target_mean", shape=shape, initializer="zeros",
                                       trainable=False, autocast=False)
    self.target_std = self.add_weight(name="target_std", shape=shape, initializer="ones",
                                      trainable=False, autocast=False)

  def call(self, x):
    x32, mean, variance, count = layers.global_moments(x)
    std = tf.sqrt(variance)
    scale = tf.where(std > 0, self.target_std / tf.where(std > 0, std, 1.0), 1.0)
    outputs = (x32 - mean) * scale + self.target_mean
    return tf.cast(outputs, x.dtype), mean, variance, count


class _PreActivation(keras.layers.Layer):
  """A masked layer's output before its activation."""

  def __init__(self, layer, **kwargs):
    super().__init__(**kwargs)
    self._layer = [layer]

  def call(self, x):
    return self._layer[0].pre_activation(x)


def _probe(model, kind, points):
  """A model sharing `model`'s layers that returns the statistics at `points`:
  kind 'reset' replaces each BN by `_BatchStatNorm`, 'measure' observes, 'repair' corrects.
  Returns (probe, the `_Renormalize` layers of 'repair')."""
  wanted = {id(l) for l in points}
  stats, renorms = [], []

  def call(layer, *args, **kwargs):
    if id(layer) not in wanted:
      return layer(*args, **kwargs)
    if kind == RESET:
      out, *moments = _BatchStatNorm(layer, name=f"{layer.name}_reset")(args[0])
      stats.append(moments)
      return out
    activation = None
    if isinstance(layer, layers.BatchNorm) or _is_linear(layer.activation):
      y = layer(*args, **kwargs)
    else:
      activation = layer.activation
      y = _PreActivation(layer, name=f"{layer.name}_pre")(args[0])
    if kind == REPAIR:
      renorms.append(_Renormalize(name=f"{layer.name}_repair"))
      y, *moments = renorms[-1](y)
    else:
      y, *moments = _Moments(name=f"{layer.name}_moments")(y)
    stats.append(moments)
    return y if activation is None else keras.layers.Activation(activation)(y)

  clone = keras.models.clone_model(model, clone_function=lambda layer: layer,
                                   call_function=call)
  flat = [t for moments in stats for t in moments]
  return keras.Model(clone.inputs[0], flat, name=f"{model.name}_{kind}_probe"), renorms


class _Pooled:
  """Per-channel count, mean and standard deviation of a point over all measured batches,
  and the average of the batch means and unbiased batch variances (what 'reset' keeps)."""

  def __init__(self, count, mean, m2, mean_of_means, mean_of_variances):
    self.count, self.mean, self.m2 = float(count), mean, m2
    self.mean_of_means, self.mean_of_variances = mean_of_means, mean_of_variances

  @property
  def std(self):
    return np.sqrt(self.m2 / self.count)


def _accumulate(carry, mean, variance, count):
  """One batch's statistics folded into the running ones, in float64: Chan et al.'s parallel
  update of (count, mean, M2), and the sums of batch means and unbiased variances."""
  n, m, m2, sum_means, sum_variances = carry
  mean, variance, count = (tf.cast(t, tf.float64) for t in (mean, variance, count))
  total = n + count
  delta = mean - m
  return (total, m + delta * count / total,
          m2 + variance * count + tf.square(delta) * n * count / total,
          sum_means + mean, sum_variances + variance * count / (count - 1.0))


class BNModes:
  """Gives each alpha of a pair's sweep the variables of its BN mode.

  Build one per evaluator, on the evaluator's scratch model; call `begin_pair` with the two
  endpoints before the first alpha of a pair, then `weights` at each alpha.
  """

  def __init__(self, strategy, model, data, modes, num_batches=50, batch_size=128, seed=0,
               augment=True):
    self.modes = check_modes(modes)
    errors.positive_int(num_batches, "evaluate.bn_batches")
    errors.positive_int(batch_size, "evaluate.bn_batch_size")
    if batch_size % strategy.num_replicas_in_sync:
      raise errors.ConfigError(
          f"evaluate.bn_batch_size={batch_size} is not divisible by the "
          f"{strategy.num_replicas_in_sync} replicas")
    self._strategy = strategy
    self._model = model
    self._index = {id(v): i for i, v in enumerate(model.variables)}
    self._batch_norms = _batch_norms(model)
    self._points = correction_points(model)
    if REPAIR in self.modes:
      for layer in self._points:
        if not isinstance(layer, layers.BatchNorm) and not layer.use_bias:
          raise errors.ConfigError(
              f"evaluate.bn_modes: 'repair' cannot correct layer {layer.name!r}: it has no "
              "bias to shift and no BatchNorm after it")
    self._dataset = strategy.distribute_datasets_from_function(
        lambda ctx: data.train_batches(batch_size, seed, seed, 0, num_batches, ctx,
                                       augment=augment))
    self._num_batches = num_batches
    self._probes = {}
    self._endpoints = self._targets = None

  # -- measuring ---------------------------------------------------------------------------

  def _probe(self, kind):
    if kind not in self._probes:
      points = self._batch_norms if kind == RESET else self._points
      with self._strategy.scope():
        probe, renorms = _probe(self._model, kind, points)
      strategy, num_batches = self._strategy, self._num_batches
      shapes = [(l.moving_mean if isinstance(l, layers.BatchNorm) else l.kernel).shape[-1]
                for l in points]

      @tf.function
      def measure(iterator):
        zeros = lambda c: tf.zeros([c], tf.float64)  # noqa: E731
        carries = [(tf.constant(0.0, tf.float64), zeros(c), zeros(c), zeros(c), zeros(c))
                   for c in shapes]
        for _ in tf.range(num_batches):
          images, _ = next(iterator)
          outputs = strategy.run(lambda x: probe(x, training=False), args=(images,))
          # Statistics are all-reduced in the replicas: every replica holds the global ones.
          flat = [strategy.experimental_local_results(t)[0] for t in outputs]
          carries = [_accumulate(carry, *flat[3 * i:3 * i + 3])
                     for i, carry in enumerate(carries)]
        return carries

      self._probes[kind] = (measure, renorms)
    return self._probes[kind]

  def _pooled(self, kind, weights):
    """Per point, its statistics over the batches in the network with `weights`."""
    measure, _ = self._probe(kind)
    for variable, value in zip(self._model.variables, weights):
      variable.assign(value)
    return [_Pooled(n.numpy(), m.numpy(), m2.numpy(), (s_m / self._num_batches).numpy(),
                    (s_v / self._num_batches).numpy())
            for n, m, m2, s_m, s_v in measure(iter(self._dataset))]

  def begin_pair(self, weights_a, weights_b):
    """Takes the pair's endpoints, whose statistics REPAIR interpolates; they are measured
    when first needed, so a pair that REPAIRs nothing (or is resumed past it) costs none."""
    self._endpoints = (weights_a, weights_b)
    self._targets = None

  # -- the modes ---------------------------------------------------------------------------

  def weights(self, mode, alpha, weights):
    """The variables to measure the interpolated network `weights` with, in `mode`."""
    if mode == INTERPOLATE:
      return weights
    if mode == RESET:
      return self.reset(weights)
    if mode == REPAIR:
      if alpha in (0.0, 1.0) or not self._points:
        return weights  # an endpoint: its statistics are the targets
      return self.repair(weights, alpha)
    raise ValueError(f"unknown BN mode {mode!r}")

  def reset(self, weights):
    """`weights` with every BN's moving statistics re-estimated on the training batches."""
    if not self._batch_norms:
      return weights
    out = list(weights)
    for bn, p in zip(self._batch_norms, self._pooled(RESET, weights)):
      out[self._index[id(bn.moving_mean)]] = p.mean_of_means.astype(np.float32)
      out[self._index[id(bn.moving_variance)]] = p.mean_of_variances.astype(np.float32)
    return out

  def targets(self, alpha):
    """Per correction point, the (mean, std) REPAIR gives the network at `alpha`."""
    if self._targets is None:
      if self._endpoints is None:
        raise RuntimeError("begin_pair() gives the endpoints before 'repair'")
      self._targets = [[(p.mean, p.std) for p in self._pooled("measure", w)]
                       for w in self._endpoints]
    # Beyond the endpoints (evaluate.alpha_range) REPAIR has no interpolation to aim at:
    # extrapolated standard deviations fall below zero for channels that are dead in one
    # endpoint. The nearest endpoint's statistics are the targets there.
    alpha = min(max(alpha, 0.0), 1.0)
    return [((1.0 - alpha) * ma + alpha * mb, (1.0 - alpha) * sa + alpha * sb)
            for (ma, sa), (mb, sb) in zip(*self._targets)]

  def repair(self, weights, alpha):
    """`weights` with REPAIR's per-channel correction at `alpha` folded into them."""
    targets = self.targets(alpha)
    _, renorms = self._probe(REPAIR)
    for layer, (mean, std) in zip(renorms, targets):
      layer.target_mean.assign(mean.astype(np.float32))
      layer.target_std.assign(std.astype(np.float32))
    measured = self._pooled(REPAIR, weights)
    out = list(weights)
    for layer, (target_mean, target_std), m in zip(self._points, targets, measured):
      std = m.std
      scale = np.where(std > 0, target_std / np.where(std > 0, std, 1.0), 1.0)
      shift = target_mean - scale * m.mean
      if isinstance(layer, layers.BatchNorm):
        names = (("gamma", scale, 0.0), ("beta", scale, shift))
      else:
        names = (("kernel", scale, 0.0), ("bias", scale, shift))
      for name, a, b in names:
        i = self._index[id(getattr(layer, name))]
        out[i] = (np.float64(weights[i]) * a + b).astype(weights[i].dtype)
    return out
