"""Datasets (local files first, TFDS second) and the seeded input pipeline."""
