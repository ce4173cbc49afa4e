#!/usr/bin/env bash
# The test suite under Bazel, offline: native py_test targets, one per tests/test_*.py, run
# by this checkout's .venv/bin/python (WORKSPACE, tools/bazel/). Needs Bazel 4, e.g. Debian's
# `apt-get install bazel-bootstrap`.
#   bash tools/bazel_test.sh                      # every test target
#   bash tools/bazel_test.sh //:test_schedules    # some; other bazel test flags go here too
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
if ! command -v bazel >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's bazel-bootstrap (Bazel 4)..."
    apt-get update -qq && apt-get install -y -qq bazel-bootstrap >/dev/null
  else
    echo "bazel not found: apt-get install bazel-bootstrap (Debian's Bazel 4)" >&2
    exit 1
  fi
fi
# Tests reach ../shared/data through the shared_data fixture; a Bazel test runs in its
# runfiles tree, where ../shared is not, so name it (tests that need it skip without it).
if [ -z "${LMC_TF_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then
  export LMC_TF_SHARED_DATA="$(cd ../shared/data && pwd)"
fi
targets=()
for arg in "$@"; do
  case "$arg" in -*) ;; *) targets+=("$arg") ;; esac
done
if [ ${#targets[@]} -eq 0 ]; then
  set -- "$@" //...
fi
# One test at a time per core: each test target is one pytest process.
exec bazel test --local_test_jobs="$(nproc)" "$@"
