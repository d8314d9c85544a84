#!/usr/bin/env bash
# simplejwt's and DRF's own authentication, serializer, view and integration tests, run with
# auth401 swapped in as the README configures it, compared with the expected differences in
# .ci/upstream_expected_failures.txt.  Run from the repository root; $PYTHON is the project's
# venv python (default .venv/bin/python).  Last line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" .ci/upstream_suites.py "$@"
