"""BUILD mirrors the tree: every module and every test has its Bazel target."""

import glob
import os
import re

from tests.conftest import REPO


def _build_strings():
  with open(os.path.join(REPO, "BUILD")) as f:
    return set(re.findall(r'"([^"]+\.py)"', f.read()))


def test_every_module_under_lmc_tf_is_in_build():
  modules = {os.path.relpath(p, REPO)
             for p in glob.glob(os.path.join(REPO, "lmc_tf", "**", "*.py"), recursive=True)}
  listed = _build_strings()
  missing = sorted(modules - listed)
  assert not missing, f"add to BUILD's lmc_tf py_library: {missing}"
  stale = sorted(p for p in listed if p.startswith("lmc_tf/") and p not in modules)
  assert not stale, f"BUILD lists modules that do not exist: {stale}"


def test_every_test_file_is_a_py_test():
  tests = {os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "tests", "*.py"))}
  listed = _build_strings()
  missing = sorted(tests - listed)
  assert not missing, f"add to BUILD: {missing}"
