"""evaluate.factor_first_layer (evaluation/first_layer.py): M interpolated networks' dense
first layer from the two endpoints' products gives each network's logits to float rounding,
the endpoints' exactly, and is used only where it is exact in real arithmetic."""

import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf.data import base as data_base
from lmc_tf.evaluation import evaluator
from lmc_tf.evaluation import first_layer
from lmc_tf.evaluation import interpolate
from lmc_tf.models import layers
from lmc_tf.models import registry

ALPHAS = [0.0, 0.3, 0.7, 1.0, -0.2, 1.25]  # the endpoints, inside, and beyond them


def _lenet(seed):
  return registry.build_model(name="lenet_300_100", init_seed=seed, input_shape=(28, 28, 1),
                              num_classes=10)


def _endpoints(masked=True):
  a, b = _lenet(1), _lenet(2)
  if masked:  # one mask at both ends, as a pair of copies of one subnetwork has
    rng = np.random.default_rng(0)
    masks = {l.name: (rng.random(l.kernel.shape) < 0.3).astype("f4")
             for l in layers.masked_layers(a)}
    layers.set_masks(a, masks)
    layers.set_masks(b, masks)
  return [v.numpy() for v in a.variables], [v.numpy() for v in b.variables]


def test_the_first_dense_layer_is_found_only_on_the_input():
  assert first_layer.first_dense(_lenet(0)).name == "dense_0"
  resnet = registry.build_model(name="resnet20", input_shape=(32, 32, 3), num_classes=10)
  assert first_layer.first_dense(resnet) is None  # a convolution first
  with pytest.raises(ValueError, match="not a dense layer"):
    first_layer.SharedFirstLayer([resnet])


@pytest.mark.parametrize("masked", [True, False])
def test_factored_logits_are_each_networks_own_to_rounding(masked):
  weights_a, weights_b = _endpoints(masked)
  models = [_lenet(0) for _ in ALPHAS]
  points = [interpolate.interpolate(weights_a, weights_b, a) for a in ALPHAS]
  for model, point in zip(models, points):
    interpolate.assign(model, point)
  shared = first_layer.SharedFirstLayer(models)
  assert shared.applies(weights_a, weights_b, points, points)
  shared.load(weights_a, weights_b, ALPHAS)
  images = tf.random.stateless_uniform([64, 28, 28, 1], seed=[3, 4])
  factored = [t.numpy() for t in tf.function(shared.outputs)(images, len(ALPHAS))]
  for alpha, model, logits in zip(ALPHAS, models, factored):
    alone = model(images, training=False).numpy()
    if alpha in (0.0, 1.0):
      np.testing.assert_array_equal(logits, alone, err_msg=f"alpha {alpha}")
    else:
      np.testing.assert_allclose(logits, alone, rtol=1e-5, atol=1e-5, err_msg=f"alpha {alpha}")
  # Fewer networks than the program holds: the first n.
  few = tf.function(shared.outputs)(images, 2)
  assert len(few) == 2
  np.testing.assert_array_equal(few[1].numpy(), factored[1])


def test_it_does_not_apply_to_other_masks_or_a_rewritten_first_layer():
  weights_a, weights_b = _endpoints()
  shared = first_layer.SharedFirstLayer([_lenet(0), _lenet(0)])
  points = [interpolate.interpolate(weights_a, weights_b, a) for a in (0.5, 0.6)]
  assert shared.applies(weights_a, weights_b, points, points)
  other = list(weights_b)
  mask = next(i for i, w in enumerate(weights_b) if w.ndim == 2 and set(np.unique(w)) <= {0, 1})
  other[mask] = np.ones_like(other[mask])  # B pruned differently (e.g. permuted by alignment)
  assert not shared.applies(weights_a, other, points, points)
  rescaled = [list(p) for p in points]
  kernel = next(i for i, w in enumerate(weights_a) if w.shape == (784, 300))
  rescaled[1][kernel] = rescaled[1][kernel] * 1.5  # REPAIR's scale folded into the kernel
  assert not shared.applies(weights_a, weights_b, points, rescaled)
  assert shared.applies(weights_a, weights_b, points[:1], rescaled[:1])


@pytest.mark.parametrize("replicas", [
    [], ["strategy.name = 'mirrored'", "strategy.num_cpu_devices = 4"]])
def test_a_factored_sweep_matches_the_exact_one_under_any_strategy(bind, replicas):
  """Sweeper.measure_many factored against the exact program of the same alphas, on one
  replica and on four: the endpoints identical, the rest to rounding."""
  bind(*replicas)
  strategy, data = distribute.get_strategy(), data_base.get_dataset()
  assert strategy.num_replicas_in_sync == (4 if replicas else 1)
  alphas = [0.0, 0.25, 0.5, 1.0]
  factored = evaluator.Sweeper(strategy, data, ("test",), None, 100, len(alphas), True)
  exact = evaluator.Sweeper(strategy, data, ("test",), None, 100, len(alphas))
  assert factored.first_layer is not None and exact.first_layer is None
  weights_a = [v.numpy() for v in factored.model.variables]
  weights_b = [v.numpy() for v in factored.extra_models[0].variables]
  weights_b = [w + 0.1 * np.sign(w) if v.path.endswith("kernel") else w
               for v, w in zip(factored.model.variables, weights_b)]  # the masks kept
  points = [interpolate.interpolate(weights_a, weights_b, a) for a in alphas]
  assert factored.first_layer.applies(weights_a, weights_b, points, points)
  many = factored.measure_many(points, (weights_a, weights_b, alphas, points))
  for alpha, got, alone in zip(alphas, many, exact.measure_many(points)):
    alone = alone["test"]
    if alpha in (0.0, 1.0):
      assert got["test"] == alone, alpha
    assert got["test"]["error"] == pytest.approx(alone["error"], abs=100 / 300 + 1e-9)
    assert got["test"]["loss"] == pytest.approx(alone["loss"], rel=1e-5)
