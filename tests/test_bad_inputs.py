"""Bad inputs, named before anything trains: wrong values and types of bindings, damaged or
nonsensical data and mask files, unprepared TFDS datasets, a --model_dir that cannot be one.
(Issue 13's cases 7-10; faults during and after training are in test_faults.py.)"""

import glob
import os

import gin
import numpy as np
import pytest

from lmc_tf import config
from lmc_tf import errors
from lmc_tf import jobs
from tests.conftest import REPO
from tests.conftest import TINY

SMOKE = os.path.join(REPO, "gin_configs", "smoke", "lenet_mnist_instability_smoke.gin")


def _all_checkpoints(run_dir):
  return glob.glob(f"{run_dir}/checkpoints/**/ckpt-*.index", recursive=True)


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_damaged_input_files_are_named(tmp_path, damage):
  from lmc_tf.data import cifar10  # pylint: disable=g-import-not-at-top
  from lmc_tf.data import mnist  # pylint: disable=g-import-not-at-top
  from lmc_tf.pruning import masks as masks_lib  # pylint: disable=g-import-not-at-top

  def damaged(name, data):
    path = str(tmp_path / name)
    with open(path, "wb") as f:
      f.write(data[:len(data) // 2] if damage == "truncated" else b"not this at all\n")
    return path

  with open(os.path.join(mnist.BUNDLED_DIR, mnist.FILES["y_test"]), "rb") as f:
    gz = damaged("labels.gz", f.read())
  with pytest.raises(ValueError, match="labels.gz is not a readable gzip file"):
    mnist.read_idx(gz)
  buffer = tmp_path / "whole.npz"
  np.savez(buffer, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.zeros(4, np.int64),
           x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, np.int64))
  npz = damaged("cifar.npz", buffer.read_bytes())
  with pytest.raises(ValueError, match="cifar.npz is not a readable .npz"):
    cifar10.load_from_npz(npz)
  mask = damaged("mask.npz", buffer.read_bytes())
  with pytest.raises(ValueError, match="mask.npz' is not a readable .npz") as e:
    masks_lib.load(mask)
  # Neither file is a zip archive: numpy's advice to allow pickles would mislead.
  for path, load in ((npz, cifar10.load_from_npz), (mask, masks_lib.load)):
    with pytest.raises(ValueError, match="not a zip archive of arrays") as e:
      load(path)
    assert "allow_pickle" not in str(e.value)


def test_an_npz_of_object_arrays_is_refused_without_unpickling(tmp_path):
  from lmc_tf.pruning import masks as masks_lib  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "objects.npz")
  np.savez(path, dense=np.array([{"a": 1}], dtype=object))
  with pytest.raises(ValueError, match="objects.npz' .*holds object arrays, which are never"):
    masks_lib.load(path)


def test_a_mask_that_keeps_no_weight_is_refused_before_training(tmp_path):
  path = str(tmp_path / "zeros.npz")
  np.savez(path, dense_0=np.zeros((784, 32)), dense_1=np.zeros((32, 16)),
           dense_out=np.zeros((16, 10)))
  gin.clear_config()
  config.parse([SMOKE], [f"instability.mask_file = '{path}'"])
  with pytest.raises(errors.ConfigError, match="zeros.npz' keeps no weight"):
    jobs.run(str(tmp_path / "exp"))
  assert not glob.glob(f"{tmp_path}/exp/*")


def test_a_rewind_step_beyond_t_names_its_binding(tmp_path):
  gin.clear_config()
  config.parse([SMOKE], ["instability.rewind_steps = [0, '99ep']"])
  with pytest.raises(errors.ConfigError, match=r"instability.rewind_steps: steps \[2970\]"):
    jobs.run(str(tmp_path))


def test_an_empty_mask_file_is_an_error(tmp_path):
  from lmc_tf.pruning import masks as masks_lib  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "empty.npz")
  np.savez(path)
  with pytest.raises(ValueError, match="holds no masks"):
    masks_lib.load(path)


def test_an_unprepared_tfds_dataset_is_a_clear_error(tmp_path):
  from lmc_tf.data import base  # pylint: disable=g-import-not-at-top
  with pytest.raises(FileNotFoundError, match="TFDS mnist is not prepared in"):
    base.load_tfds_arrays("mnist", str(tmp_path))
  from lmc_tf.data import cifar10  # pylint: disable=g-import-not-at-top
  with pytest.raises(FileNotFoundError, match="set cifar10.path=DIR"):  # its data_dir binding
    cifar10.load(path=str(tmp_path), source="tfds")


@pytest.mark.parametrize("binding, named", [
    ("training.batch_size = 'abc'", "training.batch_size='abc' must be a positive integer"),
    ("training.batch_size = 0", "training.batch_size=0 must be a positive integer"),
    ("training.batch_size = 60.5", "training.batch_size=60.5 must be a positive integer"),
    ("training.batch_size = -60", "training.batch_size=-60 must be a positive integer"),
    ("optimizer.learning_rate = 'abc'", "optimizer.learning_rate='abc' must be a number"),
    ("training.steps_per_loop = 'x'", "training.steps_per_loop='x' must be a positive"),
    ("training.steps_per_program = 0", "training.steps_per_program=0 must be a positive"),
    ("training.programs_at_once = 'two'", "training.programs_at_once='two' must be a positive"),
    ("train.init_seed = 'a'", "train.init_seed='a' must be an integer"),
    ("training.steps = 'soon'", "training.steps='soon' must be an int or look like"),
    ("lr_schedule.drops = ['100ep']", "lr_schedule: warmup='0it' and drops=\\['100ep'\\]"),
    ("lr_schedule.warmup = '1000it'", "must lie within training"),
    ("dataset.max_train_examples = 'a'", "dataset.max_train_examples='a' must be a positive"),
    ("dataset.max_test_examples = 0", "dataset.max_test_examples=0 must be a positive"),
    ("lenet.hidden = 'a'", "lenet.hidden='a' must be a list of layer widths"),
    ("lenet.hidden = (32, 0)", "lenet.hidden\\[1\\]=0 must be a positive integer"),
    ("training.checkpoint_every = 0", "training.checkpoint_every=0 must be positive"),
    ("training.log_every = '0ep'", "training.log_every='0ep' must be positive"),
    ("optimizer.learning_rate = 1e999", "optimizer.learning_rate=inf must be a number in"),
    ("lr_schedule.warmup = '100ep'", "T=60 steps\\); the warmup \\(3000\\) ends beyond it"),
])
def test_bad_values_name_their_binding_before_training(tmp_path, bind, binding, named):
  bind(binding)
  with pytest.raises(errors.ConfigError, match=named):
    jobs.run(str(tmp_path / "run"))
  assert not _all_checkpoints(str(tmp_path / "run"))


@pytest.mark.parametrize("binding", ["optimizer.learning_rate = float('nan')",
                                     "training.batch_size = ("])
def test_a_binding_that_is_not_gin_syntax_is_named(binding):
  with pytest.raises(errors.ConfigError) as e:
    config.parse([], TINY + [binding])
  assert f"in --gin_bindings={binding!r}" in str(e.value)


def test_a_model_width_of_the_wrong_type_is_named(bind):
  from lmc_tf.models import registry  # pylint: disable=g-import-not-at-top
  bind("resnet_cifar.width_multiplier = 'x'")
  with pytest.raises(errors.ConfigError, match="resnet_cifar.width_multiplier='x' must be a"):
    registry.build_model(name="resnet20", input_shape=(32, 32, 3), num_classes=10)


@pytest.mark.parametrize("binding, named", [
    ("imp.levels = -1", "imp.levels=-1 must be an integer >= 0"),
    ("imp.density = 1e-6", "leaves no weight of the"),
    ("imp.levels = 80", "80 levels of imp.pruning_fraction=0.2 leaves no weight"),
])
def test_imp_nonsense_is_refused_before_training(tmp_path, bind, binding, named):
  bind("experiment.job = 'imp'", binding)
  with pytest.raises(errors.ConfigError, match=named):
    jobs.run(str(tmp_path / "exp"))
  assert not glob.glob(f"{tmp_path}/exp/runs/*")


def test_a_model_dir_that_is_a_file_is_refused(tmp_path, bind):
  path = tmp_path / "taken"
  path.write_text("a file")
  bind()
  with pytest.raises(errors.ConfigError, match="--model_dir .*taken is a file"):
    jobs.run(str(path))


def test_a_refused_value_does_not_claim_the_directory(tmp_path, bind):
  bind("training.batch_size = 'abc'")
  with pytest.raises(errors.ConfigError):
    jobs.run(str(tmp_path))
  bind()  # the corrected config trains in the same directory
  assert jobs.run(str(tmp_path))["final_step"] == 60
