"""Files on any filesystem TensorFlow reaches (local, gs://, ram://), written atomically.

A result file is either absent or whole, never half-written (SPEC §10): it is written to a
temp file beside its path and renamed over it. Everything here goes through `tf.io.gfile`, so
the same code serves a laptop's disk and a TPU pod's bucket.
"""

import io
import json
import os
import posixpath
import socket
import time
import uuid
import zipfile

from absl import logging
import numpy as np
import tensorflow as tf

from lmc_tf.errors import ConfigError
from lmc_tf.errors import DirectoryBusyError


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


def check_writable_dir(path, what="directory"):
  """Makes directory `path` if needed and proves it can be written; raises a ConfigError
  naming it otherwise (a file in the way, no permission, a bucket out of reach)."""
  if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
    raise ConfigError(f"{what} {path} is a file, not a directory")
  probe = join(path, f".write-probe-{uuid.uuid4().hex[:8]}")
  try:
    tf.io.gfile.makedirs(path)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    raise ConfigError(f"{what} {path} cannot be written: {str(e).splitlines()[0][:200]}"
                      ) from None


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
  text = read_text(path)
  try:
    return json.loads(text)
  except ValueError as e:
    raise UnreadableFileError(f"{path} is not valid JSON ({e}): the file is damaged") from None


def npz_arrays(data):
  """{name: array} of the .npz whose bytes are `data`; a ValueError saying why if it is not
  one: not a zip archive (truncated, or another kind of file), or one holding object arrays
  (which would be unpickled: never done)."""
  buffer = io.BytesIO(data)
  if not zipfile.is_zipfile(buffer):
    raise ValueError("not a zip archive of arrays: truncated, or another kind of file")
  try:
    with zipfile.ZipFile(buffer) as archive:
      if not archive.namelist():
        return {}  # np.savez() of no arrays, which np.load takes for a pickle
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
      return {name: npz[name] for name in npz.files}
  except ValueError as e:
    if "allow_pickle" in str(e):
      raise ValueError("it holds object arrays, which are never unpickled") from None
    raise ValueError(_first_line(e)) from None
  except (OSError, EOFError, zipfile.BadZipFile) as e:  # a damaged member
    raise ValueError(_first_line(e)) from None


def _first_line(error):
  return (str(error).splitlines() or [type(error).__name__])[0][:120]


def rename(source, target):
  tf.io.gfile.rename(source, target, overwrite=False)


_HALF_WRITTEN_S = 10  # an unreadable lock younger than this is being written, not stale


class DirectoryLock:
  """A lock file naming its holder (host, PID): one process writes a directory at a time.

  A lock whose holder is a dead process on this host is stale and taken over. A holder on
  another host cannot be checked from here; its lock is honoured until removed by hand.
  Locally the lock is created exclusively (O_EXCL); on remote filesystems (gs://) gfile has
  no exclusive create, so two processes starting within the same moment can both win there.
  """

  def __init__(self, path):
    self.path = path
    self.holder = {"host": socket.gethostname(), "pid": os.getpid(),
                   "token": uuid.uuid4().hex}

  def _read(self):
    try:
      return read_json(self.path)
    except (ValueError, tf.errors.NotFoundError):
      return None  # half-written or just released

  def _stale(self, holder):
    if holder is None:
      # Unreadable: just released (stale), or being written by its holder this instant.
      try:
        age_s = time.time() - tf.io.gfile.stat(self.path).mtime_nsec / 1e9
      except tf.errors.NotFoundError:
        return True
      return age_s > _HALF_WRITTEN_S
    if holder.get("host") != self.holder["host"]:
      return False  # a process on another host cannot be checked from here
    try:
      os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
      return True
    except (PermissionError, ValueError, TypeError):
      return False
    return False

  def _create(self):
    text = json.dumps(self.holder)
    if "://" in self.path:
      if tf.io.gfile.exists(self.path):
        return False
      write_text_atomic(self.path, text)
      return True
    tf.io.gfile.makedirs(os.path.dirname(self.path))
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(text)
    return True

  def acquire(self):
    for _ in range(3):
      if self._create():
        return self
      holder = self._read()
      if not self._stale(holder):
        who = holder or {"pid": "(starting)", "host": "(unknown)"}
        raise DirectoryBusyError(
            f"{os.path.dirname(self.path)} is in use by process {who.get('pid')} on "
            f"{who.get('host')} (lock {self.path}); wait for it to finish, or delete the "
            "lock if that process is gone")
      logging.warning(f"taking over the stale lock {self.path} of a process that is gone "
                      f"({holder})")
      try:
        tf.io.gfile.remove(self.path)
      except tf.errors.NotFoundError:
        pass
    raise RuntimeError(f"could not take the lock {self.path}")

  def release(self):
    holder = self._read()
    if holder and holder.get("token") == self.holder["token"]:
      tf.io.gfile.remove(self.path)

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
