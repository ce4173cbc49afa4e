import numpy as np
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
