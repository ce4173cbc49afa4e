"""Files on any filesystem TensorFlow reaches (local, gs://, ram://), written atomically.

A result file is either absent or whole, never half-written (SPEC §10): it is written to a
temp file beside its path and renamed over it. Everything here goes through `tf.io.gfile`, so
the same code serves a laptop's disk and a TPU pod's bucket.
"""

import json
import os
import posixpath
import uuid

import tensorflow as tf


def _split_scheme(path):
  scheme, sep, rest = path.partition("://")
  return (scheme + sep, rest) if sep else ("", path)


def absolute(path):
  """An absolute local path; URLs such as gs://bucket/dir (pod runs) are left as they are."""
  return path if "://" in path else os.path.abspath(path)


def join(base, *parts):
  """`base`/`parts`, with '..' resolved, on URLs too (GCS and ram:// do not resolve it)."""
  scheme, rest = _split_scheme(os.path.join(base, *parts))
  if not scheme:
    return os.path.normpath(rest)
  return scheme + posixpath.normpath(rest)


def relative(path, start):
  """`path` relative to the directory `start` (both on one filesystem)."""
  (scheme_a, a), (scheme_b, b) = _split_scheme(path), _split_scheme(start)
  if scheme_a != scheme_b:
    raise ValueError(f"{path} and {start} are on different filesystems")
  return posixpath.relpath(a, b) if scheme_a else os.path.relpath(a, b)


exists = tf.io.gfile.exists
isdir = tf.io.gfile.isdir


def listdir(path):
  """The names in directory `path`, sorted; none if it does not exist."""
  if not tf.io.gfile.isdir(path):
    return []
  return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def rmtree(path):
  """Deletes the directory `path` and everything in it, if it exists."""
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)


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


def read_text(path):
  with tf.io.gfile.GFile(path) as f:
    return f.read()


class UnreadableFileError(ValueError):
  """A result file that exists but cannot be parsed (truncated, or not what its name says)."""


def read_json(path):
  """The JSON value in `path`; a file that is not valid JSON is an UnreadableFileError that
  names it."""
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as e:
    raise UnreadableFileError(f"{path} is not valid JSON ({e}): the file is damaged") from None


def rename(source, target):
  tf.io.gfile.rename(source, target, overwrite=False)
