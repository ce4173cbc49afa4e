"""ResNet-50, Inception-v3 (Table 1's ImageNet networks) and SqueezeNet (the Stabilizing paper's
Figure 6): counts, padding, aux head, dropout.

Counting builds the full-size models; everything that runs data uses tiny widths and inputs.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lmc_tf.data import base as data_base
from lmc_tf.models import blocks
from lmc_tf.models import layers
from lmc_tf.models import registry
from lmc_tf.models import squeezenet
from lmc_tf.pruning import baselines
from lmc_tf.training import runner

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


def _check_prunable(model):
  """Every conv and dense is masked and bias-free except the dense outputs."""
  for layer in model._flatten_layers(include_self=False, recursive=True):
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
      assert isinstance(layer, (layers.MaskedConv2D, layers.MaskedDense)), layer.name
      assert layer.use_bias == isinstance(layer, keras.layers.Dense), layer.name
  prunable = layers.masked_layers(model)
  assert _count(l.mask for l in prunable) == _count(l.kernel for l in prunable)
  # Only floats: every variable is interpolated (no RNG state such as Dropout's seed).
  assert {v.dtype for v in model.variables} == {"float32"}
  return prunable


@pytest.mark.parametrize("name,trainable,masked", [
    ("resnet18", 11_689_512, 21),
    ("resnet34", 21_797_672, 37),
    ("resnet50", 25_557_032, 54),
    ("resnet101", 44_549_160, 105),
])
def test_imagenet_resnets_have_torchvisions_parameter_counts(bind, name, trainable, masked):
  bind()
  model = registry.build_model(name=name, init_seed=0)
  assert model.input.shape == (None, 224, 224, 3) and model.output.shape == (None, 1000)
  assert _count(model.trainable_variables) == trainable
  assert len(_check_prunable(model)) == masked
  # The output layer is pruned for ResNet-50 (SPEC §3).
  assert registry.spec(name).layers_to_ignore == ()


def test_inception_v3_has_torchvisions_parameter_counts_and_two_outputs(bind):
  bind()
  model = registry.build_model(name="inception_v3", init_seed=0)
  assert model.input.shape == (None, 299, 299, 3)
  assert [tuple(o.shape) for o in model.outputs] == [(None, 1000), (None, 1000)]
  assert _count(model.trainable_variables) == 27_161_264
  prunable = _check_prunable(model)
  assert len(prunable) == 98
  aux = [l.name for l in prunable if l.name.startswith("aux")]
  assert aux == ["aux_conv0", "aux_conv1", "aux_dense_out"]
  assert model.get_layer("aux_conv1").kernel.shape == (5, 5, 128, 768)
  assert model.aux_loss_weight == 0.4
  assert registry.spec("inception_v3").layers_to_ignore == ()
  bns = [l for l in model.layers if isinstance(l, layers.BatchNorm)]
  assert len(bns) == 96 and {l.epsilon for l in bns} == {1e-3}
  assert {l.momentum for l in bns} == {0.9}

  bind("inception_v3.aux_logits = False")
  plain = registry.build_model(name="inception_v3", init_seed=0)
  assert plain.output.shape == (None, 1000)
  assert _count(plain.trainable_variables) == 23_834_568
  # The aux head is built last: the main network's init does not depend on it.
  np.testing.assert_array_equal(plain.get_layer("dense_out").kernel.numpy(),
                                model.get_layer("dense_out").kernel.numpy())


def test_squeezenet_is_version_1_0_with_torchvisions_parameter_count(bind):
  bind()
  model = registry.build_model(name="squeezenet", init_seed=0)
  assert model.input.shape == (None, 224, 224, 3) and model.output.shape == (None, 1000)
  # torchvision's squeezenet1_0 (1.1 has 1,235,496): biases on every conv, no BatchNorm.
  assert _count(model.trainable_variables) == 1_248_424
  assert _count(model.variables) == 1_248_424 + 1_244_448  # + the masks
  prunable = layers.masked_layers(model)
  assert len(prunable) == 26 and all(l.use_bias for l in prunable)
  assert _count(l.kernel for l in prunable) == _count(l.mask for l in prunable) == 1_244_448
  assert not [l for l in model.layers if isinstance(l, layers.BatchNorm)]
  assert {v.dtype for v in model.variables} == {"float32"}
  assert registry.spec("squeezenet").layers_to_ignore == ()  # conv10 is pruned
  # The TPU reference's sizes: 'same' convs, 'valid' pools, 13x13 before the global pool.
  shapes = {n: model.get_layer(n).output.shape[1:] for n in (
      "conv1", "conv1_pool", "fire4_pool", "fire8_pool", "fire9", "conv10")}
  assert shapes == {"conv1": (112, 112, 96), "conv1_pool": (55, 55, 96),
                    "fire4_pool": (27, 27, 256), "fire8_pool": (13, 13, 512),
                    "fire9": (13, 13, 512), "conv10": (13, 13, 1000)}
  assert model.get_layer("fire2_expand3x3").kernel.shape == (3, 3, 16, 64)
  # Glorot-uniform kernels (bounded by sqrt(6 / (fan_in + fan_out))), zero biases.
  conv1 = model.get_layer("conv1")
  assert np.abs(conv1.kernel.numpy()).max() <= np.sqrt(6 / (7 * 7 * 3 + 7 * 7 * 96))
  assert not conv1.bias.numpy().any()


def test_squeezenet_works_small_and_drops_out_statelessly(bind):
  bind("squeezenet.width_multiplier = 0.0625")
  model = registry.build_model(name="squeezenet", init_seed=0, input_shape=(29, 29, 3),
                               num_classes=7)
  assert model.get_layer("fire8_pool").output.shape[1:3] == (1, 1)
  assert model.get_layer("conv10").kernel.shape == (1, 1, 32, 7)  # fire9: 2 x 16 channels
  images = np.random.default_rng(0).normal(size=(4, 29, 29, 3)).astype(np.float32)
  logits = model(images, training=True).numpy()
  assert logits.shape == (4, 7) and logits.min() >= 0  # conv10 has the reference's ReLU
  np.testing.assert_array_equal(model(images, training=True), logits)
  # The dropout masks fire9's whole map per example (not per pixel), half of it kept.
  dropout = model.get_layer("dropout")
  assert dropout.rate == 0.5
  fire9 = keras.Model(model.input, model.get_layer("fire9").output)(images)
  keep = np.asarray(dropout.mask(fire9))
  flat = np.asarray(dropout.mask(tf.reshape(fire9, (4, -1)))).reshape(keep.shape)
  np.testing.assert_array_equal(keep, flat)
  big = layers.FeatureHashDropout(0.5).mask(tf.random.stateless_normal((2, 13, 13, 512), (0, 1)))
  assert abs(np.asarray(big).mean() - 0.5) < 0.01
  with pytest.raises(ValueError, match="at least 29x29"):
    registry.build_model(name="squeezenet", input_shape=(28, 28, 3))
  assert squeezenet.MIN_INPUT == 29


def test_fixed_padding_follows_the_tpu_reference(bind):
  assert [blocks.fixed_padding(k) for k in (1, 2, 3, 7)] == [(0, 0), (0, 1), (1, 1), (3, 3)]
  bind("resnet_imagenet.width_multiplier = 0.125")
  model = registry.build_model(name="resnet50", init_seed=0)
  assert model.get_layer("conv_pad").padding == ((3, 3), (3, 3))
  assert model.get_layer("block2_0_conv2_pad").padding == ((1, 1), (1, 1))
  names = {l.name for l in model.layers}
  assert "block2_0_shortcut_pad" not in names  # a strided 1x1 conv needs no padding
  assert model.get_layer("conv").output.shape[1:3] == (112, 112)
  assert model.get_layer("maxpool").output.shape[1:3] == (56, 56)
  assert model.get_layer("block2_0_conv2").output.shape[1:3] == (28, 28)
  assert model.get_layer("block2_0_shortcut").output.shape[1:3] == (28, 28)
  assert model.get_layer("block2_0_conv1").strides == (1, 1)  # v1.5: the stride is on the 3x3
  # The stem pads 3 on each side: its top-left output sees 4x4 real pixels, where TF's 'same'
  # (2 before, 3 after) would show it 5x5.
  stem = model.get_layer("conv")
  stem.kernel.assign(np.ones(stem.kernel.shape, np.float32))
  probe = keras.Model(model.get_layer("conv_pad").input, stem.output)
  out = probe(np.ones((1, 224, 224, 3), np.float32)).numpy()
  assert out[0, 0, 0, 0] == 4 * 4 * 3 and out[0, -1, -1, 0] == 5 * 5 * 3


def test_width_multipliers_give_small_working_models(bind):
  bind("resnet_imagenet.width_multiplier = 0.0625", "inception_v3.width_multiplier = 0.0625")
  resnet = registry.build_model(name="resnet50", init_seed=0, input_shape=(64, 64, 3),
                                num_classes=7)
  assert resnet.get_layer("dense_out").kernel.shape == (128, 7)
  assert resnet(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, 7)
  inception = registry.build_model(name="inception_v3", init_seed=0,
                                   input_shape=(75, 75, 3), num_classes=7)
  logits, aux = inception(np.zeros((2, 75, 75, 3), np.float32))
  assert logits.shape == aux.shape == (2, 7)
  # At 75x75 the aux head's pool and 5x5 conv shrink to the 3x3 map after Mixed_6e.
  assert inception.get_layer("aux_conv1").kernel.shape[:2] == (1, 1)
  with pytest.raises(ValueError, match="at least 75x75"):
    registry.build_model(name="inception_v3", input_shape=(64, 64, 3))


def test_feature_hash_dropout_is_stateless_per_example_and_off_in_eval():
  layer = layers.FeatureHashDropout(0.2)
  x = tf.constant(np.random.default_rng(0).normal(size=(64, 2048)), tf.float32)
  y = layer(x, training=True).numpy()
  assert not layer.weights
  np.testing.assert_array_equal(layer(x, training=True).numpy(), y)  # deterministic
  kept = y != 0
  assert abs(kept.mean() - 0.8) < 0.01
  np.testing.assert_allclose(y[kept], x.numpy()[kept] / 0.8, rtol=1e-6)
  # Per example: a replica's slice of the batch gets the same masks as in the whole batch.
  halves = np.concatenate([layer(x[:24], training=True), layer(x[24:], training=True)])
  np.testing.assert_array_equal(halves, y)
  # Examples differ, and an example's mask changes with its features (from step to step).
  assert (kept[0] != kept[1]).mean() > 0.2
  nudged = layer(x + 1e-3, training=True).numpy() != 0
  assert (nudged != kept).mean() > 0.2
  np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
  np.testing.assert_array_equal(layers.FeatureHashDropout(0.0)(x, training=True), x)


def _tiny_inception(bind, *bindings):
  bind("model.name = 'inception_v3'", "inception_v3.width_multiplier = 0.0625", *bindings)
  return registry.build_model(init_seed=0, input_shape=(75, 75, 3), num_classes=5)


def test_the_aux_loss_enters_the_training_loss_with_its_weight(bind):
  model = _tiny_inception(bind)
  images = np.random.default_rng(1).normal(size=(4, 75, 75, 3)).astype(np.float32)
  labels = tf.constant([0, 1, 2, 3])
  outputs = model(images, training=False)
  main = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, outputs[0]).numpy()
  aux = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, outputs[1]).numpy()
  loss, logits = registry.per_example_loss(model, outputs, labels)
  np.testing.assert_allclose(loss.numpy(), main + 0.4 * aux, rtol=1e-6)
  np.testing.assert_array_equal(logits.numpy(), outputs[0].numpy())
  model.aux_loss_weight = 0.0
  np.testing.assert_allclose(registry.per_example_loss(model, outputs, labels)[0].numpy(),
                             main, rtol=1e-6)
  assert registry.split_outputs(outputs[0]) == (outputs[0], None)
  model.aux_loss_weight = 0.4
  # SNIP scores with the training objective, which reaches the aux head.
  scores = baselines.snip_scores(model, images, labels)
  assert scores["aux_dense_out"].any() and scores["dense_out"].any()


def _random_data(num_classes=5):
  rng = np.random.default_rng(0)
  images = lambda n: rng.integers(0, 256, size=(n, 75, 75, 3), dtype=np.uint8)  # noqa: E731
  labels = lambda n: rng.integers(0, num_classes, size=n).astype(np.int32)  # noqa: E731
  return data_base.ImageDataset("random", images(8), labels(8), images(6), labels(6),
                                num_classes)


@pytest.mark.slow
def test_inception_trains_its_aux_head_and_evaluates_the_main_one(tmp_path, bind):
  data = _random_data()
  bindings = ["training.batch_size = 4", "training.steps = '2it'",
              "training.log_every = '2it'", "training.checkpoint_every = '2it'",
              "training.eval_batch_size = 6"]
  _tiny_inception(bind, *bindings)
  trainer = runner.Trainer(str(tmp_path), data=data)
  before = {name: trainer.model.get_layer(name).kernel.numpy()
            for name in ("aux_dense_out", "dense_out")}
  trainer.begin()
  results = trainer.train()
  assert np.isfinite(results["train_loss"]) and np.isfinite(results["test_loss"])
  for name, kernel in before.items():
    assert not np.array_equal(trainer.model.get_layer(name).kernel.numpy(), kernel), name
  # The test loss is the main head's alone.
  logits = trainer.model(data.x_test.astype(np.float32) / 255.0, training=False)[0]
  loss = tf.nn.sparse_softmax_cross_entropy_with_logits(data.y_test, logits).numpy().mean()
  assert results["test_loss"] == pytest.approx(loss, rel=1e-4)
  # Training-mode passes (dropout included) repeat exactly.
  images = data.x_train[:4].astype(np.float32) / 255.0
  np.testing.assert_array_equal(trainer.model(images, training=True)[0],
                                trainer.model(images, training=True)[0])
