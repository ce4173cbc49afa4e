"""Permutation alignment: the spec derived from each registry model's graph, exact permutation,
and weight and activation matching recovering a permutation of a network of itself.

Networks are at tiny widths and inputs. Their weights are "trained-like": random kernels with a
third of each kernel pruned, random biases and BN scales and shifts, and BN statistics those
of a batch (so no unit is dead on the data, which activation matching could not tell apart).
"""

import functools

import keras
import numpy as np
import pytest

from lmc_tf import errors
from lmc_tf.alignment import align
from lmc_tf.alignment import matching
from lmc_tf.alignment import permute
from lmc_tf.alignment import spec as spec_lib
from lmc_tf.models import init as init_lib
from lmc_tf.models import layers
from lmc_tf.models import registry

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")

_IMAGENET = dict(input_shape=(32, 32, 3), width_multiplier=1 / 16, num_classes=10)
_CIFAR_RESNET = dict(input_shape=(8, 8, 3), width_multiplier=0.25)
_VGG = dict(input_shape=(32, 32, 3), width_multiplier=1 / 16)
# name: (build arguments, fast tier)
CASES = {
    "lenet_300_100": ({}, True),
    "resnet20": (_CIFAR_RESNET, True),
    "resnet56": (_CIFAR_RESNET, False),
    "resnet110": (_CIFAR_RESNET, False),
    "vgg11": (_VGG, True),
    "vgg16": (_VGG, False),
    "vgg19": (_VGG, False),
    "resnet18": (_IMAGENET, True),
    "resnet34": (_IMAGENET, False),
    "resnet50": (_IMAGENET, False),
    "resnet101": (_IMAGENET, False),
    "inception_v3": (dict(_IMAGENET, input_shape=(75, 75, 3)), False),
    "squeezenet": (dict(_IMAGENET, input_shape=(64, 64, 3), width_multiplier=0.25), False),
}
MODEL_NAMES = [pytest.param(name, marks=() if fast else pytest.mark.slow)
               for name, (_, fast) in CASES.items()]


def _build(name, **overrides):
  kwargs = dict(CASES[name][0], **overrides)
  return registry.spec(name).build(init_lib.SeededInit(0), **kwargs)


def _images(model, n, seed):
  shape = (n,) + tuple(model.inputs[0].shape[1:])
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _trained_like(model, spec, seed=0):
  """Weights with every kind of variable informative, as after training (see the docstring)."""
  rng = np.random.default_rng(seed)
  weights = []
  for v in model.variables:
    shape, leaf = tuple(v.shape), v.path.rsplit("/", 1)[-1]
    if leaf == "mask":
      weights.append((rng.random(shape) > 1 / 3).astype(np.float32))
    elif leaf in ("gamma", "beta"):
      weights.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
    else:
      weights.append(v.numpy() + 0.1 * rng.standard_normal(shape).astype(np.float32))
  for mask, kernel in spec.masks:
    weights[kernel] = weights[kernel] * weights[mask]
  _assign(model, weights)
  norms = [l for l in model._flatten_layers() if isinstance(l, layers.BatchNorm)]
  for layer in norms:
    layer.momentum = 0.0  # one training-mode call sets the statistics to the batch's
  model(_images(model, 16, seed + 1), training=True)
  for layer in norms:
    layer.momentum = 0.9
  return [v.numpy() for v in model.variables]


def _assign(model, weights):
  for variable, value in zip(model.variables, weights):
    variable.assign(value)


def _logits(model, weights, images):
  _assign(model, weights)
  return np.asarray(registry.split_outputs(model(images, training=False))[0])


def _assert_same_logits(actual, expected):
  scale = np.abs(expected).max()
  np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale)


@functools.lru_cache(maxsize=None)
def _network(name):
  """(model, spec, trained-like weights), built once per model."""
  model = _build(name)
  spec = spec_lib.permutation_spec(model)
  return model, spec, _trained_like(model, spec)


# --- The spec ---------------------------------------------------------------------------

def _members(group):
  return {(m.name, m.axis) for m in group.members}


def test_lenet_spec_names_its_two_hidden_layers():
  model, spec, _ = _network("lenet_300_100")
  assert [(g.name, g.size) for g in spec.groups] == [("dense_0", 300), ("dense_1", 100)]
  assert _members(spec.groups[0]) == {
      ("dense_0/kernel", 1), ("dense_0/mask", 1), ("dense_0/bias", 0),
      ("dense_1/kernel", 0), ("dense_1/mask", 0)}
  assert _members(spec.groups[1]) == {
      ("dense_1/kernel", 1), ("dense_1/mask", 1), ("dense_1/bias", 0),
      ("dense_out/kernel", 0), ("dense_out/mask", 0)}
  # The flattened image is never permuted; the units are seen where the next layer reads them.
  assert [p.layer for p in spec.groups[0].points] == ["dense_0"]
  assert spec.num_variables == len(model.variables)
  assert sorted(spec.masks) == [(2, 0), (5, 3), (8, 6)]


def test_resnet20_spec_ties_each_stage_and_frees_each_inner_conv():
  _, spec, _ = _network("resnet20")
  assert len(spec.groups) == 12  # one per stage, one per block's first conv
  stages = [g for g in spec.groups if len(g.producers) > 1]
  assert [g.producers for g in stages] == [
      ("conv", "block1_0_conv2", "block1_1_conv2", "block1_2_conv2"),
      ("block2_0_shortcut", "block2_0_conv2", "block2_1_conv2", "block2_2_conv2"),
      ("block3_0_shortcut", "block3_0_conv2", "block3_1_conv2", "block3_2_conv2")]
  assert [g.size for g in stages] == [4, 8, 16]
  first = _members(stages[0])
  for producer in stages[0].producers:
    assert {(f"{producer}/kernel", 3), (f"{producer}/mask", 3)} <= first
    assert {(f"{producer}_bn/{v}", 0) for v in ("gamma", "beta", "moving_mean",
                                                 "moving_variance")} <= first
  assert {("block2_0_shortcut/kernel", 2), ("block2_0_conv1/kernel", 2)} <= first
  assert ("dense_out/kernel", 0) in _members(stages[2])
  # Activations at the stage's merge points: the stem and every block's output.
  assert [p.layer for p in stages[0].points] == [
      "conv_relu", "block1_0_out", "block1_1_out", "block1_2_out"]
  inner = spec.group("block1_0_conv1")
  assert _members(inner) == {
      ("block1_0_conv1/kernel", 3), ("block1_0_conv1/mask", 3),
      *((f"block1_0_conv1_bn/{v}", 0) for v in ("gamma", "beta", "moving_mean",
                                                "moving_variance")),
      ("block1_0_conv2/kernel", 2), ("block1_0_conv2/mask", 2)}


def test_every_axis_of_a_hidden_unit_is_in_one_group():
  """ResNet-20: each variable's axes that are not the image's channels or the logits are
  covered exactly once (concatenation would cover one axis by several groups)."""
  model, spec, _ = _network("resnet20")
  covered = {}
  for group in spec.groups:
    for m in group.members:
      covered[(m.variable, m.axis)] = covered.get((m.variable, m.axis), 0) + m.repeat * group.size
  for i, v in enumerate(model.variables):
    for axis, size in enumerate(v.shape):
      fixed = (v.path.startswith("conv/") and axis == 2) or (
          v.path.startswith("dense_out/") and axis == len(v.shape) - 1)
      spatial = len(v.shape) == 4 and axis < 2
      assert covered.get((i, axis), 0) == (0 if fixed or spatial else size), (v.path, axis)


def test_inception_concatenation_lays_its_branches_side_by_side():
  _, spec, _ = _network("inception_v3")
  convs = 94 + 2  # the main network's convs and the aux head's
  assert len(spec.groups) == convs
  rows = sorted((m.start, m.block, g.name) for g in spec.groups for m in g.members
                if m.name == "Mixed_5c_branch1x1/kernel" and m.axis == 2)
  assert rows == [(0, 16, "Mixed_5b_branch1x1"), (4, 16, "Mixed_5b_branch5x5_2"),
                  (8, 16, "Mixed_5b_branch3x3dbl_3"), (14, 16, "Mixed_5b_branch_pool")]


def test_flatten_of_a_map_repeats_the_channels_per_pixel():
  """VGG-11 on 64x64: the last 2x2 map is flattened, so each channel feeds 4 dense rows."""
  model = _build("vgg11", input_shape=(64, 64, 3))
  spec = spec_lib.permutation_spec(model)
  last = spec.groups[-1]
  rows = [m for m in last.members if m.name == "dense_out/kernel"]
  assert [(m.axis, m.repeat, m.block) for m in rows] == [(0, 4, last.size)]
  weights = _trained_like(model, spec)
  images = _images(model, 4, 5)
  permuted = permute.apply_permutation(spec, weights, permute.random_permutation(spec, 3))
  _assert_same_logits(_logits(model, permuted, images), _logits(model, weights, images))


def test_unknown_layers_are_refused_by_name():
  inputs = keras.Input((4, 4, 2))
  x = layers.MaskedConv2D(3, 1, name="c")(inputs)
  x = keras.layers.LayerNormalization(name="odd")(x)
  model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
  with pytest.raises(ValueError, match="'odd' of type LayerNormalization"):
    spec_lib.permutation_spec(model)


def test_hash_dropout_is_identity_in_inference_but_not_permutation_equivariant_in_training():
  """Inception's dropout hashes feature positions: the permuted network computes the same
  logits (dropout is off) but, in training, drops other units than the permuted original."""
  dropout = layers.FeatureHashDropout(0.5)
  x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
  perm = np.random.default_rng(1).permutation(64)
  np.testing.assert_array_equal(dropout(x[:, perm]), x[:, perm])
  assert not np.array_equal(np.asarray(dropout.mask(x[:, perm])),
                            np.asarray(dropout.mask(x))[:, perm])


# --- Permuting --------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_permuted_network_computes_the_same_logits_and_stays_pruned(name):
  model, spec, weights = _network(name)
  images = _images(model, 4, 7)
  perms = permute.random_permutation(spec, 11)
  assert not permute.is_identity(perms)
  permuted = permute.apply_permutation(spec, weights, perms)
  _assert_same_logits(_logits(model, permuted, images), _logits(model, weights, images))
  for mask, kernel in spec.masks:
    assert permuted[mask].sum() == weights[mask].sum()
    assert np.all(permuted[kernel][permuted[mask] == 0] == 0)
  assert any(not np.array_equal(a, b) for a, b in zip(permuted, weights))


def test_bn_statistics_and_masks_move_with_their_channels():
  model, spec, weights = _network("resnet20")
  # Only the block's inner group moves, so its kernel's input axis stays as it is.
  g = spec.groups.index(spec.group("block1_0_conv1"))
  perms = permute.identity(spec)
  perms[g] = perm = np.random.default_rng(2).permutation(spec.groups[g].size)
  permuted = permute.apply_permutation(spec, weights, perms)
  index = {v.path: i for i, v in enumerate(model.variables)}
  for path in ("block1_0_conv1_bn/moving_mean", "block1_0_conv1_bn/moving_variance"):
    np.testing.assert_array_equal(permuted[index[path]], weights[index[path]][perm])
  mask = index["block1_0_conv1/mask"]
  np.testing.assert_array_equal(permuted[mask], weights[mask][..., perm])


def test_permutations_compose_invert_and_round_trip_through_json():
  _, spec, weights = _network("resnet20")
  p, q = permute.random_permutation(spec, 1), permute.random_permutation(spec, 2)
  twice = permute.apply_permutation(spec, permute.apply_permutation(spec, weights, p), q)
  once = permute.apply_permutation(spec, weights, permute.compose(p, q))
  assert all(np.array_equal(a, b) for a, b in zip(twice, once))
  assert permute.is_identity(permute.compose(p, permute.invert(p)))
  named = permute.to_dict(spec, p)
  assert set(named) == {g.name for g in spec.groups}
  assert all(np.array_equal(a, b) for a, b in zip(permute.from_dict(spec, named), p))
  with pytest.raises(ValueError, match="not a permutation"):
    permute.apply_permutation(spec, weights, [np.zeros(g.size, int) for g in spec.groups])


# --- Matching ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_weight_matching_undoes_a_permutation_and_the_midpoint_is_the_network(name):
  model, spec, weights = _network(name)
  perms = permute.random_permutation(spec, 5)
  permuted = permute.apply_permutation(spec, weights, perms)
  found, sweeps = matching.weight_matching(spec, weights, permuted, seed=0)
  assert permute.is_identity(permute.compose(perms, found))
  assert sweeps < 100
  aligned = permute.apply_permutation(spec, permuted, found)
  images = _images(model, 4, 9)
  expected = _logits(model, weights, images)
  midpoint = [(a + b) / 2 for a, b in zip(weights, aligned)]
  _assert_same_logits(_logits(model, midpoint, images), expected)  # barrier 0
  naive = [(a + b) / 2 for a, b in zip(weights, permuted)]
  assert np.abs(_logits(model, naive, images) - expected).max() > 1e-3 * np.abs(expected).max()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_activation_matching_undoes_a_permutation(name):
  if name == "squeezenet":
    pytest.skip("without BN, units dead on the probe batches are all zero there, and any "
                "order of them matches (weight matching still undoes the permutation)")
  model, spec, weights = _network(name)
  perms = permute.random_permutation(spec, 6)
  permuted = permute.apply_permutation(spec, weights, perms)
  # More samples than units: LeNet's are examples, a conv net's are examples x pixels.
  n = 256 if name == "lenet_300_100" else 16
  batches = (_images(model, n, seed) for seed in (20, 21))
  _assign(model, weights)
  found = matching.activation_matching(model, spec, weights, permuted, batches)
  assert permute.is_identity(permute.compose(perms, found))
  # The model's own variables are left as they were.
  assert all(np.array_equal(v.numpy(), w) for v, w in zip(model.variables, weights))


def test_weight_matching_of_two_different_networks_raises_their_inner_product():
  _, spec, weights_a = _network("lenet_300_100")
  other = registry.spec("lenet_300_100").build(init_lib.SeededInit(1))
  weights_b = _trained_like(other, spec, seed=3)
  found, _ = matching.weight_matching(spec, weights_a, weights_b, seed=1)
  aligned = permute.apply_permutation(spec, weights_b, found)
  kernels = [i for _, i in spec.masks]
  inner = lambda w: sum(float(np.sum(weights_a[i] * w[i])) for i in kernels)
  assert inner(aligned) > 1.1 * inner(weights_b)


def test_align_is_one_call_for_each_method():
  model, spec, weights = _network("lenet_300_100")
  perms = permute.random_permutation(spec, 8)
  permuted = permute.apply_permutation(spec, weights, perms)
  for method in align.METHODS:
    result = align.align(model, weights, permuted, method, spec=spec,
                         batches=[_images(model, 512, 30)])
    assert all(np.array_equal(a, b) for a, b in zip(result.weights_b, weights))
    assert set(result.to_dict()["perms"]) == {"dense_0", "dense_1"}
  assert align.check_method(None) is None
  with pytest.raises(errors.ConfigError, match="evaluate.align='git'"):
    align.check_method("git")
  with pytest.raises(ValueError, match="needs batches"):
    align.align(model, weights, permuted, align.ACTIVATION_MATCHING, spec=spec)
