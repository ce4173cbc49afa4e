#!/usr/bin/env bash
# The README's second command: install into .venv if needed, then run the test suite.
#   bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ensure_venv.sh
# One worker per core: most of the suite's time is single-threaded graph tracing.
exec .venv/bin/python -m pytest -q -n auto "$@"
