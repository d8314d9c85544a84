"""What the three benchmark stacks share: the example project's settings, with the
deployment knobs that must be equal everywhere so only the framework cost differs.

- ``MD5PasswordHasher``: the hash dominates a real login; MD5 isolates framework cost.
- ``DEBUG = False`` (no query log growing for ten minutes), persistent database connections
  (``CONN_MAX_AGE``) as any production deployment has, access tokens that outlive a run.
- The database is chosen by ``AUTH401_BENCH_DB`` (``sqlite`` or ``postgres``); each stack has
  its own: ``benchmarks/.data/<stack>.sqlite3`` or ``auth401_bench_<stack>`` on the server
  named by ``AUTH401_BENCH_POSTGRES``.  With PostgreSQL the cache is Redis
  (``AUTH401_BENCH_REDIS``) under the key prefix ``auth401-bench-<stack>``.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("DJANGO_SECRET_KEY", "auth401-benchmarks-signing-key-not-secret-long-enough")
from example_project.settings import *  # noqa: E402, F403
from example_project.settings import (  # noqa: E402
    AUTH401 as _EXAMPLE_AUTH401,
)
from example_project.settings import INSTALLED_APPS, MIDDLEWARE, SIMPLE_JWT  # noqa: E402

# The load generators replay one wrong password per username: every failure is to cost what a
# new guess costs (counted, hashed, recorded), so none is spared as a repeat.
AUTH401 = {**_EXAMPLE_AUTH401, "REPEATED_PASSWORD_MEMORY": 0}

#: the stack this settings module serves: the last part of DJANGO_SETTINGS_MODULE
STACK = os.environ.get("DJANGO_SETTINGS_MODULE", "benchmarks.settings.bare").rsplit(".", 1)[-1]
BENCH_DB = os.environ.get("AUTH401_BENCH_DB", "sqlite")
DATA_DIR = Path(__file__).resolve().parent.parent / ".data"

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUTH_PASSWORD_VALIDATORS: list = []

SIMPLE_JWT = {**SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(days=1)}

if BENCH_DB == "postgres":
    _pg = urlsplit(os.environ.get("AUTH401_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": f"auth401_bench_{STACK}",
            "USER": _pg.username or "postgres",
            "PASSWORD": _pg.password or "",
            "HOST": _pg.hostname or "127.0.0.1",
            "PORT": str(_pg.port or 5432),
            "CONN_MAX_AGE": 600,
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("AUTH401_BENCH_REDIS", "redis://127.0.0.1:6379/12"),
            "KEY_PREFIX": f"auth401-bench-{STACK}",
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / f"{STACK}.sqlite3",
            # As example_project/_env.py: queue for the write lock instead of failing.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            "CONN_MAX_AGE": 600,
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"auth401-bench-{STACK}",
        }
    }

# Log records (auth401 and axes both write one per failure) go to stderr, which the runner
# sends to benchmarks/.data/<stack>.log: formatting and writing them is part of the cost.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

#: failure limits far above any run's count: every failed login takes the full path (count,
#: look up, hash, audit) instead of the cheaper "already locked" refusal
UNREACHABLE_LIMIT = 10**9

BARE_APPS = [app for app in INSTALLED_APPS if app != "auth401"]
BARE_MIDDLEWARE = [m for m in MIDDLEWARE if m != "auth401.middleware.Auth401Middleware"]
BARE_REST_FRAMEWORK = {
    # DRF's and simplejwt's own classes, DRF's default exception handler.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
BARE_SIMPLE_JWT = {k: v for k, v in SIMPLE_JWT.items() if k != "TOKEN_REFRESH_SERIALIZER"}
