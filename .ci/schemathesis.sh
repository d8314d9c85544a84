#!/usr/bin/env bash
# schemathesis (every check, every phase: examples, coverage, fuzzing, stateful; bounded
# examples, fixed seed; configuration in .ci/schemathesis.toml) against the example project
# served by gunicorn, in three passes on fresh copies of one seeded database: without
# credentials, with a token of a dedicated account, and with that token under
# RESPONSE_FORMAT = "standardized_errors".  Findings not listed in .ci/schemathesis_allowed.txt,
# any schemathesis error (fatal or not) and a phase that does not run fail.  Run from the
# repository root; $PYTHON is the project's venv python (default .venv/bin/python), with the dev
# extra installed (schemathesis, gunicorn, drf-standardized-errors).  Port:
# AUTH401_SCHEMATHESIS_PORT (default 16420).  Last line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" .ci/schemathesis_run.py "$@"
