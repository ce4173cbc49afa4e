"""SqueezeNet 1.0 (Iandola et al. 2016), the ImageNet network of the Stabilizing paper's Figure 6.

Version 1.0, not 1.1, because 1.0 is what the paper trained: its ImageNet runs used the TPU
reference implementations (tensorflow/tpu models/official/squeezenet, "Squeezenet 1.0
model"), and this net is laid out as that one. A 7x7/2 conv96 stem; 3x3/2 max pools after
conv1, fire4 and fire8; fire modules 2-9 of squeeze/expand widths 16/64, 16/64, 32/128,
32/128, 48/192, 48/192, 64/256, 64/256 (times `width_multiplier`), each a 1x1 squeeze conv
and the concatenation of a 1x1 and a 3x3 expand conv; dropout; a 1x1 conv to the classes and
global average pooling to the logits. Every conv has a bias and a ReLU, conv10 included (the
reference's one conv helper has ReLU, so its logits are non-negative); there is no
BatchNorm. Kernels are Glorot-uniform (the reference's xavier_initializer_conv2d), biases 0.

Padding is the reference's: every conv TF 'same' (the stride-2 stem pads 2 before and 3
after on even inputs), every max pool 'valid'. torchvision's squeezenet1_0 pads the stem by 0
and pools with ceil_mode; the spatial sizes differ (224 -> 112 -> 55 -> 27 -> 13 here), the
parameter counts do not: 1,248,424 trainable at 1000 classes, of which 1,244,448 are the
kernels that pruning masks, as torchvision's squeezenet1_0 (1.1 has 1,235,496). The
reference's 13x13 average pool is global pooling at 224; global pooling also fits the smaller
inputs of quick configs, down to 29x29 (a 1x1 map after the last pool).
"""

import gin
import keras

from lmc_tf import errors
from lmc_tf.models import blocks
from lmc_tf.models import layers

# fire module: (squeeze width, expand width of each of its 1x1 and 3x3 convs)
FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192),
         8: (64, 256), 9: (64, 256)}
POOL_AFTER = ("conv1", "fire4", "fire8")
MIN_INPUT = 29


def _conv_relu(x, init, filters, kernel_size, name, strides=1):
  x = blocks.conv(x, init, filters, kernel_size, name, strides=strides, use_bias=True,
                  padding="same", kernel_initializer=init.glorot())
  return keras.layers.ReLU(name=f"{name}_relu")(x)


def fire(x, init, squeeze, expand, name):
  """Squeeze 1x1, then the 1x1 and 3x3 expand convs side by side."""
  x = _conv_relu(x, init, squeeze, 1, f"{name}_squeeze")
  return keras.layers.Concatenate(name=name)([
      _conv_relu(x, init, expand, 1, f"{name}_expand1x1"),
      _conv_relu(x, init, expand, 3, f"{name}_expand3x3")])


def _pool(x, after):
  return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{after}_pool")(x)


@gin.configurable("squeezenet", denylist=["init", "input_shape", "num_classes"])
def build(init, input_shape=(224, 224, 3), num_classes=1000, dropout_rate=0.5,
          width_multiplier=1):
  """Args:
    dropout_rate: on fire9's output map, before conv10 (the reference's 0.5), stateless
      (layers.FeatureHashDropout).
    width_multiplier: scales every conv width but conv10's (for quick configs).
  """
  errors.positive_number(width_multiplier, "squeezenet.width_multiplier")
  if min(input_shape[:2]) < MIN_INPUT:
    raise ValueError(f"squeezenet takes inputs of at least {MIN_INPUT}x{MIN_INPUT}, "
                     f"got {input_shape}")
  width = lambda w: max(1, int(round(w * width_multiplier)))  # noqa: E731
  inputs = keras.Input(shape=input_shape)
  x = _conv_relu(inputs, init, width(96), 7, "conv1", strides=2)
  x = _pool(x, "conv1")
  for index, (squeeze, expand) in FIRES.items():
    name = f"fire{index}"
    x = fire(x, init, width(squeeze), width(expand), name)
    if name in POOL_AFTER:
      x = _pool(x, name)
  x = layers.FeatureHashDropout(dropout_rate, name="dropout")(x)
  x = _conv_relu(x, init, num_classes, 1, "conv10")
  outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  return keras.Model(inputs, outputs, name="squeezenet")
