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
