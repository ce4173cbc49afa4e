"""Permutation alignment of hidden units (Ainsworth et al. 2023, "Git Re-Basin").

spec.py derives which axes of which variables share a permutation from a model's graph,
permute.py applies permutations exactly, matching.py finds them (weight and activation
matching).
"""
