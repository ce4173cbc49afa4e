import keras
import numpy as np
import pytest

from lmc_tf.models import layers
from lmc_tf.models import registry


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


def test_lenet_has_exactly_266610_trainable_parameters(bind):
  bind("lenet.hidden = (300, 100)")
  model = registry.build_model(init_seed=0)
  assert _count(model.trainable_variables) == 266_610
  # One mask per kernel, not trainable.
  assert [l.name for l in layers.masked_layers(model)] == ["dense_0", "dense_1", "dense_out"]
  assert _count(model.non_trainable_variables) == 784 * 300 + 300 * 100 + 100 * 10


def test_lenet_init_is_untruncated_he_normal_with_zero_biases(bind):
  bind("lenet.hidden = (300, 100)")
  model = registry.build_model(init_seed=3)
  first = model.get_layer("dense_0")
  kernel = first.kernel.numpy()
  assert kernel.std() == pytest.approx(np.sqrt(2.0 / 784), rel=0.02)
  assert abs(kernel.mean()) < 0.002
  # Untruncated: a truncated normal never goes past 2 standard deviations.
  assert np.abs(kernel).max() > 3 * np.sqrt(2.0 / 784)
  for layer in layers.masked_layers(model):
    assert not layer.bias.numpy().any()


def test_init_seed_sets_the_weights(bind):
  bind()
  a = registry.build_model(init_seed=1).get_weights()
  b = registry.build_model(init_seed=1).get_weights()
  c = registry.build_model(init_seed=2).get_weights()
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])
  # Layers do not share a seed.
  assert not np.array_equal(a[0][:16, :16], a[2][:16, :16])


def test_unknown_model_is_a_clear_error(bind):
  bind("model.name = 'lenet_3000'")
  with pytest.raises(ValueError, match="unknown model.*lenet_300_100"):
    registry.build_model(init_seed=0)


@pytest.mark.parametrize("name,trainable,with_stats,masked", [
    ("resnet20", 272_474, 274_042, 22),
    ("vgg16", 14_728_266, 14_736_714, 14),
])
def test_cifar_models_have_the_exact_parameter_counts(bind, name, trainable, with_stats, masked):
  bind()
  model = registry.build_model(name=name, init_seed=0)
  assert _count(model.trainable_variables) == trainable
  stats = [v for v in model.non_trainable_variables if "moving" in v.path]
  assert _count(model.trainable_variables) + _count(stats) == with_stats
  prunable = layers.masked_layers(model)
  assert len(prunable) == masked
  # Every conv and dense kernel carries a mask, saved with the model's variables.
  assert _count(l.mask for l in prunable) == _count(l.kernel for l in prunable)


def test_resnet_width_multiplier_scales_the_widths(bind):
  bind("resnet_cifar.width_multiplier = 2")
  model = registry.build_model(name="resnet20", init_seed=0)
  assert model.get_layer("conv").kernel.shape == (3, 3, 3, 32)
  assert model.get_layer("block3_2_conv2").kernel.shape == (3, 3, 128, 128)
  assert model.get_layer("dense_out").kernel.shape == (128, 10)
  assert model.output.shape == (None, 10)


def test_output_layer_pruning_follows_the_paper(bind):
  bind()
  assert registry.spec("resnet20").layers_to_ignore == ()
  assert registry.spec("vgg16").layers_to_ignore == ("dense_out",)


def test_stride_two_convs_pad_symmetrically_like_pytorch(bind):
  """TF's 'same' pads a stride-2 3x3 conv only after; PyTorch's padding=1 pads both sides."""
  bind()
  model = registry.build_model(name="resnet20", init_seed=0)
  layer = model.get_layer("block2_0_conv1")
  layer.kernel.assign(np.ones(layer.kernel.shape, np.float32))
  probe = keras.Model(model.get_layer("block2_0_conv1_pad").input, layer.output)
  out = probe(np.ones((1, 32, 32, 16), np.float32)).numpy()
  assert out.shape == (1, 16, 16, 32)
  # The top-left output sees a 2x2 window of real pixels (one padded row and column), the
  # bottom-right a full 3x3 one.
  assert out[0, 0, 0, 0] == 4 * 16 and out[0, -1, -1, 0] == 9 * 16


def test_cifar_init_follows_the_reference(bind):
  bind()
  model = registry.build_model(name="resnet20", init_seed=5)
  kernel = model.get_layer("block3_0_conv2").kernel.numpy()
  assert kernel.std() == pytest.approx(np.sqrt(2.0 / (9 * 64)), rel=0.02)
  gammas = np.concatenate([v.numpy() for v in model.trainable_variables if "gamma" in v.path])
  assert gammas.min() >= 0 and gammas.max() <= 1 and 0.4 < gammas.mean() < 0.6
  betas = [v.numpy() for v in model.trainable_variables if "beta" in v.path]
  assert not np.concatenate(betas).any()
  assert not model.get_layer("dense_out").bias.numpy().any()
  vgg = registry.build_model(name="vgg16", init_seed=5)
  assert not vgg.get_layer("conv0").bias.numpy().any()
