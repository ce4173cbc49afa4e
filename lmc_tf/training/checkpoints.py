"""Reading checkpoints: restore into a model, check that one is whole, set a broken one aside.

A run keeps its checkpoints under layout.checkpoint_dir; a checkpoint whose files are
truncated or damaged (a disk that filled up, a copy cut short) is never restored into a
model: it is read once in full first, and if that fails it is renamed out of the way.
"""

import time

import tensorflow as tf

from lmc_tf import files


class UnreadableCheckpointError(ValueError):
  """A checkpoint whose files cannot be read (truncated, damaged, missing a part)."""

  def __init__(self, path, error):
    super().__init__(f"checkpoint {path} cannot be read ({_first_line(error)})")
    self.path = path


def _first_line(error):
  return (str(error).splitlines() or [type(error).__name__])[0][:300]


def check_readable(path):
  """Reads every tensor of the checkpoint at `path`; raises UnreadableCheckpointError."""
  try:
    reader = tf.train.load_checkpoint(path)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except (IndexError, ValueError, tf.errors.OpError) as e:
    raise UnreadableCheckpointError(path, e) from None


def restore(checkpoint, path):
  """Restores `path` into `checkpoint`, with a clear error if it was made by another model,
  or cannot be read."""
  try:
    # expect_partial: restoring only the model from a full run's checkpoint is intended.
    checkpoint.restore(path).assert_existing_objects_matched().expect_partial()
  except (IndexError, tf.errors.DataLossError, tf.errors.NotFoundError,
          tf.errors.OutOfRangeError) as e:
    raise UnreadableCheckpointError(path, e) from None
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
    raise ValueError(
        f"checkpoint {path} does not fit this model: it was written by another model or "
        f"config. Use a fresh --model_dir. ({_first_line(e)})") from None


def set_aside(path):
  """Renames the files of the checkpoint at `path` to <path>.unreadable-<time>.*; returns
  that prefix. Nothing is deleted: the files stay for a person to look at."""
  aside = f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
  for name in tf.io.gfile.glob(f"{path}.*"):
    if ".unreadable-" not in name:
      files.rename(name, aside + name[len(path):])
  return aside


def remove_resume_checkpoints(directory):
  """Deletes the resume checkpoints in `directory` once a run's final checkpoint supersedes
  them; the ones set aside as unreadable stay, for a person to look at."""
  kept = [name for name in files.listdir(directory) if ".unreadable-" in name]
  if not kept:
    files.rmtree(directory)
    return
  for name in files.listdir(directory):
    if name not in kept:  # checkpoint files, the state file, a killed save's *_temp/ dir
      path = files.join(directory, name)
      if files.isdir(path):
        files.rmtree(path)
      else:
        tf.io.gfile.remove(path)


def checkpoint_tensors(path):
  """Every tensor stored in a checkpoint, by key (for tests and tools)."""
  reader = tf.train.load_checkpoint(path)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
