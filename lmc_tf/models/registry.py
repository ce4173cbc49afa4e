"""Models by name, so gin can pick one: `model.name = 'lenet_300_100'`."""

import dataclasses
import functools
from typing import Callable, Tuple

import gin
import tensorflow as tf

from lmc_tf.models import inception_v3
from lmc_tf.models import init as init_lib
from lmc_tf.models import lenet
from lmc_tf.models import resnet_cifar
from lmc_tf.models import resnet_imagenet
from lmc_tf.models import squeezenet
from lmc_tf.models import vgg


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  build: Callable
  layers_to_ignore: Tuple[str, ...] = ()  # prunable layers that pruning leaves dense (SPEC §3)


def _table(*specs):
  return {s.name: s for s in specs}


# The model table. The model modules build networks and know nothing of this table.
# Output layers: pruned for ResNets and Inception, left dense for LeNet and VGG (SPEC §3);
# Inception's aux head is pruned like the rest unless layers_to_ignore names its layers.
# SqueezeNet's output layer (conv10, a 1x1 conv to the classes) is pruned like the other
# ImageNet nets' (the Stabilizing paper names no exception); it holds 41% of the kernels, so
# leaving it dense would put the rest at 15% density for the paper's 50%.
MODELS = _table(
    ModelSpec("lenet_300_100", lenet.build, ("dense_out",)),
    *(ModelSpec(f"resnet{d}", functools.partial(resnet_cifar.build, depth=d))
      for d in resnet_cifar.DEPTHS),
    *(ModelSpec(f"resnet{d}", functools.partial(resnet_imagenet.build, depth=d))
      for d in resnet_imagenet.PLANS),
    *(ModelSpec(p, functools.partial(vgg.build, plan_name=p), ("dense_out",))
      for p in vgg.PLANS),
    ModelSpec("inception_v3", inception_v3.build),
    ModelSpec("squeezenet", squeezenet.build))


def names():
  return sorted(MODELS)


def spec(name):
  if name not in MODELS:
    raise ValueError(f"model.name={name!r}: unknown model; known: {names()}")
  return MODELS[name]


@gin.configurable("model", denylist=["init_seed", "input_shape", "num_classes"])
def build_model(name=gin.REQUIRED, init_seed=0, input_shape=None, num_classes=None):
  """Builds the named model with the init of SPEC §2, drawn from `init_seed`."""
  kwargs = {}
  if input_shape is not None:
    kwargs["input_shape"] = tuple(input_shape)
  if num_classes is not None:
    kwargs["num_classes"] = num_classes
  return spec(name).build(init_lib.SeededInit(init_seed), **kwargs)


def split_outputs(outputs):
  """(logits, aux_logits) of a model's outputs; aux_logits is None for single-output models.

  Inception-v3 with its auxiliary classifier returns [logits, aux_logits]: the aux head is
  trained (per_example_loss) but never evaluated.
  """
  if isinstance(outputs, (list, tuple)):
    logits, aux_logits = outputs
    return logits, aux_logits
  return outputs, None


def per_example_loss(model, outputs, labels):
  """The training objective per example, in float32: cross-entropy of the logits, plus
  `model.aux_loss_weight` times that of the aux logits where the model has them.

  Returns (loss, logits) with the main logits in float32, for accuracy.
  """
  logits, aux_logits = split_outputs(outputs)
  logits = tf.cast(logits, tf.float32)
  loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
  if aux_logits is not None:
    aux_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels, tf.cast(aux_logits, tf.float32))
    loss += model.aux_loss_weight * aux_loss
  return loss, logits

