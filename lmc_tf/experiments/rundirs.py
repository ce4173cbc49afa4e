"""Atomic writes: a result file is either absent or whole, never half-written (SPEC §10)."""

import json
import os
import uuid

import tensorflow as tf


def write_text_atomic(path, text):
  """Writes to a temp file beside `path`, then renames it over `path`."""
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json_atomic(path, value):
  write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
