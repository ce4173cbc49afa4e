"""Writes CIFAR-10 as the `.npz` that lmc_tf reads (x_train, y_train, x_test, y_test), from the
official `cifar-10-batches-py` directory, a TFDS copy, or a partial sample npz.

  .venv/bin/python tools/prepare_cifar10.py --out data/cifar10.npz \
      (--batches data/cifar-10-batches-py | --tfds_dir ~/tensorflow_datasets | --sample S.npz)

A sample npz holds x [N, 32, 32, 3] uint8, y and global_index: global_index < 50000 indexes the
training set, 50000 + i is test image i. Then train with cifar10.path='data/cifar10.npz'.
"""

import argparse
import os

import numpy as np

from lmc_tf.data import cifar10


def split_sample(path):
  """x_train, y_train, x_test, y_test from a sample npz with x, y and global_index."""
  with np.load(path, allow_pickle=False) as f:
    missing = [k for k in ("x", "y", "global_index") if k not in f.files]
    if missing:
      raise ValueError(f"{path} lacks {missing}; a sample npz holds x, y and global_index")
    x, y, index = f["x"], f["y"], f["global_index"]
  train, test = index < 50000, index >= 50000
  return dict(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--batches", help="the official cifar-10-batches-py directory")
  source.add_argument("--tfds_dir", help="a TFDS data_dir holding cifar10")
  source.add_argument("--sample", help="a partial sample npz (x, y, global_index)")
  parser.add_argument("--out", required=True, help="the .npz to write")
  args = parser.parse_args()
  if args.batches:
    arrays = cifar10.load_from_batches(args.batches)
  elif args.tfds_dir:
    arrays = cifar10.load_from_tfds(args.tfds_dir)
  else:
    arrays = split_sample(args.sample)
  arrays = cifar10.checked(arrays, args.sample or args.tfds_dir or args.batches)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez(args.out, **arrays)
  print(f"{args.out}: {len(arrays['x_train'])} train and {len(arrays['x_test'])} test images; "
        f"train with cifar10.path='{args.out}'")


if __name__ == "__main__":
  main()
