"""Atomic writes: a result file is either absent or whole, never half-written (SPEC §10)."""

import hashlib
import json
import os
import uuid

import gin
import tensorflow as tf


def absolute(path):
  """An absolute local path; URLs such as gs://bucket/dir (pod runs) are left as they are."""
  return path if "://" in path else os.path.abspath(path)


def write_bytes_atomic(path, data):
  """Writes to a temp file beside `path`, then renames it over `path`."""
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
  with tf.io.gfile.GFile(tmp, "wb") as f:
    f.write(data)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def write_text_atomic(path, text):
  write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, value):
  write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


# The configurables whose values change what a run computes. Logging, checkpoint cadence,
# loop length, eval batch and XLA do not, and are left out so that changing them finds the
# same run directories. A new model or dataset adds its configurable here.
SEMANTIC_CONFIGURABLES = ("dataset", "mnist", "cifar10", "imagenet", "model", "lenet",
                          "resnet_cifar", "vgg", "resnet_imagenet", "inception_v3", "optimizer",
                          "lr_schedule", "training")
NON_SEMANTIC = {"training": {"checkpoint_steps", "checkpoint_every", "log_every",
                             "steps_per_loop", "eval_batch_size", "jit_compile"},
                # Where ImageNet lives (a local copy, a bucket) does not change what it holds.
                "imagenet": {"data_dir", "manual_dir"}}


def training_fingerprint():
  """The gin values bound for what a run computes (as open_lth does, only the values a config
  sets: adding a parameter with a default keeps old hashes)."""
  fingerprint = {}
  for name in SEMANTIC_CONFIGURABLES:
    bindings = {k: v for k, v in gin.get_bindings(name).items()
                if k not in NON_SEMANTIC.get(name, ())}
    if bindings:
      fingerprint[name] = bindings
  return fingerprint


def run_hash(spec):
  """A short stable name for the run that `spec` (a JSON-able dict) describes."""
  canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=repr)
  return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def is_finished(run_dir):
  """A run is finished once its atomically written summary.json exists."""
  return tf.io.gfile.exists(os.path.join(run_dir, "summary.json"))
