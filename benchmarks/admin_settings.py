"""Settings for ``benchmarks/admin_bench.py``: the example project, production-like
(``DEBUG = False``), on the PostgreSQL database named by ``BENCH_DATABASE_URL``."""

import os

from example_project._env import parse_database_url

os.environ.setdefault("DJANGO_SECRET_KEY", "auth401-admin-bench-signing-key-not-secret-long-enough")
from example_project.settings import *  # noqa: E402, F403

DEFAULT_BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/auth401_bench"

DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
DATABASES = {
    "default": parse_database_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL))
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "auth401-bench",
    }
}
AUTH401 = {"COUNTER_STORE": "database"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
