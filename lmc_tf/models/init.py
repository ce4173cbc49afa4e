"""The init of the paper's reference code (SPEC §2), drawn from one `init_seed`.

Kernels are He-normal (fan-in, untruncated, like torch.nn.init.kaiming_normal_), BatchNorm
gamma ~ U[0, 1] and beta = 0, biases 0. Each layer gets its own seed, derived in build order
from the init seed, so the init does not depend on Keras's global seed or on the data seeds.
SqueezeNet's reference code draws its kernels Glorot-uniform instead (`glorot`).
"""

import keras
import numpy as np


class SeededInit:
  """Hands out fresh, individually seeded initializers in a fixed order."""

  def __init__(self, init_seed):
    self._rng = np.random.default_rng([int(init_seed), 0x696E6974])

  def _seed(self):
    return int(self._rng.integers(0, 2**31 - 1))

  def kernel(self):
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal", seed=self._seed())

  def glorot(self):
    """Glorot-uniform kernels: TF1's xavier_initializer_conv2d (the TPU SqueezeNet's)."""
    return keras.initializers.GlorotUniform(seed=self._seed())

  def gamma(self):
    return keras.initializers.RandomUniform(0.0, 1.0, seed=self._seed())

  @staticmethod
  def zeros():
    return keras.initializers.Zeros()
