import dataclasses
import pickle
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from lmc_tf.data import base
from lmc_tf.data import cifar10
from lmc_tf.data import pipeline

FILL = (np.float32(0) - cifar10.MEAN) / cifar10.STD


def _reference(images, dy, dx, flip):
  """numpy: pad 4 with black, crop at (dy, dx), flip."""
  padded = np.broadcast_to(FILL, (len(images), 40, 40, 3)).copy()
  padded[:, 4:36, 4:36] = images
  out = np.stack([p[r:r + 32, c:c + 32] for p, r, c in zip(padded, dy, dx)])
  return np.where(flip[:, None, None, None], out[:, :, ::-1], out)


def _standardised(x):
  return ((x.astype(np.float32) / 255 - cifar10.MEAN) / cifar10.STD).astype(np.float32)


def _augment(images, seeds):
  return cifar10.pad_crop_flip(tf.constant(images), seeds, FILL).numpy()


@pytest.fixture(scope="module")
def small(cifar10_sample):
  data = cifar10.load(path=cifar10_sample.npz)
  return dataclasses.replace(data, x_train=data.x_train[:200], y_train=data.y_train[:200])


def _batches(data, order_seed, aug_seed, steps=3, batch=40, ctx=None):
  ds = pipeline.train_dataset(data, batch, order_seed, aug_seed, 0, steps, ctx)
  return [(x.numpy(), y.numpy()) for x, y in ds]


def test_both_file_layouts_give_the_same_arrays(cifar10_sample):
  a = cifar10.load(path=cifar10_sample.npz)
  b = cifar10.load(path=cifar10_sample.batches_dir)
  assert a.x_train.shape == (3805, 32, 32, 3) and a.x_test.shape == (761, 32, 32, 3)
  assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int32
  assert a.num_classes == 10 and a.mean.dtype == a.std.dtype == np.float32
  for key in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(getattr(a, key), getattr(cifar10_sample, key))
  assert np.bincount(a.y_train, minlength=10).sum() == 3805 and a.y_train.max() == 9


def test_npz_in_nchw_or_flat_layout_and_keras_labels(cifar10_sample, tmp_path):
  s = cifar10_sample
  np.savez(tmp_path / "nchw.npz", x_train=s.x_train.transpose(0, 3, 1, 2),
           y_train=s.y_train[:, None].astype(np.uint8), x_test=s.x_test.transpose(0, 3, 1, 2)
           .reshape(len(s.x_test), -1), y_test=s.y_test)
  data = cifar10.load(path=str(tmp_path / "nchw.npz"))
  np.testing.assert_array_equal(data.x_train, s.x_train)
  np.testing.assert_array_equal(data.x_test, s.x_test)
  np.testing.assert_array_equal(data.y_train, s.y_train)


def test_missing_path_names_both_layouts_and_the_binding(tmp_path):
  with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*x_train.*cifar10.path"):
    cifar10.load(path=str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="Missing: data_batch_1.*test_batch"):
    cifar10.load(path=str(tmp_path))


def _save(tmp_path, s, **changes):
  arrays = dict(x_train=s.x_train[:20], y_train=s.y_train[:20], x_test=s.x_test[:10],
                y_test=s.y_test[:10])
  arrays.update(changes)
  path = tmp_path / "bad.npz"
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return str(path)


@pytest.mark.parametrize("changes, message", [
    (dict(y_test=None), r"lacks \['y_test'\].*x_train, y_train, x_test, y_test"),
    (dict(y_train=np.zeros(19, np.int32)), "20 images but 19 labels"),
    (dict(y_test=np.full(10, 10)), "labels must lie in 0..9"),
    (dict(x_train=np.zeros((20, 28, 28), np.uint8)), "expected \\[N, 32, 32, 3\\]"),
    (dict(x_train=np.zeros((20, 32, 32, 3), np.float32)), "must be uint8"),
])
def test_malformed_npz_is_a_clear_error(cifar10_sample, tmp_path, changes, message):
  with pytest.raises(ValueError, match=message):
    cifar10.load(path=_save(tmp_path, cifar10_sample, **changes))


def test_malformed_batches_are_clear_errors(cifar10_sample, tmp_path):
  bad = tmp_path / "cifar-10-batches-py"
  shutil.copytree(cifar10_sample.batches_dir, bad)
  (bad / "test_batch").write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 python batch.*data_batch_1"):
    cifar10.load(path=str(bad))
  with open(bad / "test_batch", "wb") as f:
    pickle.dump({b"data": np.zeros((3, 3072), np.uint8)}, f, protocol=2)
  with pytest.raises(ValueError, match=r"lacks \['labels'\]"):
    cifar10.load(path=str(bad))
  with open(bad / "test_batch", "wb") as f:  # a pickle that would run code is refused
    pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0] * 3,
                 b"x": dataclasses.replace}, f, protocol=2)
  with pytest.raises(ValueError, match="refusing to load"):
    cifar10.load(path=str(bad))


def test_unknown_source_is_an_error():
  with pytest.raises(ValueError, match="'files' or 'tfds'"):
    cifar10.load(source="kaggle")


def test_tfds_is_a_second_source():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12):
    data = cifar10.load(source="tfds")
  assert data.x_train.shape == (12, 32, 32, 3) and data.x_train.dtype == np.uint8
  assert data.y_train.dtype == np.int32 and data.num_test == 12


def test_gin_selects_cifar10_and_caps_it(bind, cifar10_sample):
  path = f"cifar10.path = '{cifar10_sample.npz}'"
  bind("dataset.name = 'cifar10'", path, "dataset.max_train_examples = 100")
  data = base.get_dataset()
  assert data.name == "cifar10" and data.num_train == 100 and data.num_test == 300
  assert data.image_shape == (32, 32, 3) and data.augment is not None
  bind("dataset.name = 'cifar10'", path, "cifar10.augment = False")
  assert base.get_dataset().augment is None


def test_augmentation_pads_crops_and_flips_like_the_reference(cifar10_sample):
  images = _standardised(cifar10_sample.x_train[:64])
  seeds = pipeline.example_seeds(3, 11, 64)
  out = _augment(images, seeds)
  assert out.shape == images.shape and out.dtype == np.float32
  dy, dx, flip = (t.numpy() for t in cifar10.crop_and_flip_draws(seeds))
  np.testing.assert_array_equal(out, _reference(images, dy, dx, flip))
  # Independently of the draws: every output is some window of the padded input.
  for b in range(8):
    candidates = _reference(np.repeat(images[b:b + 1], 162, 0), np.repeat(np.arange(9), 18),
                            np.tile(np.repeat(np.arange(9), 2), 9), np.tile([False, True], 81))
    assert any(np.array_equal(out[b], c) for c in candidates)


def test_padding_is_black_after_standardisation():
  black = np.zeros((4, 32, 32, 3), np.uint8)
  scaled = pipeline.train_dataset(
      base.ImageDataset("black", black, np.zeros(4, np.int32), black, np.zeros(4, np.int32), 10,
                        cifar10.MEAN, cifar10.STD, None), 4, 0, 0, 0, 1)
  scaled = next(iter(scaled))[0].numpy()
  np.testing.assert_array_equal(_augment(scaled, pipeline.example_seeds(0, 0, 4)), scaled)


def test_draws_cover_every_crop_and_flip_evenly():
  dy, dx, flip = (t.numpy() for t in cifar10.crop_and_flip_draws(
      pipeline.example_seeds(0, 0, 32400)))
  counts = np.bincount((dy * 9 + dx) * 2 + flip, minlength=162)
  assert counts.min() > 120 and counts.max() < 280  # 200 expected per outcome


def test_same_seeds_repeat_and_other_seeds_differ(cifar10_sample):
  images = _standardised(cifar10_sample.x_train[:128])
  a = _augment(images, pipeline.example_seeds(1, 5, 128))
  np.testing.assert_array_equal(a, _augment(images, pipeline.example_seeds(1, 5, 128)))
  b = _augment(images, pipeline.example_seeds(2, 5, 128))
  same = [np.array_equal(x, y) for x, y in zip(a, b)]
  assert sum(same) < 10  # 1/162 chance per example
  c = _augment(images, pipeline.example_seeds(1, 6, 128))
  assert sum(np.array_equal(x, y) for x, y in zip(a, c)) < 10


def test_augmentation_does_not_depend_on_the_batch_split(cifar10_sample):
  images = _standardised(cifar10_sample.x_train[:32])
  seeds = pipeline.example_seeds(4, 2, 32)
  whole = _augment(images, seeds)
  halves = np.concatenate([_augment(images[:16], seeds[:16]), _augment(images[16:], seeds[16:])])
  np.testing.assert_array_equal(whole, halves)


def test_copies_see_the_same_images_in_other_augmentations(small):
  """Same data_order_seed, other augmentation_seed: each batch holds the same images and
  labels, each augmented with its own copy's draws; the same seeds repeat exactly."""
  a, b, again = _batches(small, 7, 1), _batches(small, 7, 2), _batches(small, 7, 1)
  plain = _batches(dataclasses.replace(small, augment=None), 7, 0)
  for step, ((xa, ya), (xb, yb), (xr, yr), (xp, yp)) in enumerate(zip(a, b, again, plain)):
    np.testing.assert_array_equal(xa, xr)
    np.testing.assert_array_equal(ya, yr)
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(ya, yp)
    for x, aug_seed in ((xa, 1), (xb, 2)):
      draws = cifar10.crop_and_flip_draws(pipeline.example_seeds(aug_seed, step, 40))
      np.testing.assert_array_equal(x, _reference(xp, *(t.numpy() for t in draws)))
    assert sum(np.array_equal(u, v) for u, v in zip(xa, xb)) < 5


def test_replica_split_keeps_each_examples_augmentation(small):
  single = _batches(small, 7, 1)
  ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                   num_replicas_in_sync=2)
  split = _batches(small, 7, 1, ctx=ctx)
  for step in range(3):
    np.testing.assert_array_equal(
        np.concatenate([split[2 * step][0], split[2 * step + 1][0]]), single[step][0])
  for worker in range(2):
    part = _batches(small, 7, 1, ctx=tf.distribute.InputContext(2, worker, 2))
    np.testing.assert_array_equal(part[1][0], single[1][0][worker * 20:(worker + 1) * 20])


def test_time_augmentation_in_tf_data(cifar10_sample):
  """Prints the cost of augmenting a batch of 128 inside tf.data (no assertion on time)."""
  data = cifar10.load(path=cifar10_sample.npz)
  batches = 60
  costs = {}
  for name, d in (("plain", dataclasses.replace(data, augment=None)), ("augmented", data)):
    ds = pipeline.train_dataset(d, 128, 0, 1, 0, batches)
    next(iter(ds))
    start = time.perf_counter()
    for _ in ds:
      pass
    costs[name] = (time.perf_counter() - start) / batches * 1e3
  print(f"\ntf.data batch of 128: {costs['plain']:.2f} ms plain, {costs['augmented']:.2f} ms "
        f"augmented ({costs['augmented'] - costs['plain']:+.2f} ms for pad-crop-flip)")
