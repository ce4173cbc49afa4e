"""BN modes: 'reset' re-estimates BN statistics as PyTorch's cumulative average, 'repair'
gives every pre-activation the interpolated endpoint statistics, and neither touches an
endpoint where it should not."""

import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf import errors
from lmc_tf.data import base
from lmc_tf.evaluation import bn_modes
from lmc_tf.evaluation import interpolate
from lmc_tf.models import init as init_lib
from lmc_tf.models import layers
from lmc_tf.models import lenet
from lmc_tf.models import resnet_cifar

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")


def _data(shape, n=96, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
  y = rng.integers(0, 10, n).astype(np.int32)
  channels = shape[-1]
  return base.ImageDataset("synthetic", x, y, x[:32], y[:32], 10,
                           mean=np.full(channels, 0.5, np.float32),
                           std=np.full(channels, 0.25, np.float32))


def _resnet(seed, strategy, depth=20):
  with strategy.scope():
    return resnet_cifar.build(init_lib.SeededInit(seed), depth=depth, width_multiplier=0.25,
                              input_shape=(16, 16, 3) if depth < 20 else (32, 32, 3))


def _lenet(seed, strategy):
  with strategy.scope():
    return lenet.build(init_lib.SeededInit(seed), hidden=(24, 12))


BUILDERS = {"lenet": (_lenet, (28, 28, 1)), "resnet20": (_resnet, (32, 32, 3)),
            # the same kinds of layer (residual blocks, BN'd shortcuts), smaller and faster
            "resnet8": (lambda seed, strategy: _resnet(seed, strategy, 8), (16, 16, 3))}


def _trained_like(model, seed):
  """Weights as after training: BN statistics and affine parameters away from their init."""
  rng = np.random.default_rng(seed)
  out = []
  for v in model.variables:
    value = v.numpy()
    if "moving_variance" in v.path or "gamma" in v.path:
      value = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
    elif "moving_mean" in v.path or "beta" in v.path or "bias" in v.path:
      value = rng.normal(0.0, 0.3, value.shape).astype(value.dtype)
    out.append(value)
  return out


def _setup(name, num_batches, batch_size, strategy=None, modes=bn_modes.MODES):
  strategy = strategy or tf.distribute.get_strategy()
  build, shape = BUILDERS[name]
  data = _data(shape)
  model = build(0, strategy)
  weights_a = _trained_like(model, 1)
  weights_b = _trained_like(build(2, strategy), 3)
  modes = bn_modes.BNModes(strategy, model, data, modes, num_batches=num_batches,
                           batch_size=batch_size, seed=5)
  return model, data, modes, weights_a, weights_b


def test_correction_points_are_pre_activations():
  strategy = tf.distribute.get_strategy()
  points = bn_modes.correction_points(_lenet(0, strategy))
  assert [p.name for p in points] == ["dense_0", "dense_1", "dense_out"]
  resnet = _resnet(0, strategy)
  points = bn_modes.correction_points(resnet)
  bns = [l for l in resnet.layers if isinstance(l, layers.BatchNorm)]
  # every BN, and the classifier, which no BN follows; no conv (each feeds a BN)
  assert [p.name for p in points] == [b.name for b in bns] + ["dense_out"]


def test_unknown_modes_are_config_errors():
  with pytest.raises(errors.ConfigError, match="evaluate.bn_modes"):
    bn_modes.check_modes(("interpolate", "renormalise"))
  with pytest.raises(errors.ConfigError, match="each once"):
    bn_modes.check_modes(("reset", "reset"))
  assert bn_modes.check_modes("reset") == ("reset",)


def _bn_inputs_in_training_mode(model, images):
  """Each BN's input when the network runs as in training (BN on batch statistics)."""
  bns = [l for l in model.layers if isinstance(l, layers.BatchNorm)]
  import keras  # pylint: disable=g-import-not-at-top
  features = keras.Model(model.inputs[0], [b.input for b in bns])
  return bns, [f.numpy() for f in features(images, training=True)]


def test_reset_is_the_cumulative_average_of_batch_statistics():
  model, _, modes, weights_a, _ = _setup("resnet20", num_batches=2, batch_size=32,
                                         modes=("reset",))
  reset = modes.reset(weights_a)
  batches = [images for images, _ in modes._dataset]
  assert len(batches) == 2
  interpolate.assign(model, weights_a)
  per_batch = [_bn_inputs_in_training_mode(model, images) for images in batches]
  bns = per_batch[0][0]
  index = {id(v): i for i, v in enumerate(model.variables)}
  for j, bn in enumerate(bns):
    inputs = [p[1][j] for p in per_batch]
    want_mean = np.mean([x.mean((0, 1, 2)) for x in inputs], 0)
    want_var = np.mean([x.var((0, 1, 2), ddof=1) for x in inputs], 0)
    np.testing.assert_allclose(reset[index[id(bn.moving_mean)]], want_mean, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(reset[index[id(bn.moving_variance)]], want_var, rtol=1e-4,
                               atol=1e-5)
  untouched = [i for i, v in enumerate(model.variables) if "moving" not in v.path]
  for i in untouched:
    np.testing.assert_array_equal(reset[i], weights_a[i])


def test_reset_uses_the_same_batches_every_time_and_leaves_lenet_alone():
  _, _, modes, weights_a, _ = _setup("resnet8", num_batches=2, batch_size=16,
                                     modes=("reset",))
  first, again = modes.reset(weights_a), modes.reset(weights_a)
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x, y)
  _, _, modes, weights_a, _ = _setup("lenet", num_batches=1, batch_size=16, modes=("reset",))
  assert modes.reset(weights_a) is weights_a


@pytest.mark.parametrize("name", ["lenet", "resnet20"])
def test_repair_changes_no_endpoint(name):
  _, _, modes, weights_a, weights_b = _setup(name, num_batches=1, batch_size=32)
  modes.begin_pair(weights_a, weights_b)
  assert modes.weights("repair", 0.0, weights_a) is weights_a
  assert modes.weights("repair", 1.0, weights_b) is weights_b
  assert modes.weights("interpolate", 0.5, weights_a) is weights_a


def _measured(modes, weights):
  return [(p.mean, p.std) for p in modes._pooled("measure", weights)]


@pytest.mark.parametrize("name", ["lenet", "resnet20"])
@pytest.mark.parametrize("alpha", [0.3])
def test_repaired_statistics_are_the_interpolated_targets(name, alpha):
  model, _, modes, weights_a, weights_b = _setup(name, num_batches=1, batch_size=96)
  modes.begin_pair(weights_a, weights_b)
  mixed = interpolate.interpolate(weights_a, weights_b, alpha)
  before = _measured(modes, mixed)
  repaired = modes.weights("repair", alpha, mixed)
  after = _measured(modes, repaired)
  for (mean, std), (want_mean, want_std), (old_mean, old_std) in zip(
      after, modes.targets(alpha), before):
    scale = np.abs(want_std).max() + np.abs(want_mean).max()
    np.testing.assert_allclose(mean, want_mean, atol=2e-4 * scale)
    np.testing.assert_allclose(std, want_std, rtol=2e-3, atol=2e-4 * scale)
  # the correction did something: the plain interpolation's statistics were elsewhere
  assert max(np.abs(o - t).max() for (o, _), (t, _) in zip(before, modes.targets(alpha))) > 1e-2
  # masks are untouched and a pruned weight stays pruned
  for layer in layers.masked_layers(model):
    index = [i for i, v in enumerate(model.variables) if v is layer.mask][0]
    np.testing.assert_array_equal(repaired[index], mixed[index])


def test_repair_on_several_batches_is_close_to_the_targets():
  _, _, modes, weights_a, weights_b = _setup("resnet8", num_batches=3, batch_size=32)
  modes.begin_pair(weights_a, weights_b)
  repaired = modes.weights("repair", 0.5, interpolate.interpolate(weights_a, weights_b, 0.5))
  for (mean, std), (want_mean, want_std) in zip(_measured(modes, repaired),
                                                modes.targets(0.5)):
    np.testing.assert_allclose(std, want_std, rtol=0.25, atol=0.05 * want_std.max())


def test_statistics_are_global_across_replicas(bind):
  bind("strategy.name = 'mirrored'", "strategy.num_cpu_devices = 2")
  mirrored = distribute.get_strategy()
  single = _setup("resnet8", num_batches=2, batch_size=32)
  several = _setup("resnet8", num_batches=2, batch_size=32, strategy=mirrored)
  for _, _, modes, weights_a, weights_b in (single, several):
    modes.begin_pair(weights_a, weights_b)
  mixed = [interpolate.interpolate(s[3], s[4], 0.5) for s in (single, several)]
  for x, y in zip(single[2].reset(single[3]), several[2].reset(several[3])):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
  for x, y in zip(single[2].repair(mixed[0], 0.5), several[2].repair(mixed[1], 0.5)):
    np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)


def test_repair_beyond_the_endpoints_aims_at_the_nearest_one():
  _, _, modes, weights_a, weights_b = _setup("lenet", num_batches=1, batch_size=32)
  modes.begin_pair(weights_a, weights_b)
  for alpha, end in ((-0.2, 0.0), (1.2, 1.0)):
    for (mean, std), (end_mean, end_std) in zip(modes.targets(alpha), modes.targets(end)):
      np.testing.assert_array_equal(mean, end_mean)
      np.testing.assert_array_equal(std, end_std)
