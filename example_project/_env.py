"""Settings helpers that read the environment, shared by example_project and tests/settings.py.

No third-party dependency: URLs are parsed with :mod:`urllib.parse`.

- ``DATABASE_URL``: unset or empty means SQLite; ``postgres://[user[:password]@]host[:port]/name``
  (also ``postgresql://`` and ``pgsql://``) means PostgreSQL. Query parameters, such as
  ``?sslmode=require``, become the connection's ``OPTIONS``.
- ``REDIS_URL``: unset or empty means a local-memory cache; ``redis://``, ``rediss://`` or
  ``unix://`` means Django's built-in Redis cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


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
    """Turn a ``postgres://`` URL into a ``DATABASES`` entry."""
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            "DATABASE_URL must start with postgres:// or postgresql://; "
            f"got scheme {parts.scheme!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgres://host/test")
    try:
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL has an invalid port: {exc}") from exc
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        # unquote() lets a socket directory be given as postgres://%2Fvar%2Frun%2Fpostgresql/test
        "HOST": unquote(parts.hostname or ""),
        "PORT": str(port) if port else "",
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


def database_from_env(
    default_sqlite_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``DATABASES["default"]``: PostgreSQL from ``DATABASE_URL`` if set, else SQLite."""
    environ = os.environ if environ is None else environ
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        return parse_database_url(url)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(default_sqlite_path),
        # Take SQLite's write lock when a transaction begins, and wait for it: concurrent
        # logins then queue instead of failing with "database is locked" on a lock upgrade.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
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
