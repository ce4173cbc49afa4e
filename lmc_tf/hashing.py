"""Stateless integer hashing: random draws that are pure functions of their inputs.

Augmentation and dropout draw from hashes instead of RNG state, so a run is a pure function of
its seeds and resumes bit for bit from any checkpoint (SPEC §4), and no draw depends on how a
batch is split across replicas.
"""

import tensorflow as tf

GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment, 2**64 / golden ratio


def mix64(z):
  """splitmix64's finaliser (Steele et al. 2014) on uint64: a bijection with full avalanche."""
  shift = lambda v, n: tf.bitwise.right_shift(v, tf.constant(n, tf.uint64))  # noqa: E731
  z = (z ^ shift(z, 30)) * tf.constant(0xBF58476D1CE4E5B9, tf.uint64)
  z = (z ^ shift(z, 27)) * tf.constant(0x94D049BB133111EB, tf.uint64)
  return z ^ shift(z, 31)
