"""VGG for CIFAR-10 (Table 1's VGG-16; the Stabilizing paper's VGG-19), as open_lth's cifar_vgg.

Each number is a 3x3 conv with bias + BN + ReLU, each 'M' a 2x2 max-pool; then 2x2 average
pooling of the last 2x2 map and a dense 512 -> 10. VGG-16 has 14,728,266 trainable parameters.
"""

import gin
import keras

from lmc_tf import errors
from lmc_tf.models import blocks

PLANS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512],
}


@gin.configurable("vgg", denylist=["init", "plan_name", "input_shape", "num_classes"])
def build(init, plan_name, input_shape=(32, 32, 3), num_classes=10, width_multiplier=1):
  """Args: width_multiplier scales every conv width (for quick configs)."""
  errors.positive_number(width_multiplier, "vgg.width_multiplier")
  inputs = keras.Input(shape=input_shape)
  x, pools = inputs, 0
  for i, width in enumerate(PLANS[plan_name]):
    if width == "M":
      pools += 1
      x = keras.layers.MaxPooling2D(2, name=f"pool{pools}")(x)
    else:
      x = blocks.conv_bn(x, init, int(round(width * width_multiplier)), 3, f"conv{i - pools}",
                         use_bias=True)
  x = keras.layers.AveragePooling2D(2, name="avgpool")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  outputs = blocks.classifier(x, init, num_classes)
  return keras.Model(inputs, outputs, name=plan_name)
