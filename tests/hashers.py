"""A password hasher that counts its work (tests only): every check and every hash of a
password runs ``encode`` once."""

import threading
import time

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    algorithm = "counting_md5"
    calls = 0
    delay = 0.0
    _lock = threading.Lock()

    @classmethod
    def reset(cls, delay: float = 0.0) -> None:
        with cls._lock:
            cls.calls = 0
            cls.delay = delay

    def encode(self, password, salt):
        with CountingHasher._lock:
            CountingHasher.calls += 1
        if CountingHasher.delay:
            time.sleep(CountingHasher.delay)  # widen the race window in concurrency tests
        return super().encode(password, salt)
