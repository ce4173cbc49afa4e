import numpy as np
import pytest
import tensorflow as tf
import keras

from lmc_tf.models import layers
from lmc_tf.pruning import baselines
from lmc_tf.pruning import magnitude
from lmc_tf.pruning import masks as masks_lib


def _weights(seed=0):
  rng = np.random.default_rng(seed)
  return {"a": rng.normal(size=(30, 20)), "b": rng.normal(size=(20, 10)),
          "out": rng.normal(size=(10, 5))}


def _ones(weights):
  return {k: np.ones(v.shape, np.float32) for k, v in weights.items()}


def test_iterative_levels_keep_exactly_0_8_to_the_level():
  w = _weights()
  m = _ones(w)
  total = 30 * 20 + 20 * 10
  for level in range(1, 16):
    keep = magnitude.keep_count(total, 0.2, level)
    m = magnitude.prune(w, m, keep, layers_to_ignore=["out"])
    remaining = m["a"].sum() + m["b"].sum()
    assert remaining == keep and abs(remaining - total * 0.8 ** level) <= 0.5
    assert m["out"].all()  # ignored
  assert masks_lib.density(m, ["out"]) == pytest.approx(0.8 ** 15, abs=1 / total)


def test_the_smallest_magnitudes_go_and_pruned_weights_stay_pruned():
  w = {"a": np.array([[0.1, -5.0], [3.0, -0.2]]), "b": np.array([[1.0, 0.05]])}
  m = {"a": np.ones((2, 2), np.float32), "b": np.array([[0.0, 1.0]], np.float32)}
  new = magnitude.prune(w, m, keep=3)
  np.testing.assert_array_equal(new["a"], [[0, 1], [1, 1]])
  np.testing.assert_array_equal(new["b"], [[0, 0]])  # 1.0 was already pruned: stays so


def test_ties_are_broken_by_position_deterministically():
  w = {"a": np.ones((2, 3)), "b": np.ones((4,))}
  m = _ones(w)
  new = magnitude.prune(w, m, keep=4)
  np.testing.assert_array_equal(new["a"], [[1, 1, 1], [1, 0, 0]])
  np.testing.assert_array_equal(new["b"], [0, 0, 0, 0])
  again = magnitude.prune(w, m, keep=4)
  for k in new:
    np.testing.assert_array_equal(new[k], again[k])


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_fractions_outside_0_1_are_refused(fraction):
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    magnitude.keep_count(100, fraction, 1)


def test_one_shot_prunes_straight_to_the_density():
  w = _weights(1)
  keep = magnitude.keep_count(800, density=0.3)
  m = magnitude.prune(w, _ones(w), keep, ["out"])
  assert masks_lib.density(m, ["out"]) == pytest.approx(0.3)


def test_unknown_ignored_layer_is_an_error():
  with pytest.raises(ValueError, match="does not have"):
    masks_lib.density(_ones(_weights()), ["nope"])


def test_random_pruning_keeps_layer_densities_with_new_positions():
  w = _weights(2)
  imp = magnitude.prune(w, _ones(w), 300, ["out"])
  rand = baselines.random_pruning(imp, seed=5, layers_to_ignore=["out"])
  for name in ("a", "b"):
    assert rand[name].sum() == imp[name].sum()
    assert not np.array_equal(rand[name], imp[name])
  np.testing.assert_array_equal(rand["out"], imp["out"])
  again = baselines.random_pruning(imp, seed=5, layers_to_ignore=["out"])
  np.testing.assert_array_equal(again["a"], rand["a"])
  assert not np.array_equal(baselines.random_pruning(imp, 6, ["out"])["a"], rand["a"])


def test_snip_keeps_the_most_sensitive_connections():
  inputs = keras.Input((6,))
  x = layers.MaskedDense(8, activation="relu", name="h")(inputs)
  model = keras.Model(inputs, layers.MaskedDense(3, name="out")(x))
  rng = np.random.default_rng(0)
  images = tf.constant(rng.normal(size=(16, 6)), tf.float32)
  labels = tf.constant(rng.integers(0, 3, 16))
  scores = baselines.snip_scores(model, images, labels)
  m = baselines.snip(model, images, labels, keep=20, layers_to_ignore=["out"])
  assert m["h"].sum() == 20 and m["out"].all()
  assert scores["h"][m["h"] == 1].min() >= scores["h"][m["h"] == 0].max()


def test_masks_round_trip_and_report(tmp_path):
  w = _weights(3)
  m = magnitude.prune(w, _ones(w), 500, ["out"])
  path = str(tmp_path / "m.npz")
  masks_lib.save(path, m)
  loaded = masks_lib.load(path)
  for k in m:
    np.testing.assert_array_equal(loaded[k], m[k])
  report = masks_lib.sparsity_report(loaded, ["out"])
  assert report["total"] == 800 and report["remaining"] == 500
  assert report["per_layer"]["out"]["density"] == 1.0
  assert masks_lib.digest(loaded) == masks_lib.digest(m)
