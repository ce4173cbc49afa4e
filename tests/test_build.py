"""BUILD covers the tree: its globs, evaluated here as Bazel would, take in every module and
package data file, every test file becomes a py_test, and WORKSPACE downloads nothing.

BUILD is evaluated as Python (the Starlark it uses is a subset) with stand-ins for the rules,
so these tests read the targets BUILD really declares, not strings that look like paths.
"""

import fnmatch
import glob
import os
import re

import pytest

from tests.conftest import REPO

# Directories that are not part of the main Bazel package's tree.
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache"}


def _bazelignored():
  path = os.path.join(REPO, ".bazelignore")
  if not os.path.exists(path):
    return set()
  with open(path) as f:
    return {line.strip().rstrip("/") for line in f if line.strip() and not line.startswith("#")}


def _package_files():
  """Files of the root package: not under a subpackage (a directory with a BUILD file), nor
  under a directory in .bazelignore, nor bazel's output symlinks."""
  ignored = _bazelignored()
  files = []
  for dirpath, dirnames, filenames in os.walk(REPO):
    rel = os.path.relpath(dirpath, REPO)
    rel = "" if rel == "." else rel
    keep = []
    for d in dirnames:
      sub = os.path.join(rel, d)
      if (d in _SKIP_DIRS or d.startswith("bazel-") or sub in ignored
          or os.path.exists(os.path.join(REPO, sub, "BUILD"))):
        continue
      keep.append(d)
    dirnames[:] = keep
    files.extend(os.path.join(rel, f) for f in filenames)
  return files


def _matches(pattern, path):
  """Bazel's glob matching: '**' is any number of directories, other segments fnmatch."""
  def match(pat, parts):
    if not pat:
      return not parts
    if pat[0] == "**":
      return any(match(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and match(pat[1:], parts[1:])
  return match(pattern.split("/"), path.split("/"))


def _glob(include, exclude=(), **unused_kwargs):
  files = _package_files()
  return sorted(p for p in files
                if any(_matches(i, p) for i in include)
                and not any(_matches(e, p) for e in exclude))


def _evaluate(name):
  """Runs the Starlark file `name` with recording stand-ins; returns {target name: attrs}."""
  targets = {}

  def rule(kind):
    def record(**attrs):
      assert attrs["name"] not in targets, f"{name} declares {attrs['name']} twice"
      targets[attrs["name"]] = dict(attrs, kind=kind)
    return record

  env = {"glob": _glob, "package": lambda **kw: None, "load": lambda *a: None}
  for kind in ("py_library", "py_binary", "py_test", "local_repository", "http_archive",
               "git_repository", "register_toolchains", "venv_python", "workspace"):
    env[kind] = rule(kind)
  env["register_toolchains"] = lambda *labels: None
  env["workspace"] = lambda **kw: None
  with open(os.path.join(REPO, name)) as f:
    source = f.read()
  # load() takes string arguments only and binds names: stand-in values bound by name.
  for names in re.findall(r"^load\(([^)]*)\)", source, re.M):
    for symbol in re.findall(r'"([^"]+)"', names)[1:]:
      env.setdefault(symbol, rule(symbol))
  exec(compile(source, name, "exec"), env)  # pylint: disable=exec-used
  targets["__globals__"] = {"kind": "globals", **env}
  return targets


@pytest.fixture(scope="module")
def build():
  targets = _evaluate("BUILD")
  targets.pop("__globals__")
  return targets


def _repo_glob(pattern):
  return {os.path.relpath(p, REPO)
          for p in glob.glob(os.path.join(REPO, pattern), recursive=True)}


def test_the_library_has_every_module(build):
  modules = _repo_glob("lmc_tf/**/*.py")
  assert modules, "no modules found under lmc_tf/"
  srcs = set(build["lmc_tf"]["srcs"])
  assert not sorted(modules - srcs), f"BUILD's lmc_tf py_library misses {sorted(modules - srcs)}"
  assert not sorted(srcs - modules), f"BUILD's lmc_tf py_library lists {sorted(srcs - modules)}"


def test_the_library_carries_the_package_data(build):
  data = set(build["lmc_tf"]["data"])
  bundled = _repo_glob("lmc_tf/data/bundled/mnist/*.gz")
  assert bundled, "the bundled MNIST files are missing"
  assert bundled <= data, f"lmc_tf's data misses {sorted(bundled - data)}"
  # pyproject.toml's package data is what an install carries: Bazel's library carries it too.
  with open(os.path.join(REPO, "pyproject.toml")) as f:
    section = f.read().split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
  for package, patterns in re.findall(r'"([\w.]+)"\s*=\s*\[([^\]]*)\]', section):
    for pattern in re.findall(r'"([^"]+)"', patterns):
      wanted = _repo_glob(os.path.join(package.replace(".", "/"), pattern))
      assert wanted <= data, f"lmc_tf's data misses {sorted(wanted - data)}"
  configs = _repo_glob("gin_configs/**/*.gin")
  assert configs and configs <= data, f"lmc_tf's data misses {sorted(configs - data)}"


def test_every_test_file_is_a_py_test(build):
  tests = _repo_glob("tests/test_*.py")
  py_tests = {name: t for name, t in build.items() if t["kind"] == "py_test"}
  by_file = {}
  for name, target in py_tests.items():
    test_srcs = [s for s in target["srcs"] if os.path.basename(s).startswith("test_")]
    assert len(test_srcs) == 1, f"py_test {name} runs {test_srcs}"
    by_file[test_srcs[0]] = name
    assert target["args"] == [f"$(location {test_srcs[0]})"], name
    assert target["main"] in target["srcs"], name
  assert not sorted(tests - set(by_file)), f"not a py_test: {sorted(tests - set(by_file))}"
  assert not sorted(set(by_file) - tests), f"py_tests of no file: {sorted(set(by_file) - tests)}"
  for path, name in by_file.items():
    assert name == os.path.basename(path)[:-len(".py")], f"{path} is py_test {name}"


def test_the_large_tests_are_py_tests():
  targets = _evaluate("BUILD")
  large = targets.pop("__globals__")["LARGE_TESTS"]
  for name in large:
    assert name in targets and targets[name]["kind"] == "py_test", f"LARGE_TESTS: no {name}"
    assert targets[name]["size"] == "large", name


def test_the_helpers_are_the_test_support_library(build):
  helpers = _repo_glob("tests/*.py") - _repo_glob("tests/test_*.py")
  assert {"tests/conftest.py", "tests/__init__.py"} <= helpers
  srcs = set(build["test_support"]["srcs"])
  assert helpers == srcs, f"test_support differs from the helpers: {sorted(helpers ^ srcs)}"
  for name, target in build.items():
    if target["kind"] == "py_test":
      assert ":test_support" in target["deps"], name


def test_every_file_a_target_names_exists(build):
  for name, target in build.items():
    for attr in ("srcs", "data"):
      for path in target.get(attr, []):
        if not path.startswith((":", "@", "//")):
          assert os.path.isfile(os.path.join(REPO, path)), f"{name}.{attr}: {path} is not a file"
    if "main" in target:
      assert target["main"] in target["srcs"], name


def test_workspace_downloads_nothing():
  workspace = _evaluate("WORKSPACE")
  fetched = sorted(n for n, t in workspace.items() if t["kind"] in ("http_archive", "git_repository"))
  assert not fetched, f"WORKSPACE downloads {fetched}: bazel test must work offline"
  local = {n: t for n, t in workspace.items() if t["kind"] == "local_repository"}
  # The repositories Bazel's default WORKSPACE suffix would download for a py_test.
  assert {"rules_cc", "rules_java", "rules_proto", "remote_coverage_tools"} <= set(local)
  if "TEST_SRCDIR" in os.environ:
    return  # under `bazel test`, which got this far only because those repositories load
  for name, target in local.items():
    assert os.path.isfile(os.path.join(REPO, target["path"], "WORKSPACE")), name
