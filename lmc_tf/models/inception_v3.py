"""Inception-v3 (Szegedy et al. 2016; Table 1), laid out as torchvision's inception_v3.

The stem, Mixed_5b-5d (A), Mixed_6a (B), Mixed_6b-6e (C), Mixed_7a (D), Mixed_7b-7c (E),
global average pooling, dropout and a dense layer; the auxiliary classifier branches off after
Mixed_6e. Every conv is bias-free + BN (epsilon 0.001, as torchvision and TF-slim) + ReLU.
With the auxiliary classifier the model has 27,161,264 trainable parameters and returns
[logits, aux_logits]; without it 23,834,568 and returns logits (registry.split_outputs).

Pooling follows the TF-slim net the TPU reference trains (the paper's ImageNet code): the
3x3/1 average pools of the branches are TF's 'same' pools, which average the real pixels only,
where torchvision also counts the zero padding at the border.
"""

import gin
import keras

from lmc_tf import errors
from lmc_tf.models import blocks
from lmc_tf.models import layers

BN_EPSILON = 1e-3


class _Builder:
  """Conv-BN-ReLU units with one init stream and one width multiplier."""

  def __init__(self, init, width_multiplier):
    self.init, self.width_multiplier = init, width_multiplier

  def __call__(self, x, filters, kernel_size, name, strides=1, padding="same"):
    filters = max(1, int(round(filters * self.width_multiplier)))
    return blocks.conv_bn(x, self.init, filters, kernel_size, name, strides=strides,
                          padding=padding, bn_epsilon=BN_EPSILON)


def _concat(branches, name):
  return keras.layers.Concatenate(name=name)(branches)


def _avg_pool_branch(x, conv, filters, name):
  y = keras.layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
  return conv(y, filters, 1, f"{name}_branch_pool")


def inception_a(x, conv, pool_features, name):
  b1 = conv(x, 64, 1, f"{name}_branch1x1")
  b5 = conv(x, 48, 1, f"{name}_branch5x5_1")
  b5 = conv(b5, 64, 5, f"{name}_branch5x5_2")
  b3 = conv(x, 64, 1, f"{name}_branch3x3dbl_1")
  b3 = conv(b3, 96, 3, f"{name}_branch3x3dbl_2")
  b3 = conv(b3, 96, 3, f"{name}_branch3x3dbl_3")
  return _concat([b1, b5, b3, _avg_pool_branch(x, conv, pool_features, name)], name)


def inception_b(x, conv, name):
  b3 = conv(x, 384, 3, f"{name}_branch3x3", strides=2, padding="valid")
  bd = conv(x, 64, 1, f"{name}_branch3x3dbl_1")
  bd = conv(bd, 96, 3, f"{name}_branch3x3dbl_2")
  bd = conv(bd, 96, 3, f"{name}_branch3x3dbl_3", strides=2, padding="valid")
  pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
  return _concat([b3, bd, pool], name)


def inception_c(x, conv, channels_7x7, name):
  c7 = channels_7x7
  b1 = conv(x, 192, 1, f"{name}_branch1x1")
  b7 = conv(x, c7, 1, f"{name}_branch7x7_1")
  b7 = conv(b7, c7, (1, 7), f"{name}_branch7x7_2")
  b7 = conv(b7, 192, (7, 1), f"{name}_branch7x7_3")
  bd = conv(x, c7, 1, f"{name}_branch7x7dbl_1")
  bd = conv(bd, c7, (7, 1), f"{name}_branch7x7dbl_2")
  bd = conv(bd, c7, (1, 7), f"{name}_branch7x7dbl_3")
  bd = conv(bd, c7, (7, 1), f"{name}_branch7x7dbl_4")
  bd = conv(bd, 192, (1, 7), f"{name}_branch7x7dbl_5")
  return _concat([b1, b7, bd, _avg_pool_branch(x, conv, 192, name)], name)


def inception_d(x, conv, name):
  b3 = conv(x, 192, 1, f"{name}_branch3x3_1")
  b3 = conv(b3, 320, 3, f"{name}_branch3x3_2", strides=2, padding="valid")
  b7 = conv(x, 192, 1, f"{name}_branch7x7x3_1")
  b7 = conv(b7, 192, (1, 7), f"{name}_branch7x7x3_2")
  b7 = conv(b7, 192, (7, 1), f"{name}_branch7x7x3_3")
  b7 = conv(b7, 192, 3, f"{name}_branch7x7x3_4", strides=2, padding="valid")
  pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
  return _concat([b3, b7, pool], name)


def inception_e(x, conv, name):
  b1 = conv(x, 320, 1, f"{name}_branch1x1")
  b3 = conv(x, 384, 1, f"{name}_branch3x3_1")
  b3 = _concat([conv(b3, 384, (1, 3), f"{name}_branch3x3_2a"),
                conv(b3, 384, (3, 1), f"{name}_branch3x3_2b")], f"{name}_branch3x3")
  bd = conv(x, 448, 1, f"{name}_branch3x3dbl_1")
  bd = conv(bd, 384, 3, f"{name}_branch3x3dbl_2")
  bd = _concat([conv(bd, 384, (1, 3), f"{name}_branch3x3dbl_3a"),
                conv(bd, 384, (3, 1), f"{name}_branch3x3dbl_3b")], f"{name}_branch3x3dbl")
  return _concat([b1, b3, bd, _avg_pool_branch(x, conv, 192, name)], name)


def aux_classifier(x, conv, init, num_classes):
  """5x5/3 average pool, 1x1 conv128, 5x5 conv768, global pool, dense (layers named aux_*).

  On inputs smaller than 299x299 the pool and the 5x5 conv shrink to the map they see (as
  TF-slim's _reduced_kernel_size_for_small_input), so the head works down to 75x75.
  """
  pool = tuple(min(5, int(d)) for d in x.shape[1:3])
  x = keras.layers.AveragePooling2D(pool, strides=3, name="aux_pool")(x)
  x = conv(x, 128, 1, "aux_conv0")
  x = conv(x, 768, tuple(min(5, int(d)) for d in x.shape[1:3]), "aux_conv1", padding="valid")
  x = keras.layers.GlobalAveragePooling2D(name="aux_global_pool")(x)
  return blocks.classifier(x, init, num_classes, name="aux_dense_out")


@gin.configurable("inception_v3", denylist=["init", "input_shape", "num_classes"])
def build(init, input_shape=(299, 299, 3), num_classes=1000, aux_logits=True,
          aux_loss_weight=0.4, dropout_rate=0.2, width_multiplier=1):
  """Args:
    aux_logits: build the auxiliary classifier; the model then returns [logits, aux_logits].
    aux_loss_weight: the aux loss's weight in training (Szegedy et al.; the TPU reference).
    dropout_rate: before the final dense; 0.2 is the TF-slim / TPU reference's keep_prob 0.8
      (torchvision uses 0.5).
    width_multiplier: scales every conv width (for quick configs).
  """
  errors.positive_number(width_multiplier, "inception_v3.width_multiplier")
  if min(input_shape[:2]) < 75:
    raise ValueError(f"inception_v3 takes inputs of at least 75x75, got {input_shape}")
  conv = _Builder(init, width_multiplier)
  inputs = keras.Input(shape=input_shape)
  x = conv(inputs, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
  x = conv(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
  x = conv(x, 64, 3, "Conv2d_2b_3x3")
  x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool1")(x)
  x = conv(x, 80, 1, "Conv2d_3b_1x1")
  x = conv(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
  x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool2")(x)
  x = inception_a(x, conv, 32, "Mixed_5b")
  x = inception_a(x, conv, 64, "Mixed_5c")
  x = inception_a(x, conv, 64, "Mixed_5d")
  x = inception_b(x, conv, "Mixed_6a")
  for name, channels_7x7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                             ("Mixed_6e", 192)):
    x = inception_c(x, conv, channels_7x7, name)
  mixed_6e = x
  x = inception_d(x, conv, "Mixed_7a")
  x = inception_e(x, conv, "Mixed_7b")
  x = inception_e(x, conv, "Mixed_7c")
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  x = layers.FeatureHashDropout(dropout_rate, name="dropout")(x)
  logits = blocks.classifier(x, init, num_classes)
  if aux_logits:
    # Built last, so the main network's init does not depend on whether the head is there.
    aux = aux_classifier(mixed_6e, conv, init, num_classes)
    model = keras.Model(inputs, [logits, aux], name="inception_v3")
  else:
    model = keras.Model(inputs, logits, name="inception_v3")
  model.aux_loss_weight = float(aux_loss_weight)
  return model

