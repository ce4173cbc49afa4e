"""Masks as {layer name: 0/1 array}: sparsity reports, digests, and .npz files on disk.

They are applied to a model in models/layers.py (MaskedDense, MaskedConv2D, set_masks).
"""

import hashlib
import io

import numpy as np
import tensorflow as tf

from lmc_tf import files


def prunable(masks, layers_to_ignore=()):
  """The layer names that pruning may touch, in the masks' order."""
  unknown = sorted(set(layers_to_ignore) - set(masks))
  if unknown:
    raise ValueError(f"layers_to_ignore names layers the model does not have: {unknown}; "
                     f"its prunable layers are {list(masks)}")
  return [name for name in masks if name not in layers_to_ignore]


def density(masks, layers_to_ignore=()):
  """Fraction of the prunable (not ignored) weights that remain."""
  names = prunable(masks, layers_to_ignore)
  total = sum(masks[n].size for n in names)
  return float(sum(masks[n].sum() for n in names) / total) if total else 1.0


def sparsity_report(masks, layers_to_ignore=()):
  """Total, remaining and density overall (over prunable layers) and per layer."""
  names = prunable(masks, layers_to_ignore)
  total = int(sum(masks[n].size for n in names))
  remaining = int(sum(masks[n].sum() for n in names))
  return {"total": total, "remaining": remaining,
          "density": remaining / total if total else 1.0,
          "layers_to_ignore": sorted(layers_to_ignore),
          "per_layer": {name: {"total": int(m.size), "remaining": int(m.sum()),
                               "density": float(m.sum() / m.size)}
                        for name, m in masks.items()}}


def digest(masks):
  h = hashlib.sha256()
  for name in sorted(masks):
    h.update(name.encode())
    h.update(np.ascontiguousarray(masks[name], dtype=np.uint8).tobytes())
  return h.hexdigest()[:16]


def save(path, masks):
  """Writes the masks to an .npz atomically."""
  buf = io.BytesIO()
  np.savez_compressed(buf, **{k: np.asarray(v, np.uint8) for k, v in masks.items()})
  files.write_bytes_atomic(path, buf.getvalue())


def load(path):
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"mask file {path!r} does not exist")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  try:
    masks = {name: m.astype(np.float32) for name, m in files.npz_arrays(data).items()}
  except ValueError as e:
    raise ValueError(f"mask file {path!r} is not a readable .npz of 0/1 arrays ({e})") from None
  if not masks:
    raise ValueError(f"mask file {path!r} holds no masks")
  bad = [n for n, m in masks.items() if not np.all((m == 0) | (m == 1))]
  if bad:
    raise ValueError(f"mask file {path!r}: layers {bad} hold values other than 0 and 1")
  return masks
