"""Masks: global magnitude pruning (IMP), its baselines, and masks on disk."""
