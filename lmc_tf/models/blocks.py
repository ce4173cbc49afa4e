"""The building blocks every conv net of Table 1 is made of, written once and shared.

A block is a function of a Keras tensor; models call the same builders with different widths,
so ResNet-20, VGG-16 and their variants differ only in their lists of widths.
"""

import keras

from lmc_tf.models import layers

BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1 (SPEC §2)
BN_EPSILON = 1e-5


def batch_norm(x, init, name):
  return layers.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                          gamma_initializer=init.gamma(), beta_initializer=init.zeros(),
                          name=name)(x)


def conv(x, init, filters, kernel_size, name, strides=1, use_bias=False):
  """A masked conv with the reference's symmetric padding of kernel_size // 2.

  TF's 'same' pads a stride-2 conv asymmetrically (0 before, 1 after on even inputs), while
  PyTorch's padding=1 pads both sides; an explicit ZeroPadding2D keeps PyTorch's geometry.
  """
  pad = kernel_size // 2
  if strides > 1 and pad:
    x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    padding = "valid"
  else:
    padding = "same"
  return layers.MaskedConv2D(filters, kernel_size, strides=strides, padding=padding,
                             use_bias=use_bias, kernel_initializer=init.kernel(),
                             bias_initializer=init.zeros(), name=name)(x)


def conv_bn(x, init, filters, kernel_size, name, strides=1, use_bias=False, relu=True):
  """conv -> BatchNorm (-> ReLU): the unit of both the CIFAR ResNets and VGG."""
  x = conv(x, init, filters, kernel_size, name, strides=strides, use_bias=use_bias)
  x = batch_norm(x, init, f"{name}_bn")
  return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def basic_block(x, init, filters, strides, name):
  """He et al.'s two-conv residual block; a 1x1 conv + BN shortcut where the shape changes."""
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    shortcut = conv_bn(x, init, filters, 1, f"{name}_shortcut", strides=strides, relu=False)
  y = conv_bn(x, init, filters, 3, f"{name}_conv1", strides=strides)
  y = conv_bn(y, init, filters, 3, f"{name}_conv2", relu=False)
  y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
  return keras.layers.ReLU(name=f"{name}_out")(y)


def classifier(x, init, num_classes, name="dense_out"):
  """The masked dense output layer (its bias is zero at init)."""
  return layers.MaskedDense(num_classes, kernel_initializer=init.kernel(),
                            bias_initializer=init.zeros(), name=name)(x)
