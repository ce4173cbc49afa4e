"""Inception's colour distortion, stateless: a pure function of an image and its example seed.

It follows `distort_color` in the TPU reference's inception_preprocessing.py
(models/experimental/inception) with fast_mode=False: random brightness (delta up to 32/255),
saturation (x [0.5, 1.5]), hue (delta up to 0.2) and contrast (x [0.5, 1.5]), in one of its four
orderings, drawn per image, on an image in [0, 1], then clipped to [0, 1] (the ops do not clamp
in between, as in the reference). Of the reference's other modes, fast_mode=True applies only
brightness then saturation, and its default flag use_fast_color_distort=True applies
`distort_color_fast` (brightness plus Cb/Cr shifts) instead; neither is the distortion whose
op ordering the reference randomises.

Each op and the ordering draw from their own stream of the example's seed (a salted fold-in,
then a split), so the colour draws are independent of the crop and flip, and an op's factor
does not depend on which ordering was drawn.
"""

import tensorflow as tf

_SALT = 0x636F


def _brightness(image, seed):
  return tf.image.stateless_random_brightness(image, 32.0 / 255.0, seed)


def _saturation(image, seed):
  return tf.image.stateless_random_saturation(image, 0.5, 1.5, seed)


def _hue(image, seed):
  return tf.image.stateless_random_hue(image, 0.2, seed)


def _contrast(image, seed):
  return tf.image.stateless_random_contrast(image, 0.5, 1.5, seed)


_OPS = {"brightness": _brightness, "saturation": _saturation, "hue": _hue,
        "contrast": _contrast}
# distort_color's color_ordering 0-3.
ORDERINGS = (("brightness", "saturation", "hue", "contrast"),
             ("saturation", "brightness", "contrast", "hue"),
             ("contrast", "hue", "brightness", "saturation"),
             ("hue", "saturation", "contrast", "brightness"))


def _seeds(seed):
  """The ordering's seed and one seed per op, drawn from the example seed."""
  key = tf.random.experimental.stateless_fold_in(seed, _SALT)
  keys = tf.unstack(tf.random.experimental.stateless_split(key, 1 + len(_OPS)))
  return keys[0], dict(zip(_OPS, keys[1:]))


def ordering(seed):
  """The index into ORDERINGS that `seed` draws, uniform over the four."""
  ordering_seed, _ = _seeds(seed)
  return tf.random.stateless_uniform([], ordering_seed, minval=0, maxval=len(ORDERINGS),
                                     dtype=tf.int32)


def distort(image, seed):
  """`image` (float [h, w, 3] in [0, 1]) colour-distorted by the example's `seed`, in [0, 1]."""
  _, op_seeds = _seeds(seed)

  def apply(names):
    def branch():
      out = image
      for name in names:
        out = _OPS[name](out, op_seeds[name])
      return out
    return branch

  image = tf.switch_case(ordering(seed), [apply(names) for names in ORDERINGS])
  return tf.clip_by_value(image, 0.0, 1.0)
