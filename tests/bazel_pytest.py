"""Bazel's py_test entry point: runs the pytest file passed as the first argument."""

import sys

import pytest

if __name__ == "__main__":
  sys.exit(pytest.main(["-q", *sys.argv[1:]]))
