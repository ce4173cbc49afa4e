import dataclasses
import functools
import gzip
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from lmc_tf.data import base
from lmc_tf.data import cifar10
from lmc_tf.data import mnist
from lmc_tf.data import pipeline
from lmc_tf.training import runner


def _batches(data, order_seed, aug_seed=0, start=0, steps=6, batch=20, ctx=None):
  ds = pipeline.train_dataset(data, batch, order_seed, aug_seed, start, steps, ctx)
  return [(x.numpy(), y.numpy()) for x, y in ds]


@pytest.fixture(scope="module")
def small():
  full = mnist.load()
  return base.ImageDataset(name="mnist", x_train=full.x_train[:100], y_train=full.y_train[:100],
                           x_test=full.x_test[:50], y_test=full.y_test[:50], num_classes=10,
                           mean=full.mean, std=full.std)


def test_bundled_mnist_is_the_official_set():
  data = mnist.load(standardize=False)
  assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
  assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255
  assert np.bincount(data.y_test).tolist()[:3] == [980, 1135, 1032]


def test_bundled_copy_matches_shared_data(shared_data):
  for name in mnist.FILES.values():
    with open(os.path.join(shared_data, "mnist", name), "rb") as a, \
         open(os.path.join(mnist.BUNDLED_DIR, name), "rb") as b:
      assert a.read() == b.read(), name


def test_missing_data_dir_names_the_expected_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
    mnist.load(data_dir=str(tmp_path))


def test_malformed_idx_file_is_an_error(tmp_path):
  for name in mnist.FILES.values():
    with gzip.open(tmp_path / name, "wb") as f:
      f.write(b"not an idx file")
  with pytest.raises(ValueError, match="bad magic"):
    mnist.load(data_dir=str(tmp_path))


def test_tfds_is_a_second_source():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12):
    data = mnist.load(source="tfds")
  assert data.x_train.shape == (12, 28, 28, 1) and data.y_train.dtype == np.int32


def _examples(images, labels):
  """The multiset of (image, label) examples, as sorted hashes: independent of order."""
  return sorted(hashlib.sha256(x.tobytes() + int(y).to_bytes(1, "little")).hexdigest()
                for x, y in zip(images, labels))


@pytest.mark.slow  # TFDS's builder encodes 70,000 PNGs (about 12 s), and reading decodes them
def test_a_prepared_tfds_mnist_holds_the_official_examples(tfds_mnist):
  tfds_data = mnist.load(source="tfds", data_dir=tfds_mnist, standardize=False)
  files_data = mnist.load(source="files", standardize=False)
  for split, count in (("train", 60000), ("test", 10000)):
    images, labels = getattr(tfds_data, f"x_{split}"), getattr(tfds_data, f"y_{split}")
    assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    expected = getattr(files_data, f"x_{split}"), getattr(files_data, f"y_{split}")
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(expected[1]))
    assert _examples(images, labels) == _examples(*expected)


def test_preparing_tfds_mnist_names_a_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="Missing: .*t10k-labels-idx1-ubyte.gz"):
    mnist.prepare_tfds(str(tmp_path / "tfds"), files_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="mnist.prepare_tfds"):
    mnist.load(source="tfds", data_dir=str(tmp_path / "tfds"))


def test_same_seeds_give_the_same_batches(small):
  for (xa, ya), (xb, yb) in zip(_batches(small, 7), _batches(small, 7)):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_other_data_order_seed_gives_another_order(small):
  a, b = _batches(small, 7), _batches(small, 8)
  assert not all(np.array_equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))


def test_each_epoch_is_a_permutation_and_epochs_differ(small):
  # 100 examples, batch 20: 5 steps per epoch.
  raw = dataclasses.replace(small, mean=None, std=None)
  batches = _batches(raw, 3, steps=10)
  flat = lambda bs: np.concatenate([  # noqa: E731
      np.round(x * 255).astype(np.uint8).reshape(len(x), -1) for x, _ in bs])
  first, second = flat(batches[:5]), flat(batches[5:])
  key = lambda a: sorted(map(bytes, a))  # noqa: E731
  assert key(first) == key(small.x_train.reshape(100, -1)) == key(second)
  assert not np.array_equal(first, second)


def test_starting_mid_run_gives_the_tail_of_the_full_run(small):
  full = _batches(small, 5, steps=12)
  tail = _batches(small, 5, start=7, steps=5)
  for (xa, ya), (xb, yb) in zip(full[7:], tail):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_replica_slices_make_up_the_global_batch(small):
  ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                   num_replicas_in_sync=2)
  single = _batches(small, 5, steps=3)
  split = _batches(small, 5, steps=3, ctx=ctx)
  assert len(split) == 6 and split[0][0].shape[0] == 10
  for step in range(3):
    np.testing.assert_array_equal(np.concatenate([split[2 * step][0], split[2 * step + 1][0]]),
                                  single[step][0])
  # Two input pipelines (two workers), one replica each: each holds its half.
  for worker in range(2):
    ctx = tf.distribute.InputContext(2, worker, 2)
    part = _batches(small, 5, steps=3, ctx=ctx)
    np.testing.assert_array_equal(part[1][1], single[1][1][worker * 10:(worker + 1) * 10])


def test_init_seed_changes_weights_but_not_the_order(bind, tmp_path):
  bind()
  a = runner.Trainer(str(tmp_path / "a"), init_seed=1, data_order_seed=4)
  b = runner.Trainer(str(tmp_path / "b"), init_seed=2, data_order_seed=4)
  xa, ya = next(iter(a._dataset(0)))
  xb, yb = next(iter(b._dataset(0)))
  np.testing.assert_array_equal(xa.numpy(), xb.numpy())
  np.testing.assert_array_equal(ya.numpy(), yb.numpy())
  assert not np.array_equal(a.model.get_weights()[0], b.model.get_weights()[0])


def test_dataset_caps_and_unknown_names(bind):
  bind("dataset.max_train_examples = 123")
  assert base.get_dataset().num_train == 123
  bind("dataset.name = 'mnsit'")
  with pytest.raises(ValueError, match="unknown dataset"):
    base.get_dataset()


@pytest.mark.parametrize("pipelines,pipeline_id", [(1, 0), (2, 1)])
def test_chunks_read_at_once_are_the_steps_read_one_by_one(small, pipelines, pipeline_id):
  """data.train_chunks (a chunk's examples gathered, scaled and augmented at once) gives the
  real steps of in_chunks(train_batches) bit for bit: from mid-epoch, across epochs, with a
  per-example augmentation, and each input pipeline its share of the global batch."""
  data = dataclasses.replace(small, augment=functools.partial(cifar10.pad_crop_flip,
                                                              fill=np.zeros(1, np.float32)))
  ctx = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline_id,
                                   num_replicas_in_sync=pipelines)
  lengths = [5, 3, 7, 12]
  one_by_one = pipeline.in_chunks(
      pipeline.train_dataset(data, 10, 3, 5, 7, sum(lengths), ctx), lengths, 4)
  at_once = data.train_chunks(10, 3, 5, 7, lengths, 4, ctx)
  assert at_once.element_spec == one_by_one.element_spec
  count = 0
  for (x, y, r), (want_x, want_y, want_r) in zip(at_once, one_by_one, strict=True):
    np.testing.assert_array_equal(r, want_r)
    real = want_r.numpy() == 1
    np.testing.assert_array_equal(x.numpy()[real], want_x.numpy()[real])
    np.testing.assert_array_equal(y.numpy()[real], want_y.numpy()[real])
    count += int(real.sum())
  assert count == sum(lengths)
  # The augmentation is in: the chunks differ from the same steps unaugmented. Those come
  # as uint8, for the program to scale: the same floats as the pipeline's, with XLA too.
  plain = next(iter(small.train_chunks(10, 3, 5, 7, lengths, 4, ctx)))[0]
  assert plain.dtype == tf.uint8
  assert not np.array_equal(pipeline.scaled(plain, small).numpy(),
                            next(iter(at_once))[0].numpy())
  plain_one_by_one = next(iter(pipeline.in_chunks(
      pipeline.train_dataset(small, 10, 3, 5, 7, sum(lengths), ctx), lengths, 4)))[0]
  for scale in (lambda x: pipeline.scaled(x, small),
                tf.function(lambda x: pipeline.scaled(x, small), jit_compile=True)):
    np.testing.assert_array_equal(scale(plain).numpy(), plain_one_by_one.numpy())
  two_replicas = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                            num_replicas_in_sync=2)
  with pytest.raises(ValueError, match="one replica per input pipeline"):
    data.train_chunks(10, 3, 5, 7, lengths, 4, two_replicas)


def test_steps_in_chunks_never_span_two_loops(small):
  """training.steps_per_program: loops of 5, 3 and 7 steps in chunks of 4; each loop's last
  chunk is padded with zero batches marked unreal, and the real ones are the steps in order."""
  steps = _batches(small, order_seed=3, steps=15, batch=10)
  ds = pipeline.train_dataset(small, 10, 3, 0, 0, 15)
  chunks = [(x.numpy(), y.numpy(), r.numpy()) for x, y, r in pipeline.in_chunks(ds, [5, 3, 7], 4)]
  assert [r.tolist() for _, _, r in chunks] == [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0],
                                                [1, 1, 1, 1], [1, 1, 1, 0]]
  real = [(x[i], y[i]) for x, y, r in chunks for i in range(4) if r[i]]
  assert len(real) == len(steps)
  for (x, y), (want_x, want_y) in zip(real, steps):
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
  assert all(not x[i].any() and not y[i].any() for x, y, r in chunks for i in range(4)
             if not r[i])


def test_unaugmented_chunks_scale_in_the_program_as_the_pipeline_does():
  """Per-channel standardisation of uint8 chunks, traced and under XLA: the floats of the
  pipeline's own scaling bit for bit (a traced division by a constant would not be)."""
  rng = np.random.default_rng(0)
  data = base.ImageDataset(
      name="rgb", x_train=rng.integers(0, 256, (40, 4, 4, 3)).astype(np.uint8),
      y_train=rng.integers(0, 10, 40).astype(np.int32), x_test=np.zeros((1, 4, 4, 3), np.uint8),
      y_test=np.zeros(1, np.int32), num_classes=10, mean=np.float32([0.49, 0.48, 0.45]),
      std=np.float32([0.25, 0.24, 0.26]))
  chunk = next(iter(data.train_chunks(8, 1, 2, 0, [5], 5)))[0]
  want = next(iter(pipeline.in_chunks(pipeline.train_dataset(data, 8, 1, 2, 0, 5), [5], 5)))[0]
  assert chunk.dtype == tf.uint8 and want.dtype == tf.float32
  for jit in (False, True):
    scale = tf.function(lambda x: pipeline.scaled(x, data), jit_compile=jit)
    np.testing.assert_array_equal(scale(chunk).numpy(), want.numpy())
