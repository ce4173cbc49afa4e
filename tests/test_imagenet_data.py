"""Streamed ImageNet (lmc_tf/data/imagenet.py) on a tiny imagenet2012 that TFDS prepares here.

The tiny imagenet2012 is the session's `imagenet_sample` (tests/conftest.py): the real TFDS
builder prepares it offline from two small official-layout tars (random JPEGs, one image per
class in train, so a label names an example).
"""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from lmc_tf.data import base
from lmc_tf.data import color
from lmc_tf.data import imagenet
from lmc_tf.data import pipeline
from lmc_tf.training import runner
from lmc_tf import layout
from tests.conftest import IMAGENET_TEST
from tests.conftest import IMAGENET_TRAIN
from tests.conftest import write_imagenet_tars


@pytest.fixture(scope="module")
def prepared(imagenet_sample):
  """The data_dir of imagenet2012 in 4 files per split, and each split's labels in order."""
  builder = tfds.builder(imagenet.TFDS_NAME, data_dir=imagenet_sample)
  in_order = tfds.ReadConfig(interleave_cycle_length=1)
  labels = {split: np.array([ex["label"] for ex in tfds.as_numpy(builder.as_dataset(
      split=tfds_split, read_config=in_order))]) for split, tfds_split in imagenet.SPLITS.items()}
  return imagenet_sample, labels


@pytest.fixture(scope="module")
def data(prepared):
  return imagenet.load(data_dir=prepared[0], image_size=32, shuffle_buffer=64)


def _train(data, batch=16, order_seed=1, aug_seed=2, start=0, steps=4, ctx=None):
  return [(x.numpy(), y.numpy())
          for x, y in data.train_batches(batch, order_seed, aug_seed, start, steps, ctx)]


def _eval(data, split="test", batch=10, max_examples=None, ctx=None):
  return [tuple(t.numpy() for t in b) for b in data.eval_batches(split, batch, max_examples, ctx)]


def test_sizes_come_from_the_tfds_split_info(data):
  assert (data.num_train, data.num_test, data.num_classes) == (IMAGENET_TRAIN, IMAGENET_TEST, 1000)
  assert data.image_shape == (32, 32, 3) and data.order_depends_on_input_pipelines
  assert data.num_examples("test") == IMAGENET_TEST
  assert imagenet.Preprocessing("resnet", imagenet.PREPROCESSINGS["resnet"]).size == 224
  assert imagenet.PREPROCESSINGS["inception"] == 299


@pytest.mark.parametrize("kind,low,high", [
    pytest.param("resnet", float(np.min(-imagenet.MEAN / imagenet.STD)),
                 float(np.max((1 - imagenet.MEAN) / imagenet.STD)), id="resnet"),
    pytest.param("inception", -1.0, 1.0, id="inception")])
def test_both_preprocessings_give_float_images_in_range(prepared, kind, low, high):
  data = imagenet.load(data_dir=prepared[0], preprocessing=kind, image_size=40)
  (x, y), = _train(data, batch=8, steps=1)
  assert x.shape == (8, 40, 40, 3) and x.dtype == np.float32 and y.dtype == np.int32
  x_eval, y_eval, w = _eval(data, batch=8)[0]
  assert x_eval.shape == (8, 40, 40, 3) and y_eval.dtype == np.int32 and w.dtype == np.float32
  for images in (x, x_eval):
    assert low - 1e-5 <= images.min() and images.max() <= high + 1e-5
    assert images.max() - images.min() > 0.5 * (high - low)  # random JPEGs span the range


def test_eval_crops_follow_the_references():
  # Sizes where every crop edge is a whole pixel in both orders: 128 * 0.875 = 112 = 2 * 56.
  height, width, size = 128, 160, 56
  rows, cols = np.mgrid[0:height, 0:width]
  image = 127.5 + 127 * np.stack([np.sin(cols / 6), np.sin(rows / 6), np.cos((rows + cols) / 9)],
                                 -1)
  jpeg = tf.io.encode_jpeg(image.astype(np.uint8), quality=95)
  decoded = tf.cast(tf.io.decode_jpeg(jpeg, channels=3), tf.float32)
  # The border differs: crop-then-resize sees no pixels past the crop, and decode_and_crop_jpeg
  # upsamples chroma at the crop edge from the crop alone.
  inner = (slice(1, -1), slice(1, -1))
  # ResNet, as torchvision's Resize(size / 0.875) then CenterCrop(size).
  scaled = tf.image.resize(decoded, [64, 80], antialias=True)
  expected = (scaled[4:4 + size, 12:12 + size] / 255 - imagenet.MEAN) / imagenet.STD
  got = imagenet.Preprocessing("resnet", size).eval(jpeg)
  np.testing.assert_allclose(got[inner], expected[inner], atol=1e-4)
  # Inception (slim): the central 87.5% of each side, resized to size x size.
  expected = tf.image.resize(tf.image.central_crop(decoded, 0.875), [size, size], antialias=True)
  got = imagenet.Preprocessing("inception", size).eval(jpeg)
  np.testing.assert_allclose(got[inner], ((expected / 255 - 0.5) * 2)[inner], atol=1e-4)


def _copy_seeds(augmentation_seed, batch=8):
  """The per-example seeds a copy with `augmentation_seed` uses at step 0."""
  return pipeline.example_seeds(augmentation_seed, 0, batch)


def test_color_distortion_is_keyed_by_each_copys_augmentation_seed():
  # A uniform colour: every crop and flip of it is the same image, so what differs between
  # seeds can only be the colour distortion.
  jpeg = tf.io.encode_jpeg(np.full([48, 64, 3], (180, 90, 60), np.uint8), quality=95)
  plain = imagenet.Preprocessing("inception", 16)
  distorted = imagenet.Preprocessing("inception", 16, color_distortion=True)

  def means(prep, augmentation_seed):
    images = np.stack([prep.train(jpeg, s).numpy() for s in _copy_seeds(augmentation_seed)])
    assert -1.0 <= images.min() and images.max() <= 1.0
    return images.mean(axis=(1, 2)), images

  undistorted, _ = means(plain, 2)
  np.testing.assert_allclose(undistorted, means(plain, 5)[0], atol=1e-5)
  np.testing.assert_allclose(undistorted, np.broadcast_to(undistorted[0], undistorted.shape),
                             atol=1e-5)
  copy1, images1 = means(distorted, 2)
  copy2, _ = means(distorted, 5)
  np.testing.assert_array_equal(images1, means(distorted, 2)[1])  # a rerun repeats it
  distinct = np.concatenate([copy1, copy2]).round(3)
  assert len({tuple(c) for c in distinct}) == len(distinct)  # every example its own colours
  assert np.abs(copy1 - undistorted).max() > 0.05


def test_color_orderings_are_the_references_four_drawn_per_example():
  assert color.ORDERINGS[0] == ("brightness", "saturation", "hue", "contrast")
  assert sorted(map(sorted, color.ORDERINGS)) == [sorted(color.ORDERINGS[0])] * 4
  drawn = [int(color.ordering(s)) for s in _copy_seeds(7, batch=32)]
  assert sorted(set(drawn)) == [0, 1, 2, 3]


def test_without_color_distortion_inception_training_is_crop_resize_scale_flip():
  # The transform as it was before colour distortion existed, step by step, bit for bit.
  rows, cols = np.mgrid[0:60, 0:80]
  image = 127.5 + 127 * np.stack([np.sin(cols / 5), np.sin(rows / 7), np.cos((rows + cols) / 9)],
                                 -1)
  jpeg = tf.io.encode_jpeg(image.astype(np.uint8), quality=95)
  for seed in _copy_seeds(3, batch=3):
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        [60, 80, 3], tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), seed=crop_seed,
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.05, 1.0),
        max_attempts=100, use_image_if_no_bounding_boxes=True)
    crop = tf.image.decode_and_crop_jpeg(jpeg, tf.concat([begin[:2], size[:2]], 0), channels=3)
    expected = tf.image.resize(crop, [24, 24], method="bilinear", antialias=True) / 255.0
    expected = tf.image.stateless_random_flip_left_right((expected - 0.5) * 2.0, flip_seed)
    np.testing.assert_array_equal(imagenet.Preprocessing("inception", 24).train(jpeg, seed),
                                  expected)


def test_copies_stream_their_own_color_distortions(prepared):
  plain = imagenet.load(data_dir=prepared[0], preprocessing="inception", image_size=32,
                        shuffle_buffer=64)
  distorted = imagenet.load(data_dir=prepared[0], preprocessing="inception", image_size=32,
                            shuffle_buffer=64, color_distortion=True)
  copy1 = _train(distorted, batch=8, steps=2)
  for (xa, ya), (xb, yb) in zip(copy1, _train(distorted, batch=8, steps=2)):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  for (x, y), (x_plain, y_plain) in zip(copy1, _train(plain, batch=8, steps=2)):
    np.testing.assert_array_equal(y, y_plain)
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert all(not np.allclose(a, b) for a, b in zip(x, x_plain))  # every example distorted
  for (xa, _), (xb, _) in zip(copy1, _train(distorted, batch=8, aug_seed=5, steps=2)):
    assert not np.allclose(xa, xb)
  # Evaluation is not distorted.
  np.testing.assert_array_equal(_eval(distorted, batch=8)[0][0], _eval(plain, batch=8)[0][0])


def test_color_distortion_is_inceptions_only(tmp_path):
  with pytest.raises(ValueError, match="color_distortion"):
    imagenet.load(data_dir=str(tmp_path / "nothing"), color_distortion=True)


def test_seeds_set_order_and_augmentation_independently(data):
  reference = _train(data)
  for (xa, ya), (xb, yb) in zip(reference, _train(data)):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  other_order = _train(data, order_seed=3)
  assert not np.array_equal(np.concatenate([y for _, y in reference]),
                            np.concatenate([y for _, y in other_order]))
  other_crops = _train(data, aug_seed=5)
  for (xa, ya), (xb, yb) in zip(reference, other_crops):
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(xa, xb)


def test_each_epoch_is_a_permutation_and_epochs_differ(data, prepared):
  labels = [y for _, y in _train(data, steps=8)]
  first, second = np.concatenate(labels[:4]), np.concatenate(labels[4:])
  np.testing.assert_array_equal(np.sort(first), np.sort(prepared[1]["train"]))
  np.testing.assert_array_equal(np.sort(second), np.sort(prepared[1]["train"]))
  assert not np.array_equal(first, second)


def test_resuming_at_step_s_gives_the_uninterrupted_stream(data):
  # 12 per batch: 5 steps per epoch, 4 examples dropped each epoch; the tail crosses epochs.
  full = _train(data, batch=12, steps=11)
  tail = _train(data, batch=12, start=3, steps=8)
  assert len(tail) == 8
  for (xa, ya), (xb, yb) in zip(full[3:], tail):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_replicas_split_each_global_batch_in_order(data):
  single = _train(data, steps=3)
  ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                   num_replicas_in_sync=2)
  split = _train(data, steps=3, ctx=ctx)
  assert len(split) == 6 and split[0][0].shape[0] == 8
  for step in range(3):
    for i in (0, 1):  # images and labels
      np.testing.assert_array_equal(
          np.concatenate([split[2 * step][i], split[2 * step + 1][i]]), single[step][i])


def test_two_input_pipelines_read_disjoint_halves(data, prepared):
  order = prepared[1]["train"]
  for pipeline_id in (0, 1):
    ctx = tf.distribute.InputContext(2, pipeline_id, 2)
    batches = _train(data, steps=4, ctx=ctx)  # one epoch; 8 of each global 16 per pipeline
    assert len(batches) == 4 and batches[0][0].shape == (8, 32, 32, 3)
    seen = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(np.sort(seen), np.sort(order[pipeline_id * 32:][:32]))


def test_eval_is_in_split_order_padded_with_weight_zero(data, prepared):
  batches = _eval(data, batch=10)
  assert len(batches) == 4  # ceil(32 / 10)
  images = np.concatenate([b[0] for b in batches])
  labels = np.concatenate([b[1] for b in batches])
  weights = np.concatenate([b[2] for b in batches])
  np.testing.assert_array_equal(weights, [1.0] * 32 + [0.0] * 8)
  np.testing.assert_array_equal(labels[:32], prepared[1]["test"])
  assert not images[32:].any()
  np.testing.assert_array_equal(images, np.concatenate([b[0] for b in _eval(data, batch=10)]))
  # A prefix of the train split, unaugmented.
  train = _eval(data, "train", batch=8, max_examples=20)
  assert len(train) == 3
  np.testing.assert_array_equal(np.concatenate([b[1] for b in train])[:20],
                                prepared[1]["train"][:20])
  # Two pipelines: each reads its own contiguous block; together the whole split, once.
  halves = [_eval(data, batch=10, ctx=tf.distribute.InputContext(2, p, 2)) for p in (0, 1)]
  assert [len(h) for h in halves] == [4, 4] and halves[0][0][0].shape[0] == 5
  weights = [np.concatenate([b[2] for b in h]) for h in halves]
  labels = [np.concatenate([b[1] for b in h]) for h in halves]
  np.testing.assert_array_equal(labels[0], prepared[1]["test"][:20])
  np.testing.assert_array_equal(labels[1][weights[1] > 0], prepared[1]["test"][20:])
  np.testing.assert_array_equal(np.concatenate([b[0] for b in halves[0]]), images[:20])
  assert weights[0].sum() + weights[1].sum() == 32


def test_missing_dataset_says_what_to_put_where(tmp_path):
  with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar.*manual_dir"):
    imagenet.load(data_dir=str(tmp_path / "nothing"))
  with pytest.raises(FileNotFoundError, match="lacks ILSVRC2012_img_train.tar"):
    imagenet.load(data_dir=str(tmp_path / "nothing"), manual_dir=str(tmp_path))
  with pytest.raises(ValueError, match="preprocessing"):
    imagenet.load(data_dir=str(tmp_path / "nothing"), preprocessing="vgg")


def test_manual_dir_prepares_the_dataset_on_first_load(tmp_path):
  manual = write_imagenet_tars(str(tmp_path / "manual"), 8, 4, seed=1)
  data = imagenet.load(data_dir=str(tmp_path / "data"), manual_dir=manual, image_size=32)
  assert (data.num_train, data.num_test) == (8, 4)
  again = imagenet.load(data_dir=str(tmp_path / "data"), manual_dir="/does/not/matter")
  assert again.num_train == 8


@pytest.mark.slow
def test_gin_caps_take_a_prefix_and_training_runs_end_to_end(bind, prepared, tmp_path):
  assert "imagenet" not in layout.NOT_FINGERPRINTED
  bind("dataset.name = 'imagenet2012'", f"imagenet.data_dir = '{prepared[0]}'",
       "imagenet.image_size = 32", "imagenet.shuffle_buffer = 64",
       "dataset.max_train_examples = 40", "dataset.max_test_examples = 16",
       "model.name = 'resnet20'", "resnet_cifar.width_multiplier = 0.25",
       "strategy.name = 'mirrored'", "strategy.num_cpu_devices = 2",
       "training.batch_size = 8", "training.steps = '3it'", "training.log_every = '1it'",
       "training.checkpoint_every = '1it'", "training.eval_batch_size = 16")
  data = base.get_dataset()
  assert (data.num_train, data.num_test) == (40, 16)
  epoch = np.concatenate([y for _, y in _train(data, batch=8, steps=5)])
  np.testing.assert_array_equal(np.sort(epoch), np.sort(prepared[1]["train"][:40]))

  trainer = runner.Trainer(str(tmp_path / "run"), data=data)
  trainer.begin()
  result = trainer.train()
  assert result["final_step"] == 3 and np.isfinite(result["test_loss"])
  assert trainer.evaluator.num_examples == 16
  with open(tmp_path / "run" / layout.RUN_CONFIG) as f:
    run_config = json.load(f)
  assert run_config["data_order_depends_on_input_pipelines"] is True
  assert (run_config["replicas"], run_config["input_pipelines"]) == (2, 1)
