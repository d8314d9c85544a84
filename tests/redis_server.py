"""A private redis-server for fault tests (a port the system gives, stopped by its pid)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

#: how many ports a first start tries (another process may take a free port before us)
START_ATTEMPTS = 5


def free_port() -> int:
    """A port free now, as the system picks it (bind to port 0): no fixed range, so runs on
    one busy machine do not collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, port: int | None = None, *, appendonly: bool = False) -> None:
        self.port = port if port is not None else free_port()
        self.dir = tempfile.mkdtemp(prefix="auth401-redis-")
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) and wait until it answers.  A first start
        whose port was taken meanwhile tries another free one."""
        first = self.process is None
        for _ in range(START_ATTEMPTS if first else 1):
            if self._start_once():
                return self
            if first:
                self.port = free_port()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def _start_once(self) -> bool:
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            self.dir,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            for _ in range(200):
                if self.process.poll() is not None:
                    return False  # exited: the port is taken
                try:
                    # Ours, not a server that already held the port (ours then exits).
                    if client.info("server")["process_id"] == self.process.pid:
                        return True
                    break
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()  # not left to the garbage collector (an unclosed socket warns)
        self.process.kill()
        self.process.wait(5)
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
