"""The first layer of M interpolated networks from two products: the evaluator's
`factor_first_layer`.

A dense layer is linear in its kernel: u ((1 - a) K_A + a K_B) = (1 - a) u K_A + a u K_B. So
when every network of a program is an interpolation of the same two endpoints, and each
batch's input u is the same for all of them, the first layer's products for all M alphas are
two matmuls, u K_A and u K_B, mixed per alpha. Each network's bias, activation and all its
later layers are its own, as when it runs alone. For LeNet-300-100 the first layer is 88 %
of the multiply-adds, so a program of 30 alphas does 5.7x fewer of them.

The numbers are those of each network alone to float rounding (the mix and the product are
summed in another order), not bit for bit; the endpoints (alpha 0 and 1) are exact. It
applies only where it is exact in real arithmetic: the first layer with weights is a masked
dense layer fed by the input through weightless layers, the two endpoints share its mask,
and each point's first-layer kernel and mask are the plain interpolation of the endpoints'
(a BN mode that rewrites them, such as REPAIR's folded scale, is measured the exact way).
"""

import keras
import numpy as np
import tensorflow as tf

from lmc_tf.models import layers as layers_lib
from lmc_tf.models import registry


def first_dense(model):
  """The model's first layer with weights if it is a MaskedDense (so only weightless layers,
  LeNet's Flatten, lie between it and the input), else None."""
  layer = next((layer for layer in model.layers if layer.weights), None)
  return layer if isinstance(layer, layers_lib.MaskedDense) else None


class SharedFirstLayer:
  """The outputs of `models` (one architecture, each holding one point's weights) with
  their first layer computed from the endpoints' two products. Build under the strategy's
  scope; `load` the endpoints and alphas of a program, then call `outputs` in it."""

  def __init__(self, models):
    first = first_dense(models[0])
    if first is None:
      raise ValueError(f"{models[0].name}: its first layer with weights is not a dense layer "
                       "on the input")
    self.name = first.name
    self._layers = [m.get_layer(first.name) for m in models]
    self._head = keras.Model(models[0].inputs, first.input)
    self._tails = [keras.Model(layer.output, m.outputs)
                   for layer, m in zip(self._layers, models)]
    names = [v.path for v in models[0].variables]
    self._kernel = names.index(first.kernel.path)
    self._mask = names.index(first.mask.path)
    self._products = tf.Variable(tf.zeros([2, *first.kernel.shape], first.kernel.dtype),
                                 trainable=False, name="endpoint_kernels")
    self._alphas = tf.Variable(tf.zeros([len(models)]), trainable=False, name="alphas")

  def applies(self, weights_a, weights_b, mixed, points):
    """Whether the factoring is exact in real arithmetic for `points` (the weights each
    network is to be measured with), given `mixed`, the plain interpolation of the endpoints
    at each point's alpha: one mask at both ends, and each point's first-layer kernel and
    mask the very arrays of the interpolation (a BN mode rewrites a variable as a new
    array, and never in place)."""
    if not np.array_equal(weights_a[self._mask], weights_b[self._mask]):
      return False
    return all(point[j] is mix[j] for mix, point in zip(mixed, points)
               for j in (self._kernel, self._mask))

  def load(self, weights_a, weights_b, alphas):
    """The endpoints' masked first-layer kernels, and the alpha of each network."""
    i, m = self._kernel, self._mask
    self._products.assign(np.stack([weights_a[i] * weights_a[m], weights_b[i] * weights_b[m]]))
    values = np.zeros(self._alphas.shape, np.float32)
    values[:len(alphas)] = alphas
    self._alphas.assign(values)

  def outputs(self, images, n):
    """The logits of the first `n` networks on `images`."""
    dtype = self._layers[0].compute_dtype
    inputs = tf.cast(self._head(images, training=False), dtype)
    kernels = tf.cast(self._products, dtype)
    product_a = tf.matmul(inputs, kernels[0])
    product_b = tf.matmul(inputs, kernels[1])
    logits = []
    for k in range(n):
      layer, alpha = self._layers[k], tf.cast(self._alphas[k], dtype)
      outputs = (1.0 - alpha) * product_a + alpha * product_b
      if layer.use_bias:
        outputs = tf.nn.bias_add(outputs, tf.cast(layer.bias, dtype))
      if layer.activation is not None:
        outputs = layer.activation(outputs)
      out = self._tails[k](outputs, training=False)
      logits.append(registry.split_outputs(out[0] if len(out) == 1 else out)[0])
    return logits
