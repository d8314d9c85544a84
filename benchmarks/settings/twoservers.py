"""The two-server scenario: ``locking``'s policy, served by two gunicorn masters that share
PostgreSQL and Redis, with a password hasher that counts its checks across processes
(``benchmarks.hashers``)."""

from .locking import *  # noqa: F403

PASSWORD_HASHERS = ["benchmarks.hashers.CountingMD5PasswordHasher"]
