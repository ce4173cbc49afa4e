"""Shared fixtures. TF is set up here, before any test touches it: four logical CPU devices
(for MirroredStrategy on a CPU) and op determinism."""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# LMC_TF_SHARED_DATA names it where the tree is not beside shared/ (a Bazel test's runfiles).
SHARED_DATA = (os.environ.get("LMC_TF_SHARED_DATA")
               or os.path.join(REPO, "..", "shared", "data"))

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(4)])
tf.config.experimental.enable_op_determinism()

from lmc_tf import config  # noqa: E402

# Small, fast defaults every runner test starts from; tests add bindings on top.
TINY = [
    "dataset.name = 'mnist'",
    "dataset.max_train_examples = 600",
    "dataset.max_test_examples = 300",
    "model.name = 'lenet_300_100'",
    "lenet.hidden = (32, 16)",
    "optimizer.name = 'adam'",
    "optimizer.learning_rate = 1e-3",
    "training.batch_size = 20",
    "training.steps = '60it'",
    "training.log_every = '30it'",
    "training.checkpoint_every = '30it'",
    "training.eval_batch_size = 100",
]


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture
def bind():
  """bind(*bindings): parse the TINY config plus `bindings` into gin."""
  def _bind(*bindings):
    gin.clear_config()
    config.parse([], TINY + list(bindings))
  return _bind


@pytest.fixture
def console(capsys, caplog):
  """console(): what a job said since the last call, as one text: its progress and warnings
  (absl logging, INFO up) and its printed results (stdout)."""
  caplog.set_level(logging.INFO)

  def _read():
    text = "\n".join([r.getMessage() for r in caplog.records] + [capsys.readouterr().out])
    caplog.clear()
    return text
  return _read


@pytest.fixture
def shared_data():
  """The one way tests reach ../shared/data; skips cleanly where it is absent."""
  if not os.path.isdir(SHARED_DATA):
    pytest.skip("../shared/data is not present beside the repo")
  return SHARED_DATA


def python_env():
  """Environment for subprocesses that run lmc_tf from this checkout."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env.pop("TF_CONFIG", None)
  return env


PYTHON = sys.executable


def free_ports(n):
  """n TCP ports free on this machine now, for the workers of a local cluster."""
  import socket  # pylint: disable=g-import-not-at-top
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


@pytest.fixture(scope="session")
def cifar10_sample(tmp_path_factory):
  """The CIFAR-10 sample in ../shared/data written in both file layouts lmc_tf.data.cifar10
  reads: `npz` (x_train, y_train, x_test, y_test) and `batches_dir` (a `cifar-10-batches-py`
  directory of pickled batches, here with fewer than 10,000 rows each). Also holds the arrays."""
  import pickle  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = os.path.join(SHARED_DATA, "cifar10_sample", "cifar10_lossless_partial.npz")
  if not os.path.exists(path):
    pytest.skip(f"{path} is not present beside the repo")
  with np.load(path) as f:
    x, y, index = f["x"], f["y"].astype(np.int32), f["global_index"]
  # global_index < 50000 indexes the training set; 50000 + i is test image i.
  train, test = index < 50000, index >= 50000
  arrays = dict(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
  root = tmp_path_factory.mktemp("cifar10")
  np.savez(root / "cifar10.npz", **arrays)
  batches_dir = root / "cifar-10-batches-py"
  batches_dir.mkdir()
  chw_rows = lambda images: images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # noqa: E731
  parts = [(f"data_batch_{i + 1}", xs, ys) for i, (xs, ys) in enumerate(
      zip(np.array_split(arrays["x_train"], 5), np.array_split(arrays["y_train"], 5)))]
  for name, xs, ys in parts + [("test_batch", arrays["x_test"], arrays["y_test"])]:
    with open(batches_dir / name, "wb") as f:  # bytes keys and protocol 2, as the official files
      pickle.dump({b"batch_label": name.encode(), b"labels": ys.tolist(),
                   b"data": chw_rows(xs)}, f, protocol=2)
  return types.SimpleNamespace(npz=str(root / "cifar10.npz"), batches_dir=str(batches_dir),
                               **arrays)


IMAGENET_TRAIN, IMAGENET_TEST = 64, 32  # examples in the tiny imagenet2012 of imagenet_sample


def write_imagenet_tars(path, num_train, num_val, seed=0):
  """ILSVRC2012_img_train.tar (a tar of per-synset tars: one random JPEG for each of the first
  `num_train` classes, so a label names an example) and ILSVRC2012_img_val.tar, in `path`."""
  import io  # pylint: disable=g-import-not-at-top
  import tarfile  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  os.makedirs(path, exist_ok=True)

  def jpeg():
    height, width = rng.integers(24, 72, size=2)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(out, "JPEG")
    return out.getvalue()

  def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))

  synsets = tfds.builder("imagenet2012").info.features["label"].names
  with tarfile.open(os.path.join(path, "ILSVRC2012_img_train.tar"), "w") as outer:
    for c in range(num_train):
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as tar:
        add(tar, f"{synsets[c]}_{c}.JPEG", jpeg())
      add(outer, f"{synsets[c]}.tar", inner.getvalue())
  with tarfile.open(os.path.join(path, "ILSVRC2012_img_val.tar"), "w") as tar:
    for i in range(1, num_val + 1):
      add(tar, f"ILSVRC2012_val_{i:08d}.JPEG", jpeg())
  return path


@pytest.fixture(scope="session")
def imagenet_sample(tmp_path_factory):
  """A TFDS data_dir holding a tiny imagenet2012 (IMAGENET_TRAIN train and IMAGENET_TEST
  validation images, 4 files per split), prepared once per pytest worker, offline, by the real
  TFDS builder from small official-layout tars.

  tfds.testing.mock_data cannot stand in for it: for imagenet2012 it leaves `info.splits`
  empty (no split sizes) and its fake `as_dataset` ignores split slices and ReadConfig, so
  shards and file order could not be tested.
  """
  from lmc_tf.data import imagenet  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("imagenet")
  manual = write_imagenet_tars(str(root / "manual"), IMAGENET_TRAIN, IMAGENET_TEST)
  imagenet.prepare(str(root / "data"), manual, num_shards=4)
  return str(root / "data")



@pytest.fixture(scope="session")
def tfds_mnist(tmp_path_factory):
  """A TFDS data_dir holding the real `mnist` (60,000 + 10,000 examples), prepared once per
  pytest worker, offline, by TFDS's own builder from the bundled official .gz files."""
  from lmc_tf.data import mnist  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("tfds_mnist")
  mnist.prepare_tfds(str(root))
  return str(root)


@pytest.fixture(scope="module")
def no_graph_optimizer():
  """Grappler optimizes every new tf.function graph on its first call (1-2 s for the smoke
  networks), and every smoke run builds new ones; switched off for a module, it saves 10-15%
  of its time. It changes how TF executes the graphs, not the code under test. Use as
  `pytestmark = pytest.mark.usefixtures("no_graph_optimizer")`."""
  before = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  yield
  tf.config.optimizer.set_experimental_options(before)


# Seconds each of the longest modules took (tools/test.sh, 2-core VM, 2026-12-07); the rest
# took under 30 s each. tools/test.sh hands modules to the xdist workers in this order
# (--dist loadscope --no-loadscope-reorder), longest first, so that the short ones even the
# workers out at the end instead of one long module running alone.
MODULE_SECONDS = {
    "test_group": 176, "test_cifar_configs": 113, "test_imagenet_configs": 111,
    "test_main": 80, "test_cifar_smoke_vgg16": 80, "test_replicas": 45, "test_instability": 60,
    "test_stabilizing_smoke_resnet": 55, "test_inits": 54, "test_evaluate_modes": 51,
    "test_faults": 45, "test_data": 35, "test_stabilizing_smoke_vgg": 35,
    "test_imagenet_models": 31,
}


def pytest_collection_modifyitems(config, items):
  """The Ray sweep test first: its tasks are fresh processes that need memory, and by the end
  of the suite the two long-lived workers hold the most (up to 5 GB each, 12 GB before every
  traced train loop stopped outliving its run). Then the longest modules (MODULE_SECONDS);
  within a module the tests keep their order."""
  del config

  def order(item):
    module = os.path.splitext(os.path.basename(item.nodeid.split("::")[0]))[0]
    return (0 if module == "test_sweep" else 1, -MODULE_SECONDS.get(module, 0))
  items.sort(key=order)
