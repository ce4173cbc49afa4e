"""The building blocks every conv net of Table 1 is made of, written once and shared.

A block is a function of a Keras tensor; models call the same builders with different widths,
so ResNet-20, VGG-16, ResNet-50 and their variants differ only in their lists of widths.
"""

import keras

from lmc_tf.models import layers

BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1 (SPEC §2)
BN_EPSILON = 1e-5


def batch_norm(x, init, name, epsilon=BN_EPSILON):
  return layers.BatchNorm(momentum=BN_MOMENTUM, epsilon=epsilon,
                          gamma_initializer=init.gamma(), beta_initializer=init.zeros(),
                          name=name)(x)


def fixed_padding(kernel_size):
  """(before, after) of the TF TPU reference's `fixed_padding`: kernel_size - 1 in all, the
  extra pixel after. For odd kernels both are kernel_size // 2, PyTorch's padding."""
  total = kernel_size - 1
  return total // 2, total - total // 2


def conv(x, init, filters, kernel_size, name, strides=1, use_bias=False, padding="fixed",
         kernel_initializer=None):
  """A masked conv, its kernel drawn from `kernel_initializer` (default: init.kernel()).

  padding='fixed' pads like the references: stride 1 'same'; a strided conv first pads
  explicitly by `fixed_padding` and then convolves 'valid'. TF's 'same' would pad a stride-2
  conv asymmetrically (0 before, 1 after on even inputs), while PyTorch's padding=1 (the CIFAR
  ResNets) and the TPU reference's fixed padding (ResNet-50) pad both sides.
  padding='same' or 'valid' is passed to Keras as is (Inception-v3 and non-square kernels).
  """
  if padding == "fixed":
    padding = "same"
    if strides > 1:
      before, after = fixed_padding(kernel_size)
      if after:
        x = keras.layers.ZeroPadding2D(((before, after), (before, after)),
                                       name=f"{name}_pad")(x)
      padding = "valid"
  return layers.MaskedConv2D(filters, kernel_size, strides=strides, padding=padding,
                             use_bias=use_bias,
                             kernel_initializer=(init.kernel() if kernel_initializer is None
                                                 else kernel_initializer),
                             bias_initializer=init.zeros(), name=name)(x)


def conv_bn(x, init, filters, kernel_size, name, strides=1, use_bias=False, relu=True,
            padding="fixed", bn_epsilon=BN_EPSILON):
  """conv -> BatchNorm (-> ReLU): the unit of every conv net here."""
  x = conv(x, init, filters, kernel_size, name, strides=strides, use_bias=use_bias,
           padding=padding)
  x = batch_norm(x, init, f"{name}_bn", epsilon=bn_epsilon)
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


def bottleneck_block(x, init, filters, strides, name, expansion=4):
  """He et al.'s 1x1 -> 3x3 -> 1x1 block, `expansion` x `filters` wide at the output.

  The stride sits on the 3x3 conv (ResNet v1.5, as torchvision and the TF TPU reference), not
  on the first 1x1 conv of the original paper.
  """
  shortcut = x
  if strides != 1 or x.shape[-1] != expansion * filters:
    shortcut = conv_bn(x, init, expansion * filters, 1, f"{name}_shortcut", strides=strides,
                       relu=False)
  y = conv_bn(x, init, filters, 1, f"{name}_conv1")
  y = conv_bn(y, init, filters, 3, f"{name}_conv2", strides=strides)
  y = conv_bn(y, init, expansion * filters, 1, f"{name}_conv3", relu=False)
  y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
  return keras.layers.ReLU(name=f"{name}_out")(y)


def classifier(x, init, num_classes, name="dense_out"):
  """The masked dense output layer (its bias is zero at init)."""
  return layers.MaskedDense(num_classes, kernel_initializer=init.kernel(),
                            bias_initializer=init.zeros(), name=name)(x)
