#!/usr/bin/env bash
# schemathesis (all checks, bounded examples, fixed seed) against the example project served
# by gunicorn, without and with a token of a dedicated account; findings not listed in
# .ci/schemathesis_allowed.txt fail.  Run from the repository root; $PYTHON is the project's
# venv python (default .venv/bin/python), with the dev extra installed (schemathesis,
# gunicorn).  Port: AUTH401_SCHEMATHESIS_PORT (default 16420).  Last line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" .ci/schemathesis_run.py "$@"
