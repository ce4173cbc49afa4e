"""He et al.'s ImageNet ResNets (Table 1's ResNet-50), as the TF TPU reference and torchvision.

A 7x7/2 conv64 + BN + ReLU stem and a 3x3/2 max pool; four stages of widths 64/128/256/512
(times `width_multiplier`) whose blocks are bottlenecks (4x wide at their output; ResNet-18/34:
basic blocks), each stage after the first downsampling in its first block (ResNet v1.5: stride
on the 3x3 conv); global average pooling and a dense layer. No conv has a bias. Strided convs
use the TPU reference's fixed padding (blocks.conv). ResNet-50 has 25,557,032 trainable
parameters, as torchvision's resnet50.
"""

import gin
import keras

from lmc_tf import errors
from lmc_tf.models import blocks

# depth: (blocks per stage, block builder)
PLANS = {
    18: ((2, 2, 2, 2), blocks.basic_block),
    34: ((3, 4, 6, 3), blocks.basic_block),
    50: ((3, 4, 6, 3), blocks.bottleneck_block),
    101: ((3, 4, 23, 3), blocks.bottleneck_block),
}


@gin.configurable("resnet_imagenet", denylist=["init", "depth", "input_shape", "num_classes"])
def build(init, depth, input_shape=(224, 224, 3), num_classes=1000, width_multiplier=1):
  """Args: width_multiplier scales every width (for quick configs)."""
  if depth not in PLANS:
    raise ValueError(f"an ImageNet ResNet has depth {sorted(PLANS)}, got {depth}")
  errors.positive_number(width_multiplier, "resnet_imagenet.width_multiplier")
  blocks_per_stage, block = PLANS[depth]
  widths = [max(1, int(round(w * width_multiplier))) for w in (64, 128, 256, 512)]
  inputs = keras.Input(shape=input_shape)
  x = blocks.conv_bn(inputs, init, widths[0], 7, "conv", strides=2)
  # The TPU reference pools 'SAME' (pads after only); torchvision pads 1 on both sides.
  x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool")(x)
  for stage, (width, num_blocks) in enumerate(zip(widths, blocks_per_stage)):
    for i in range(num_blocks):
      strides = 2 if stage > 0 and i == 0 else 1
      x = block(x, init, width, strides, f"block{stage + 1}_{i}")
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  outputs = blocks.classifier(x, init, num_classes)
  return keras.Model(inputs, outputs, name=f"resnet{depth}")
