"""Models by name, so gin can pick one: `model.name = 'lenet_300_100'`."""

import dataclasses
from typing import Callable, Tuple

import gin
import tensorflow as tf

from lmc_tf.models import init as init_lib


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  build: Callable
  layers_to_ignore: Tuple[str, ...]  # prunable layers that pruning leaves dense (SPEC §3)


_MODELS = {}


def register(name, layers_to_ignore=()):
  def wrap(build):
    _MODELS[name] = ModelSpec(name, build, tuple(layers_to_ignore))
    return build
  return wrap


def names():
  _import_all()
  return sorted(_MODELS)


def spec(name):
  _import_all()
  if name not in _MODELS:
    raise ValueError(f"model.name={name!r}: unknown model; known: {sorted(_MODELS)}")
  return _MODELS[name]


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


def _import_all():
  # Importing a model module registers it.
  from lmc_tf.models import inception_v3  # noqa: F401
  from lmc_tf.models import lenet  # noqa: F401
  from lmc_tf.models import resnet_imagenet  # noqa: F401
  from lmc_tf.models import resnet_cifar  # noqa: F401
  from lmc_tf.models import vgg  # noqa: F401
