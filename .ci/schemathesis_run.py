"""schemathesis against the example project's API, served by gunicorn.

One seeded SQLite database (``migrate``, ``auth401_demo --yes``: the demo users whose ``alice``
the schema's login example names, and a dedicated account, ``schemathesis``, whose access token
is minted for the authenticated passes) in a temporary directory, a local-memory cache; nothing
shared is touched whatever DATABASE_URL/REDIS_URL say.  Each pass gets a fresh copy of that
database and its own gunicorn (on ``AUTH401_SCHEMATHESIS_PORT``, default 16420), so no pass
locks another out; the loopback is in ``NEVER_LOCK_NETWORKS`` (the runner is every client), so
a pass's failed logins never lock the address its later logins come from.

schemathesis runs every check, every phase (examples, coverage, fuzzing, stateful: the schema's
links lead from a login to the refresh and the protected views), a bounded number of examples
and a fixed seed (configuration: ``.ci/schemathesis.toml``), per pass; the stateful phase runs
on its own after ``auth401_unlock alice``, whom the fuzzing's wrong passwords lock:

- ``anonymous``: no credentials;
- ``token``: the dedicated account's Bearer token on every request;
- ``token, standardized_errors``: the same with ``RESPONSE_FORMAT = "standardized_errors"`` (and
  drf-standardized-errors as the fallback handler), so both formats' schemas meet real answers.

A pass fails on a finding not listed in ``.ci/schemathesis_allowed.txt`` (``METHOD PATH CHECK``
per line, with a reason), on any schemathesis error (fatal or not, e.g. ``NonFatalError``), on
a phase that errs or does not run (the stateful phase included), and on a traceback in the
server's log.  Per pass it prints each phase's status, test cases and findings, and the stateful
phase's transitions and answers.  The last line is ``N passed, N failed``.

    python .ci/schemathesis_run.py [--max-examples N] [--seed N] [--keep] [--pass LABEL]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ALLOWED = HERE / "schemathesis_allowed.txt"
CONFIG = HERE / "schemathesis.toml"
BIN = Path(sys.executable).parent
PHASES = ("examples", "coverage", "fuzzing", "stateful")
#: events that are a schemathesis error (fatal or not), an interruption
ERROR_EVENTS = {"NonFatalError", "FatalError", "Interrupted"}

SETTINGS = """\
import json
import os
from datetime import timedelta

from example_project.settings import *  # noqa: F403

from example_project._env import SQLITE_OPTIONS  # queue writers instead of "database is locked"

DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["SCHEMATHESIS_DATABASE"],
        "OPTIONS": SQLITE_OPTIONS,
    }}
}}
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}}}
DEBUG = False
SECRET_KEY = {secret!r}
# the authenticated passes' token is minted once, before them: it must outlive them all
SIMPLE_JWT = {{**SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(hours=1)}}  # noqa: F405
# schemathesis is every client here: its failed logins must not lock the address its later
# logins (the stateful phase's) come from; accounts still lock
AUTH401 = {{
    **AUTH401,  # noqa: F405
    "NEVER_LOCK_NETWORKS": ["127.0.0.0/8", "::1/128"],
    **json.loads(os.environ.get("SCHEMATHESIS_AUTH401") or "{{}}"),
}}
if AUTH401.get("RESPONSE_FORMAT") == "standardized_errors":
    INSTALLED_APPS = [*INSTALLED_APPS, "drf_standardized_errors"]  # noqa: F405
    REST_FRAMEWORK = {{
        **REST_FRAMEWORK,  # noqa: F405
        "DEFAULT_SCHEMA_CLASS": "auth401.contrib.standardized_errors.AutoSchema",
    }}
"""

MINT = """\
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken

user = get_user_model().objects.create_user("schemathesis", password={password!r})
print("TOKEN", AccessToken.for_user(user))
"""

STANDARDIZED = {
    "RESPONSE_FORMAT": "standardized_errors",
    "FALLBACK_EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
}


@dataclass(frozen=True)
class Pass:
    label: str
    token: bool
    auth401: dict[str, Any] = field(default_factory=dict)


PASSES = (
    Pass("anonymous", token=False),
    Pass("token", token=True),
    Pass("token, standardized_errors", token=True, auth401=STANDARDIZED),
)


@dataclass
class Report:
    """What one pass's NDJSON events say."""

    phases: dict[str, str] = field(default_factory=dict)  # phase -> status ("skip: reason")
    cases: Counter[str] = field(default_factory=Counter)  # phase -> test cases
    findings: set[tuple[str, str, str]] = field(default_factory=set)  # method, path, check
    errors: list[str] = field(default_factory=list)
    transitions: dict[str, int] = field(default_factory=dict)
    #: stateful phase: operation -> status code -> answers
    stateful: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    stop_reasons: list[str] = field(default_factory=list)


def allowed() -> dict[tuple[str, str, str], str]:
    found: dict[tuple[str, str, str], str] = {}
    reason = ""
    for line in ALLOWED.read_text().splitlines():
        text = line.strip()
        if text.startswith("#"):
            reason = text.lstrip("# ").strip()
        elif text:
            method, path, check = text.split()
            found[(method, path, check)] = reason
    return found


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def read_report(ndjson: Path, report: Report) -> Report:
    """``report`` with the events of one schemathesis run (``ndjson``) added."""
    report.stop_reasons.append("no EngineFinished")
    for line in ndjson.read_text().splitlines():
        for name, body in json.loads(line).items():
            if name in ERROR_EVENTS:
                report.errors.append(f"{name}: {json.dumps(body)[:1500]}")
            elif name == "PhaseStarted" and body["phase"]["name"] == "stateful":
                report.transitions = body.get("payload") or report.transitions
            elif name == "PhaseFinished" and body["phase"]["name"] in PHASES:
                phase = body["phase"]
                status = body["status"]
                if not phase.get("is_enabled", True):
                    status = f"skip: {phase.get('skip_reason')}"
                # each run reports every phase; one not selected (--phases) is not its verdict
                if status != "skip: disabled" or phase["name"] not in report.phases:
                    report.phases[phase["name"]] = status
            elif name == "EngineFinished":
                report.stop_reasons[-1] = body.get("stop_reason", "")
            elif name in {"ScenarioFinished", "FuzzScenarioFinished"}:
                read_scenario(report, body)
    return report


def read_scenario(report: Report, body: dict[str, Any]) -> None:
    phase = body.get("phase", "")
    recorder = body.get("recorder", {})
    if body.get("status") == "error":
        report.errors.append(f"scenario error in {phase} {recorder.get('label', '')}")
    report.cases[phase] += len(recorder.get("cases", {}))
    cases = recorder.get("cases", {})
    for case_id, checks in recorder.get("checks", {}).items():
        case = cases.get(case_id, {}).get("value", {})
        for check in checks:
            if str(check.get("status")).lower() not in {"success", "skip"}:
                method, _, path = recorder.get("label", "").partition(" ")
                if case.get("method") and case.get("path"):
                    method, path = case["method"], case["path"]
                report.findings.add((method, path, check["name"]))
    if phase == "stateful":
        for case_id, interaction in recorder.get("interactions", {}).items():
            case = cases.get(case_id, {}).get("value", {})
            response = interaction.get("response") or {}
            label = f"{case.get('method', '?')} {case.get('path', '?')}"
            answer = f"{response.get('status_code', 0)} {code_of(response)}".strip()
            report.stateful[label][answer] += 1


def code_of(response: dict[str, Any]) -> str:
    """The ``code`` of an answer's JSON body (auth401's, or drf-standardized-errors' first)."""
    try:
        body = json.loads(base64.b64decode(response["content"]["$base64"]))
    except (KeyError, TypeError, ValueError):
        return ""
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        body = body["errors"][0]
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def schemathesis(
    run: Pass, phases: str, schema: str, ndjson: Path, work: Path, env: dict[str, str], **kw: Any
) -> subprocess.CompletedProcess[str]:
    token, args = kw["token"], kw["args"]
    headers = ["-H", f"Authorization: Bearer {token}"] if run.token else []
    return subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", str(CONFIG), "--no-color"]
        + ["run", schema, "--phases", phases]
        + ["--max-examples", str(args.max_examples), "--seed", str(args.seed)]
        # one worker: CPython before 3.11.8/3.12.1 can fail ast.parse with "AST constructor
        # recursion depth mismatch" when two threads parse at once (hypothesis parses lambdas
        # to describe strategies), a NonFatalError
        + ["--workers", "1", "--warnings", "off"]
        + ["--report", "ndjson", "--report-ndjson-path", str(ndjson)]
        + headers
        + args.extra,
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )


def run_pass(
    run: Pass, work: Path, env: dict[str, str], token: str, port: int, args: argparse.Namespace
) -> tuple[Report, str]:
    """One pass on a fresh copy of the seeded database: (its report, the server's log).

    schemathesis runs twice: the examples, coverage and fuzzing phases, then the stateful
    phase, after ``auth401_unlock alice``: the fuzzing's wrong passwords for the login
    example's user lock her (as they should), and the stateful phase starts from her login."""
    slug = run.label.replace(", ", "-")
    database = work / f"{slug}.sqlite3"
    shutil.copy(work / "seed.sqlite3", database)
    env = {
        **env,
        "SCHEMATHESIS_DATABASE": str(database),
        "SCHEMATHESIS_AUTH401": json.dumps(run.auth401),
    }
    print(
        f"== schemathesis ({run.label}): all checks, phases {','.join(PHASES)}, "
        f"{args.max_examples} examples, seed {args.seed}",
        flush=True,
    )
    report = Report()
    log_path = work / f"{slug}.gunicorn.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "example_project.wsgi"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "2"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            schema = f"http://127.0.0.1:{port}/api/schema/?format=json"
            wait_for(schema, 30)
            for part, phases in enumerate(("examples,coverage,fuzzing", "stateful")):
                if part:
                    manage(env, "auth401_unlock", "alice", "--reason", "schemathesis")
                ndjson = work / f"{slug}.{part}.ndjson"
                finished = schemathesis(
                    run, phases, schema, ndjson, work, env, token=token, args=args
                )
                if not ndjson.exists():
                    print(finished.stdout[-4000:], finished.stderr[-4000:])
                    report.errors.append(f"schemathesis ({phases}) wrote no report")
                    continue
                errors = len(report.errors)
                read_report(ndjson, report)
                if report.findings - set(allowed()) or len(report.errors) > errors:
                    print(finished.stdout[-6000:])
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    print(f"   ran in {time.monotonic() - started:.0f} s")
    return report, log_path.read_text(errors="replace")


def verdict(run: Pass, report: Report, server_log: str) -> list[str]:
    """What fails this pass, after printing its figures."""
    problems = list(report.errors)
    for phase in PHASES:
        status = report.phases.get(phase, "not run")
        print(f"   {phase}: {status}, {report.cases[phase]} test cases")
        if status != "success":
            problems.append(f"phase {phase}: {status}")
    if report.transitions:
        print(
            "   stateful transitions: "
            + ", ".join(f"{key} {value}" for key, value in report.transitions.items())
        )
    for operation, statuses in sorted(report.stateful.items()):
        answers = ", ".join(f"{answer} x{count}" for answer, count in sorted(statuses.items()))
        print(f"   stateful {operation}: {answers}")
    for reason in report.stop_reasons:
        if reason != "completed":
            problems.append(f"schemathesis stopped: {reason}")
    accepted = allowed()
    for finding in sorted(report.findings):
        if finding in accepted:
            print(f"   allowed: {' '.join(finding)} ({accepted[finding]})")
        else:
            problems.append(f"FINDING {' '.join(finding)}")
    if "Traceback" in server_log:
        print(server_log[-4000:])
        problems.append("a traceback in the server log")
    print(f"   {len(report.findings)} findings, {len(problems)} problems")
    for problem in problems:
        print(f"   {run.label}: {problem}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--pass",
        dest="passes",
        action="append",
        choices=[p.label for p in PASSES],
        help="run only this pass (repeatable)",
    )
    parser.add_argument("extra", nargs="*", help="more schemathesis options (after --)")
    args = parser.parse_args()
    port = int(os.environ.get("AUTH401_SCHEMATHESIS_PORT", "16420"))
    work = Path(tempfile.mkdtemp(prefix="auth401-schemathesis-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["PYTHONPATH"] = os.pathsep.join([str(work), str(ROOT)])
    env["DJANGO_SETTINGS_MODULE"] = "schemathesis_settings"
    env["SCHEMATHESIS_DATABASE"] = str(work / "seed.sqlite3")
    secret = secrets.token_urlsafe(48)
    # as a deployment runs it: DEBUG off, its own signing key (read by the example settings)
    env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secret)
    (work / "schemathesis_settings.py").write_text(SETTINGS.format(secret=secret))
    failed: list[str] = []
    cases = 0
    try:
        manage(env, "migrate", "-v", "0")
        manage(env, "auth401_demo", "--yes")  # alice, the schema's login example, and the rest
        minted = manage(env, "shell", "-c", MINT.format(password=secrets.token_urlsafe(24)))
        token = next(line.split()[1] for line in minted.splitlines() if line.startswith("TOKEN "))
        for run in PASSES:
            if args.passes and run.label not in args.passes:
                continue
            report, server_log = run_pass(run, work, env, token, port, args)
            cases += sum(report.cases.values())
            failed += [f"{run.label}: {p}" for p in verdict(run, report, server_log)]
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{cases} test cases; {len(failed)} problems")
    print(f"{cases - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
