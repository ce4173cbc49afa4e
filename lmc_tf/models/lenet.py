"""LeNet-300-100 for MNIST (Table 1): 784-300-100-10 with ReLU, 266,610 parameters."""

import gin
import keras

from lmc_tf import errors
from lmc_tf.models import layers


@gin.configurable("lenet", denylist=["init", "input_shape", "num_classes"])
def build(init, input_shape=(28, 28, 1), num_classes=10, hidden=(300, 100)):
  if not isinstance(hidden, (list, tuple)):
    raise errors.ConfigError(f"lenet.hidden={hidden!r} must be a list of layer widths")
  for i, width in enumerate(hidden):
    errors.positive_int(width, f"lenet.hidden[{i}]")
  inputs = keras.Input(shape=input_shape)
  x = keras.layers.Flatten()(inputs)
  for i, width in enumerate(hidden):
    x = layers.MaskedDense(width, activation="relu", kernel_initializer=init.kernel(),
                           bias_initializer=init.zeros(), name=f"dense_{i}")(x)
  outputs = layers.MaskedDense(num_classes, kernel_initializer=init.kernel(),
                               bias_initializer=init.zeros(), name="dense_out")(x)
  return keras.Model(inputs, outputs, name="lenet_300_100")
