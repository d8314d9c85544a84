"""Settings helpers that read the environment, shared by example_project and tests/settings.py.

- ``DATABASE_URL``: unset or empty means SQLite in ``db.sqlite3``; otherwise any URL that
  `dj-database-url <https://github.com/jazzband/dj-database-url>`_ reads, e.g.
  ``postgres://user:password@host:5432/name?sslmode=require`` or ``sqlite:////tmp/demo.sqlite3``.
- ``REDIS_URL``: unset or empty means a local-memory cache; ``redis://``, ``rediss://`` or
  ``unix://`` means Django's built-in Redis cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

#: Take SQLite's write lock when a transaction begins, and wait for it: concurrent logins then
#: queue instead of failing with "database is locked" on a lock upgrade.
SQLITE_OPTIONS = {"transaction_mode": "IMMEDIATE", "timeout": 20}


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """Read a yes/no environment variable (1/0, true/false, yes/no, on/off)."""
    environ = os.environ if environ is None else environ
    if name not in environ:
        return default
    value = environ[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}"
    )


def parse_database_url(url: str) -> dict[str, Any]:
    """A ``DATABASES`` entry for ``url`` (any scheme dj-database-url knows)."""
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url))
    except ValueError as exc:  # an unknown scheme, a bad port
        raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from exc
    if config.get("ENGINE") == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    elif not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgres://host/test")
    return config


def database_from_env(
    default_sqlite_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``DATABASES["default"]`` from ``DATABASE_URL``, else SQLite at ``default_sqlite_path``."""
    environ = os.environ if environ is None else environ
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        return parse_database_url(url)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(default_sqlite_path),
        "OPTIONS": dict(SQLITE_OPTIONS),
    }


def cache_from_env(
    *,
    key_prefix: str = "",
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``CACHES["default"]``: Redis from ``REDIS_URL`` if set, else local memory."""
    environ = os.environ if environ is None else environ
    url = environ.get("REDIS_URL", "").strip()
    if not url:
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "auth401",
            "KEY_PREFIX": key_prefix,
        }
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise ImproperlyConfigured(
            f"REDIS_URL must start with redis://, rediss:// or unix://; got scheme {scheme!r}"
        )
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": key_prefix,
    }
