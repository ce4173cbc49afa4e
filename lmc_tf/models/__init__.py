"""Masked Keras models of Table 1, chosen by name through the registry."""
