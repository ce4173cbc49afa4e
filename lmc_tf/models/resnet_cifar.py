"""He et al.'s CIFAR ResNets (Table 1's ResNet-20): 6n + 2 layers, three stages of n blocks.

A 3x3 conv16 + BN, stages of widths 16/32/64 (times `width_multiplier`) whose first blocks
downsample, global average pooling and a dense layer. ResNet-20 has 272,474 trainable
parameters (274,042 with the BN moving statistics), as open_lth's cifar_resnet_20.
"""

import gin
import keras

from lmc_tf import errors
from lmc_tf.models import blocks

DEPTHS = (20, 56, 110)  # the registered depths; any 6n + 2 builds


@gin.configurable("resnet_cifar", denylist=["init", "depth", "input_shape", "num_classes"])
def build(init, depth, input_shape=(32, 32, 3), num_classes=10, width_multiplier=1):
  """Args: width_multiplier scales every width (open_lth's cifar_resnet_20_W)."""
  if (depth - 2) % 6 or depth < 8:
    raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110), got {depth}")
  errors.positive_number(width_multiplier, "resnet_cifar.width_multiplier")
  blocks_per_stage = (depth - 2) // 6
  widths = [int(round(w * width_multiplier)) for w in (16, 32, 64)]
  inputs = keras.Input(shape=input_shape)
  x = blocks.conv_bn(inputs, init, widths[0], 3, "conv")
  for stage, width in enumerate(widths):
    for i in range(blocks_per_stage):
      strides = 2 if stage > 0 and i == 0 else 1
      x = blocks.basic_block(x, init, width, strides, f"block{stage + 1}_{i}")
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  outputs = blocks.classifier(x, init, num_classes)
  return keras.Model(inputs, outputs, name=f"resnet{depth}")
