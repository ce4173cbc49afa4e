import numpy as np
import pytest
import tensorflow as tf
import keras

from lmc_tf.training import optimizers


def _run(optimizer, grads, w0):
  w = keras.Variable(np.array(w0, np.float32))
  trace = []
  for g in grads:
    optimizer.apply_gradients([(tf.constant(g, tf.float32), w)])
    trace.append(w.numpy().copy())
  return np.array(trace)


def test_sgd_matches_torch_semantics_with_coupled_l2_and_lr_drop():
  lrs = [0.1, 0.1, 0.01, 0.01]
  lr = keras.Variable(0.1)
  opt = optimizers.SGD(lambda: lr, momentum=0.9, l2=0.01)
  grads = [[1.0, -2.0], [0.5, 0.5], [-1.0, 1.0], [2.0, 0.0]]
  w = keras.Variable(np.array([1.0, 1.0], np.float32))
  got = []
  for rate, g in zip(lrs, grads):
    lr.assign(rate)
    opt.apply_gradients([(tf.constant(g, tf.float32), w)])
    got.append(w.numpy().copy())
  # torch.optim.SGD(momentum=0.9, weight_decay=0.01), written out.
  ref_w, buf, want = np.array([1.0, 1.0]), np.zeros(2), []
  for rate, g in zip(lrs, grads):
    d = np.array(g) + 0.01 * ref_w
    buf = 0.9 * buf + d
    ref_w = ref_w - rate * buf
    want.append(ref_w.copy())
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_adam_l2_is_added_to_the_gradient():
  plain = _run(optimizers.Adam(1e-2, l2=0.0), [[0.0, 0.0]] * 3, [1.0, -1.0])
  decayed = _run(optimizers.Adam(1e-2, l2=0.5), [[0.0, 0.0]] * 3, [1.0, -1.0])
  np.testing.assert_array_equal(plain, [[1.0, -1.0]] * 3)
  assert np.all(np.abs(decayed[-1]) < 1.0)


def test_rmsprop_matches_tf1_with_its_ones_initialised_mean_square():
  lrs = [0.66, 0.66, 0.3, 0.3, 0.1]
  grads = [[1.0, -2.0, 0.0], [0.5, 0.5, 0.0], [-1.0, 1.0, 0.0], [2.0, 0.0, 0.0],
           [0.1, -3.0, 0.0]]
  lr = keras.Variable(lrs[0])
  opt = optimizers.RMSProp(lambda: lr, rho=0.9, momentum=0.9, epsilon=1.0, l2=0.01)
  w = keras.Variable(np.array([1.0, -1.0, 0.0], np.float32))
  got = []
  for rate, g in zip(lrs, grads):
    lr.assign(rate)
    opt.apply_gradients([(tf.constant(g, tf.float32), w)])
    got.append(w.numpy().copy())
  # tf.compat.v1.train.RMSPropOptimizer (ApplyRMSProp), written out: ms starts at ones.
  ref_w, ms, mom, want = np.array([1.0, -1.0, 0.0]), np.ones(3), np.zeros(3), []
  for rate, g in zip(lrs, grads):
    d = np.array(g) + 0.01 * ref_w
    ms = 0.9 * ms + 0.1 * d**2
    mom = 0.9 * mom + rate * d / np.sqrt(ms + 1.0)
    ref_w = ref_w - mom
    want.append(ref_w.copy())
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.all(np.array(got)[:, 2] == 0.0)  # a zero weight with zero gradient stays zero


def test_make_optimizer_builds_rmsprop_from_gin(bind):
  bind("optimizer.name = 'rmsprop'", "optimizer.learning_rate = 0.66",
       "optimizer.epsilon = 1.0")
  opt = optimizers.make_optimizer(steps_per_epoch=10, total_steps=100)
  assert isinstance(opt, optimizers.RMSProp)
  assert (opt.rho, opt.momentum, opt.epsilon, opt.l2) == (0.9, 0.9, 1.0, 0.0)
  bind("optimizer.name = 'rmsprop'", "optimizer.learning_rate = 0.66", "optimizer.rho = 1.0")
  with pytest.raises(ValueError, match="optimizer.rho"):
    optimizers.make_optimizer(steps_per_epoch=10, total_steps=100)
