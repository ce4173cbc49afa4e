#!/usr/bin/env bash
# The README's second command: install into .venv if needed, then run the test suite.
#   bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
# Two malloc arenas per process: glibc's default (8 per core) lets the long-lived workers'
# memory fragment as thousands of TF functions come and go.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
# One worker per core: most of the suite's time is single-threaded graph tracing.
# --dist loadscope keeps each module on one worker, so its module-scoped fixtures (trained
# models) are built once; --no-loadscope-reorder hands the modules out in the order
# tests/conftest.py sorts them, the longest first. --durations=25 lists the slowest tests;
# `-m "not slow"` is the fast tier.
exec .venv/bin/python -m pytest -q -n auto --dist loadscope --no-loadscope-reorder \
  --durations=25 "$@"
