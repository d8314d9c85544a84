"""Two app servers of the example project (two gunicorn masters, two sync workers each) that
share the test's PostgreSQL database and one Redis: wrong passwords for one account, sent from
several threads and split across both servers, reach the hasher exactly ``FAILURE_LIMIT`` times
before the lock, every later answer is the lock, and each failure leaves exactly one
``AuthEvent``, under the request id the client sent.

The servers run a settings module written for the test (the example project's settings with a
password hasher that counts its checks in a file, across processes) against the database this
test reads.  The events are moved into ``AuthEvent`` with ``manage.py auth401_drain`` before
the rows are counted; a version of auth401 without that command skips the row check, saying so.

Needs PostgreSQL (``DATABASE_URL``), Redis (``REDIS_URL``) and gunicorn; skips otherwise.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import get_commands
from django.db import connection

from auth401.models import AuthEvent
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
FAILURE_LIMIT = 5
REQUESTS = 40  # wrong passwords in the flood, far below the address limit set below
THREADS = 8
WRONG = "not-the-password"
RIGHT = "the-right-password-1"

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("gunicorn") is None,
        reason="needs gunicorn for two app servers (pip install gunicorn; the bench extra has it)",
    ),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL"),
        reason="needs Redis (REDIS_URL): both servers share its counters",
    ),
    pytest.mark.django_db(transaction=True),
]

SERVER_SETTINGS = """\
import os

from example_project.settings import *  # noqa: F403
from example_project.settings import AUTH401

DEBUG = False
PASSWORD_HASHERS = ["two_servers_hasher.CountingMD5PasswordHasher"]
AUTH401 = {**AUTH401, "FAILURE_LIMIT": FAILURE_LIMIT_VALUE, "IP_FAILURE_LIMIT": 10_000}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_URL"],
        "KEY_PREFIX": os.environ["TWO_SERVERS_KEY_PREFIX"],
    }
}
""".replace("FAILURE_LIMIT_VALUE", str(FAILURE_LIMIT))

SERVER_HASHER = """\
import os

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingMD5PasswordHasher(MD5PasswordHasher):
    # One byte per password check, appended (atomically) by whichever worker checks it.
    def verify(self, password, encoded):
        fd = os.open(os.environ["TWO_SERVERS_CHECKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)
        return super().verify(password, encoded)
"""


def _database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


def _wait_until_up(server: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/me/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"gunicorn on port {port} did not start:\n{log.read_text()[-3000:]}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def _forget_keys(prefix: str) -> None:
    """The servers' Redis keys (this run's prefix only: never FLUSHDB a shared Redis)."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _request(port: int, index: int, username: str, request_id: str, password: str = WRONG) -> dict:
    """Basic on GET /api/me/ for even indexes, POST /api/token/ for odd ones."""
    headers = {"X-Request-ID": request_id}
    if index % 2:
        method, path = "POST", "/api/token/"
        body = json.dumps({"username": username, "password": password})
        headers["Content-Type"] = "application/json"
    else:
        method, path, body = "GET", "/api/me/", None
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        return {
            "request_id": request_id,
            "status": response.status,
            "headers": {k.lower(): v for k, v in response.getheaders()},
            "body": json.loads(payload),
        }
    finally:
        conn.close()


def _assert_whole_answer(answer: dict) -> None:
    body, headers = answer["body"], answer["headers"]
    expected_status = {"credentials_invalid": 401, "account_locked": 403, "login_busy": 429}
    assert body["code"] in expected_status, answer
    assert answer["status"] == body["status"] == expected_status[body["code"]], answer
    assert body["request_id"] == headers["x-request-id"] == answer["request_id"], answer
    assert headers["content-type"] == "application/json", answer
    assert "no-store" in headers["cache-control"], answer
    if body["code"] == "credentials_invalid":
        assert headers["www-authenticate"], answer
        assert "retry_after" not in body, answer
    else:  # the lock and a busy answer both say when to come back
        assert int(headers["retry-after"]) == body["retry_after"] > 0, answer


def test_a_flood_split_across_two_servers_locks_at_the_limit_and_audits_each_failure(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): two servers share one database")
    (tmp_path / "two_servers_settings.py").write_text(SERVER_SETTINGS)
    (tmp_path / "two_servers_hasher.py").write_text(SERVER_HASHER)
    checks = tmp_path / "checks"
    checks.touch()
    run = secrets.token_hex(6)
    username = f"two-servers-{run}"
    get_user_model().objects.create(
        username=username, password=MD5PasswordHasher().encode(RIGHT, "two-servers")
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "two_servers_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DATABASE_URL": _database_url(),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_DEBUG": "0",
        "TWO_SERVERS_KEY_PREFIX": f"auth401-two-servers-{run}",
        "TWO_SERVERS_CHECKS": str(checks),
    }
    try:
        answers, errors, mark = _flood_two_servers(tmp_path, env, username, run)
        _check(answers, errors, checks, env, mark, username)
    finally:
        _forget_keys(env["TWO_SERVERS_KEY_PREFIX"])


def _flood_two_servers(
    tmp_path: Path, env: dict[str, str], username: str, run: str
) -> tuple[list[dict], list[BaseException], int]:
    """Start the two servers, flood them, send one right password to each, stop them."""
    ports = [free_port(), free_port()]
    servers: list[subprocess.Popen] = []
    answers: list[dict] = []
    errors: list[BaseException] = []
    try:
        for port in ports:
            log = tmp_path / f"gunicorn-{port}.log"
            with open(log, "wb") as out:
                command = [sys.executable, "-m", "gunicorn", "--workers", "2",
                           "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
                           "--timeout", "60", "example_project.wsgi:application"]  # fmt: skip
                servers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out))
            _wait_until_up(servers[-1], port, log)
        mark = AuthEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

        cursor = iter(range(REQUESTS))
        lock = threading.Lock()
        deadline = time.monotonic() + 120

        def flood() -> None:
            while time.monotonic() < deadline:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                try:
                    # Different wrong passwords: a repeated one would count once
                    # (REPEATED_PASSWORD_MEMORY) and identical ones share a place in flight.
                    request_id, guess = f"two-servers-{run}-{i:03d}", f"{WRONG}-{i}"
                    answer = _request(ports[i % 2], i, username, request_id, password=guess)
                except BaseException as exc:  # reported by the test, never lost in a thread
                    errors.append(exc)
                    return
                with lock:
                    answers.append(answer)

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=150)
        # After the flood, each server refuses the right password too, without checking it:
        # the lock holds on both.
        for k, port in enumerate(ports):
            request_id = f"two-servers-{run}-after-{k}"
            answers.append(_request(port, k, username, request_id, password=RIGHT))
    finally:
        for server in servers:
            _stop(server)  # SIGTERM: whatever a server still holds is flushed
    return answers, errors, mark


def _check(
    answers: list[dict],
    errors: list[BaseException],
    checks: Path,
    env: dict[str, str],
    mark: int,
    username: str,
) -> None:
    assert not errors, errors
    assert len(answers) == REQUESTS + 2
    for answer in answers:
        _assert_whole_answer(answer)
    codes = Counter(answer["body"]["code"] for answer in answers)
    # Exactly FAILURE_LIMIT passwords reached the hasher, across both servers and all workers;
    # every other attempt was refused without a check.
    assert checks.stat().st_size == FAILURE_LIMIT, codes
    assert codes["credentials_invalid"] <= FAILURE_LIMIT
    assert [a["body"]["code"] for a in answers[-2:]] == ["account_locked", "account_locked"]

    if "auth401_drain" not in get_commands():
        pytest.skip(
            "the lock held at FAILURE_LIMIT checks; the rows are not checked: this auth401 has "
            "no auth401_drain command to move recorded events into AuthEvent"
        )
    drained = subprocess.run(
        [sys.executable, "manage.py", "auth401_drain"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert drained.returncode == 0, drained.stderr
    rows = AuthEvent.objects.filter(id__gt=mark, username=username)
    answered = {answer["request_id"]: answer["body"]["code"] for answer in answers}
    # Rows of the failures (the lock's own event, if any, has a code of its own).
    failure_rows = [
        (request_id, code)
        for request_id, code in rows.values_list("request_id", "code")
        if code in set(answered.values())
    ]
    # One row per failure, each under the request id its client sent and with its answer's code.
    assert Counter(request_id for request_id, _ in failure_rows) == Counter(answered.keys())
    assert dict(failure_rows) == answered
