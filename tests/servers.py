"""A Django test server in a process of its own (runserver, ``tests.server_settings``) against
the test database and a given Redis: for tests about real processes (kill -9, SIGTERM, several
servers sharing one database and one Redis).  Its port is one the system gives (never a fixed
one), tried again on another when it was taken meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.db import connection

from tests.redis_server import START_ATTEMPTS, free_port

ROOT = Path(__file__).resolve().parent.parent


def start_server(redis_url: str, prefix: str) -> tuple[subprocess.Popen, int]:
    """Start the server and wait until it answers (at most about 10 s a try): the process
    and its port."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.server_settings",
        "AUTH401_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "AUTH401_TEST_COUNTERS": redis_url,
        "AUTH401_TEST_COUNTERS_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
    }
    for _ in range(START_ATTEMPTS):
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _answers(server, port):
            return server, port
        server.kill()
        server.wait(10)
    raise RuntimeError("the test server did not start")


def _answers(server: subprocess.Popen, port: int) -> bool:
    for _ in range(200):
        if server.poll() is not None:
            return False  # exited: the port was taken
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/public/", timeout=1).close()
            return True
        except urllib.error.HTTPError as answer:
            answer.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
