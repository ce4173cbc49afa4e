import numpy as np
import pytest
import tensorflow as tf
import keras

from lmc_tf import distribute
from lmc_tf.models import layers
from lmc_tf.training import optimizers


def _toy_model():
  inputs = keras.Input((8, 8, 3))
  x = layers.MaskedConv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
  x = keras.layers.Flatten()(x)
  x = layers.MaskedDense(16, activation="relu", name="dense")(x)
  outputs = layers.MaskedDense(5, name="out")(x)
  return keras.Model(inputs, outputs)


def _random_masks(model, density, seed):
  rng = np.random.default_rng(seed)
  return {l.name: (rng.random(l.kernel.shape) < density).astype(np.float32)
          for l in layers.masked_layers(model)}


def _train(model, optimizer, steps):
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(32, 8, 8, 3)), tf.float32)
  y = tf.constant(rng.integers(0, 5, 32))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  for _ in range(steps):
    step()


@pytest.mark.parametrize("bindings", [
    ["optimizer.name = 'sgd'", "optimizer.momentum = 0.9", "optimizer.weight_decay = 0.05"],
    ["optimizer.name = 'adam'"],
    ["optimizer.name = 'rmsprop'", "optimizer.epsilon = 1.0", "optimizer.weight_decay = 0.05"],
])
def test_pruned_weights_stay_exactly_zero(bindings, bind):
  bind("optimizer.learning_rate = 0.05", *bindings)
  model = _toy_model()
  masks = _random_masks(model, 0.3, seed=1)
  layers.set_masks(model, masks)
  before = {l.name: l.kernel.numpy() for l in layers.masked_layers(model)}
  optimizer = optimizers.make_optimizer(steps_per_epoch=10, total_steps=100)
  _train(model, optimizer, 100)
  for layer in layers.masked_layers(model):
    kernel = layer.kernel.numpy()
    assert np.all(kernel[masks[layer.name] == 0] == 0.0), layer.name
    # The surviving weights did train.
    assert not np.allclose(kernel[masks[layer.name] == 1], before[layer.name][masks[layer.name] == 1])


def test_mask_is_saved_and_restored(tmp_path):
  model = _toy_model()
  masks = _random_masks(model, 0.5, seed=2)
  layers.set_masks(model, masks)
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  other = _toy_model()
  tf.train.Checkpoint(model=other).restore(path).assert_existing_objects_matched()
  for name, mask in layers.get_masks(other).items():
    np.testing.assert_array_equal(mask, masks[name])
  assert layers.density(other) == pytest.approx(
      sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values()))


def test_mask_applies_in_call():
  model = _toy_model()
  x = tf.ones((1, 8, 8, 3))
  layers.set_masks(model, {"out": np.zeros(model.get_layer("out").kernel.shape)})
  # Out's kernel is fully pruned, so the output is its bias alone.
  np.testing.assert_allclose(model(x).numpy()[0], model.get_layer("out").bias.numpy())


def test_full_masks_skipped_leaves_every_number_as_it_was():
  """A layer whose mask is all ones traces without the mask (the train loop's fast path):
  outputs and gradients bit for bit; a pruned layer is never a full mask, and outside the
  context every layer multiplies by its mask again."""
  model = _toy_model()
  pruned = {"dense": _random_masks(model, 0.5, seed=3)["dense"]}
  layers.set_masks(model, pruned)
  full = layers.full_masks(model)
  assert [l.name for l in full] == ["conv", "out"]
  x = tf.constant(np.random.default_rng(4).normal(size=(6, 8, 8, 3)), tf.float32)

  def outputs_and_gradients():
    with tf.GradientTape() as tape:
      out = model(x)
      loss = tf.reduce_sum(out * out)
    return [out, *tape.gradient(loss, model.trainable_variables)]

  expected = tf.function(outputs_and_gradients)()

  def skipped():
    with layers.full_masks_skipped(full):
      return outputs_and_gradients()

  got = tf.function(skipped)()
  for a, b in zip(expected, got):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not any(l._mask_skipped for l in layers.masked_layers(model))
  # The skip was traced in: the graph has fewer multiplies by a mask.
  def multiplies(fn):
    graph = tf.function(fn).get_concrete_function().graph
    return sum(op.type == "Mul" for op in graph.get_operations())
  assert multiplies(skipped) < multiplies(outputs_and_gradients)
  # Outside the context the masks apply: pruning "out" fully leaves its bias.
  layers.set_masks(model, {"out": np.zeros(model.get_layer("out").kernel.shape)})
  np.testing.assert_allclose(model(tf.ones((1, 8, 8, 3))).numpy()[0],
                             model.get_layer("out").bias.numpy())


def test_mask_that_does_not_fit_is_an_error():
  model = _toy_model()
  with pytest.raises(ValueError, match="does not fit layer 'dense'"):
    layers.set_masks(model, {"dense": np.ones((3, 3))})
  with pytest.raises(ValueError, match="does not have"):
    layers.set_masks(model, {"nope": np.ones((3, 3))})
  with pytest.raises(ValueError, match="only 0 and 1"):
    layers.set_masks(model, {"out": np.full(model.get_layer("out").kernel.shape, 0.5)})


def test_batch_norm_has_pytorch_numerics():
  """Normalises with the biased batch variance, updates the moving variance with the unbiased
  one, momentum 0.9 (torch 0.1), eps 1e-5; inference uses the moving statistics."""
  x = np.random.default_rng(0).normal(2, 3, size=(8, 5, 5, 4)).astype(np.float32)
  bn = layers.BatchNorm(gamma_initializer=keras.initializers.RandomUniform(0, 1, seed=1))
  y = bn(x, training=True).numpy()
  gamma = bn.gamma.numpy()
  mean, var, n = x.mean((0, 1, 2)), x.var((0, 1, 2)), 8 * 25
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5) * gamma, atol=2e-6)
  np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * var * n / (n - 1),
                             rtol=1e-5)
  y = bn(x, training=False).numpy()
  expected = (x - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-5) * gamma
  np.testing.assert_allclose(y, expected, atol=2e-6)
  # The statistics are model variables: checkpointed and interpolated with the weights.
  assert {v.name for v in bn.non_trainable_variables} == {"moving_mean", "moving_variance"}


def test_batch_norm_under_xla_and_mirrored_strategy():
  x = np.random.default_rng(1).normal(size=(8, 4, 4, 3)).astype(np.float32)
  eager = layers.BatchNorm()
  expected = eager(x, training=True).numpy()
  xla = layers.BatchNorm()
  np.testing.assert_allclose(
      tf.function(lambda v: xla(v, training=True), jit_compile=True)(x).numpy(), expected,
      atol=1e-5)
  np.testing.assert_allclose(xla.moving_variance.numpy(), eager.moving_variance.numpy(),
                             rtol=1e-5)
  strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
  halves_of_x = lambda ctx: x[4 * ctx.replica_id_in_sync_group:][:4]  # noqa: E731

  def run_mirrored(**kwargs):
    with strategy.scope():
      layer = layers.BatchNorm(**kwargs)
      layer.build(x.shape)
    out = strategy.run(tf.function(lambda v: layer(v, training=True)),
                       args=(strategy.experimental_distribute_values_from_function(halves_of_x),))
    return layer, np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])

  # Synchronized (the default): the statistics of the global batch, as on one device.
  synced, out = run_mirrored()
  np.testing.assert_allclose(out, expected, atol=1e-5)
  np.testing.assert_allclose(synced.moving_mean.numpy(), eager.moving_mean.numpy(), rtol=1e-5)
  np.testing.assert_allclose(synced.moving_variance.numpy(), eager.moving_variance.numpy(),
                             rtol=1e-5)
  # Per replica: each replica normalises its half; the moving statistics are their mean.
  halves = [layers.BatchNorm() for _ in range(2)]
  for half, part in zip(halves, (x[:4], x[4:])):
    half(part, training=True)
  local, _ = run_mirrored(synchronized=False)
  np.testing.assert_allclose(
      local.moving_mean.numpy(),
      np.mean([h.moving_mean.numpy() for h in halves], axis=0), rtol=1e-5)
