"""schemathesis against the example project's API, served by gunicorn.

A fresh SQLite database and a local-memory cache in a temporary directory (whatever
DATABASE_URL/REDIS_URL say: nothing shared is touched), a dedicated account
(``schemathesis``) whose access token is minted for the second run, gunicorn on
``AUTH401_SCHEMATHESIS_PORT`` (default 16420).  schemathesis runs every check, a bounded number
of examples, a fixed seed: once without credentials, once with the account's token.  Findings
are compared with ``.ci/schemathesis_allowed.txt`` (``METHOD PATH CHECK`` per line, with a
reason); any other finding fails.  The last line is ``N passed, N failed``.

    python .ci/schemathesis_run.py [--max-examples N] [--seed N] [--keep]
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ALLOWED = HERE / "schemathesis_allowed.txt"
BIN = Path(sys.executable).parent

SETTINGS = """\
from example_project.settings import *  # noqa: F403

from example_project._env import SQLITE_OPTIONS  # queue writers instead of "database is locked"

DATABASES = {{
    "default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}, "OPTIONS": SQLITE_OPTIONS}}
}}
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}}}
DEBUG = False
SECRET_KEY = {secret!r}
"""

MINT = """\
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import RefreshToken

user = get_user_model().objects.create_user("schemathesis", password={password!r})
print("TOKEN", RefreshToken.for_user(user).access_token)
"""


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


def findings(ndjson: Path) -> tuple[set[tuple[str, str, str]], int]:
    """The (method, path, check) of every failed check, and how many test cases ran."""
    failed: set[tuple[str, str, str]] = set()
    cases = 0
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        for name, body in event.items():
            if name != "ScenarioFinished":
                continue
            recorder = body.get("recorder", {})
            cases += len(recorder.get("cases", {}))
            label = recorder.get("label", "")
            method, _, path = label.partition(" ")
            for checks in recorder.get("checks", {}).values():
                for check in checks:
                    if str(check.get("status")).lower() not in {"success", "skip"}:
                        failed.add((method, path, check["name"]))
    return failed, cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("extra", nargs="*", help="more schemathesis options (after --)")
    args = parser.parse_args()
    port = int(os.environ.get("AUTH401_SCHEMATHESIS_PORT", "16420"))
    work = Path(tempfile.mkdtemp(prefix="auth401-schemathesis-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["PYTHONPATH"] = os.pathsep.join([str(work), str(ROOT)])
    env["DJANGO_SETTINGS_MODULE"] = "schemathesis_settings"
    secret = secrets.token_urlsafe(48)
    # as a deployment runs it: DEBUG off, its own signing key (read by the example settings)
    env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secret)
    (work / "schemathesis_settings.py").write_text(
        SETTINGS.format(db=str(work / "db.sqlite3"), secret=secret)
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    gunicorn = None
    try:
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
        mint = MINT.format(password=secrets.token_urlsafe(24))
        output = subprocess.run(
            [*manage, "shell", "-c", mint], env=env, check=True, cwd=ROOT, capture_output=True
        ).stdout.decode()
        token = next(line.split()[1] for line in output.splitlines() if line.startswith("TOKEN "))
        log = open(work / "gunicorn.log", "wb")  # noqa: SIM115 - closed with the process
        gunicorn = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "example_project.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        schema = f"http://127.0.0.1:{port}/api/schema/?format=json"
        wait_for(schema, 30)
        failed: set[tuple[str, str, str]] = set()
        cases = 0
        for label, headers in (
            ("anonymous", []),
            ("token", ["-H", f"Authorization: Bearer {token}"]),
        ):
            report = work / f"{label}.ndjson"
            print(
                f"== schemathesis ({label}): all checks, "
                f"{args.max_examples} examples, seed {args.seed}",
                flush=True,
            )
            run = subprocess.run(
                [
                    str(BIN / "schemathesis"),
                    "run",
                    schema,
                    "--checks",
                    "all",
                    "--max-examples",
                    str(args.max_examples),
                    "--seed",
                    str(args.seed),
                    "--workers",
                    "2",
                    "--warnings",
                    "off",
                    "--no-color",
                    "--report",
                    "ndjson",
                    "--report-ndjson-path",
                    str(report),
                    *headers,
                    *args.extra,
                ],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
            )
            if not report.exists():
                print(run.stdout[-4000:], run.stderr[-4000:])
                failed.add(("-", label, "schemathesis did not run"))
                continue
            found, ran = findings(report)
            cases += ran
            failed |= found
            if found - set(allowed()):
                print(run.stdout[-6000:])
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            gunicorn.wait(timeout=30)
        server_errors = (
            (work / "gunicorn.log").read_text(errors="replace")
            if (work / "gunicorn.log").exists()
            else ""
        )
        if "Traceback" in server_errors:
            print(server_errors[-4000:])
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    accepted = allowed()
    unexpected = sorted(failed - set(accepted))
    for method, path, check in sorted(failed & set(accepted)):
        print(f"allowed: {method} {path} {check} ({accepted[(method, path, check)]})")
    for method, path, check in unexpected:
        print(f"FINDING {method} {path} {check}")
    if "Traceback" in server_errors:
        unexpected.append(("-", "-", "a traceback in the server log"))
    print(f"{cases} test cases; {len(failed)} findings, {len(unexpected)} not allowed")
    passed = cases - len(unexpected)
    print(f"{passed} passed, {len(unexpected)} failed")
    return 1 if unexpected or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
