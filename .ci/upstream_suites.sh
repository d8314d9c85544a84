#!/usr/bin/env bash
# simplejwt's and DRF's whole test suites (with the test dependencies they declare, installed
# into $PYTHON's environment), run with auth401 swapped in as the README configures it, compared
# with the expected differences in .ci/upstream_expected_failures.txt (each by test id and by
# the assertion it fails on).  Run from the repository root; $PYTHON is the project's venv python
# (default .venv/bin/python).  Per suite: passed, listed, skipped; last line of each pass:
# "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
status=0
"$PYTHON" .ci/upstream_suites.py "$@" || status=1
# The compatibility setting: upstream's wire format; its section lists only what the setting
# cannot change (exceptions raised in Python, the installation guide's class order).
"$PYTHON" .ci/upstream_suites.py --settings '{"RESPONSE_FORMAT": "upstream"}' \
    --section differences-upstream-format "$@" || status=1
exit $status
