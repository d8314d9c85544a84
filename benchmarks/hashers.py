"""A password hasher that counts its checks across processes, for the two-server scenario.

``verify`` (a password compared against a stored hash) appends one byte to the file named by
``AUTH401_BENCH_CHECKS``; the runner reads the file's size.  Appends of one byte with
``O_APPEND`` are atomic, so two servers with several workers each count without a lock.
Hashes stay ``md5$...``: the benchmark's accounts are created with the MD5 hasher.
"""

from __future__ import annotations

import os

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingMD5PasswordHasher(MD5PasswordHasher):
    def verify(self, password: str, encoded: str) -> bool:
        path = os.environ.get("AUTH401_BENCH_CHECKS")
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b".")
            finally:
                os.close(fd)
        return super().verify(password, encoded)
