"""A Django test server in a process of its own (runserver, ``tests.server_settings``) against
the test database and a given Redis: for tests about real processes (kill -9, SIGTERM, several
servers sharing one database and one Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def start_server(port: int, redis_url: str, prefix: str) -> subprocess.Popen:
    """Start the server on ``port`` and wait until it answers (at most about 10 s)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.server_settings",
        "AUTH401_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "AUTH401_TEST_COUNTERS": redis_url,
        "AUTH401_TEST_COUNTERS_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/public/", timeout=1).close()
            return server
        except urllib.error.HTTPError as answer:
            answer.close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    server.wait(10)
    raise RuntimeError("the test server did not start")
