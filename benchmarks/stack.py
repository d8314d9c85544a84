"""Work done inside one stack's Django settings (``DJANGO_SETTINGS_MODULE`` names it); the
runner calls it as a subprocess and reads one JSON line from its output.

- ``prepare``: migrate, create ``alice`` and the pool of accounts the failed logins name,
  clear this stack's counters, and mint a valid access token.
- ``reset``: forget failures (audit rows, counters, axes attempts) before a flood.
- ``sizes``: table rows and bytes, and Redis keys, for the flood report.
- ``queries``: SQL queries (``CaptureQueriesContext``) and Redis round trips per request for
  each scenario, through the Django test client on the same settings and database.
- ``watermark``: the highest ``AuthEvent`` id now (events after it belong to what follows).
- ``drain``: ``manage.py auth401_drain`` (events recorded in the stream -> ``AuthEvent``) when
  the installed auth401 has that command; says whether it ran.
- ``events``: ``AuthEvent`` rows after a watermark (optionally one path or one username): how
  many, per code, how many distinct request ids, and ``[request id, code]`` pairs on request.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django

POOL_PASSWORD = "pool-password-1"
ALICE_PASSWORD = "alice-password-1"
WRONG_PASSWORD = "wrong-password"


def pool_names(size: int) -> list[str]:
    return [f"user{i:05d}" for i in range(size)]


def _installed(app: str) -> bool:
    from django.apps import apps

    return apps.is_installed(app)


_REDIS: list[Any] = []


def _redis_client() -> Any:
    """A redis-py client on the cache's Redis (from ``CACHES``), or None without Redis."""
    from django.conf import settings

    config = settings.CACHES["default"]
    if not config["BACKEND"].endswith("RedisCache"):
        return None
    if not _REDIS:
        import redis

        _REDIS.append(redis.Redis.from_url(config["LOCATION"]))
    return _REDIS[0]


def _redis_keys() -> list[bytes]:
    """This stack's keys: Django's cache keys are ``<KEY_PREFIX>:<version>:<key>``."""
    from django.conf import settings

    client = _redis_client()
    if client is None:
        return []
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return list(client.scan_iter(match=f"{prefix}:*", count=1000))


def _clear_redis() -> int:
    client = _redis_client()
    keys = _redis_keys()  # only this stack's prefix: never FLUSHDB a shared Redis
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


def _failure_models() -> list[Any]:
    from django.apps import apps

    wanted = [("auth401", "AuthEvent"), ("auth401", "FailureCounter")]
    wanted += [("axes", "AccessAttempt"), ("axes", "AccessFailureLog")]
    found = []
    for app, name in wanted:
        if _installed(app):
            try:
                found.append(apps.get_model(app, name))
            except LookupError:  # a model this version does not have
                continue
    return found


def reset() -> dict[str, Any]:
    from django.core.cache import cache

    deleted = {}
    for model in _failure_models():
        deleted[model._meta.db_table], _ = model.objects.all().delete()
    if _redis_client() is not None:
        deleted["redis_keys"] = _clear_redis()
    else:
        cache.clear()
    return deleted


def prepare(pool: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    call_command("migrate", verbosity=0, interactive=False)
    model = get_user_model()
    model.objects.all().delete()
    alice = model.objects.create_user("alice", "alice@example.com", ALICE_PASSWORD)
    hashed = make_password(POOL_PASSWORD)
    model.objects.bulk_create(
        [model(username=name, password=hashed) for name in pool_names(pool)], batch_size=1000
    )
    reset()
    from django.conf import settings

    limit = getattr(settings, "AUTH401", {}).get("FAILURE_LIMIT") if _installed("auth401") else None
    return {"token": str(AccessToken.for_user(alice)), "users": pool + 1, "failure_limit": limit}


def _table_bytes(table: str) -> int | None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            return int(cursor.fetchone()[0])
        if connection.vendor == "sqlite":
            try:
                cursor.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = %s", [table])
            except Exception:  # dbstat is a compile-time option of SQLite
                return None
            value = cursor.fetchone()[0]
            return int(value) if value is not None else 0
    return None


def sizes() -> dict[str, Any]:
    from django.apps import apps
    from django.db.models import Max
    from django.db.models.functions import Length

    report: dict[str, Any] = {}
    models = list(_failure_models())
    if _installed("auth401"):  # and any other table this auth401 version keeps
        models += [m for m in apps.get_app_config("auth401").get_models() if m not in models]
    for model in models:
        table = model._meta.db_table
        entry: dict[str, Any] = {"rows": model.objects.count(), "bytes": _table_bytes(table)}
        if model._meta.model_name == "accessattempt":
            widest = model.objects.aggregate(
                get=Max(Length("get_data")), post=Max(Length("post_data"))
            )
            entry["widest_row_chars"] = (widest["get"] or 0) + (widest["post"] or 0)
        report[table] = entry
    if _redis_client() is not None:
        report["redis_keys"] = len(_redis_keys())
        report["redis_streams"] = _stream_lengths()
    return report


def _stream_lengths() -> dict[str, int]:
    """The Redis streams of this stack (and any outside the benchmark stacks' prefixes, such
    as a counter store with a prefix of its own) and their lengths (XLEN)."""
    from django.conf import settings

    mine = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:"
    client = _redis_client()
    found: dict[str, int] = {}
    for key in client.scan_iter(count=1000, _type="stream"):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith(mine) or not name.startswith("auth401-bench-"):
            found[name] = int(client.xlen(key))
    return found


def _event_model() -> Any:
    from django.apps import apps

    return apps.get_model("auth401", "AuthEvent") if _installed("auth401") else None


def watermark() -> dict[str, Any]:
    from django.db.models import Max

    model = _event_model()
    if model is None:
        return {"max_id": None}
    return {"max_id": model.objects.aggregate(top=Max("id"))["top"] or 0}


def drain() -> dict[str, Any]:
    """Run ``auth401_drain`` once, if this auth401 has it (documented management API)."""
    import io

    from django.core.management import call_command, get_commands

    if "auth401_drain" not in get_commands():
        return {"drain": False}
    out = io.StringIO()
    call_command("auth401_drain", stdout=out, stderr=out)
    return {"drain": True, "output": out.getvalue().strip()[-500:]}


def events(
    after_id: int, path: str, username: str, with_ids: bool, username_prefix: str = ""
) -> dict[str, Any]:
    from django.db.models import Count

    model = _event_model()
    if model is None:
        return {"rows": None}
    rows = model.objects.filter(id__gt=after_id)
    if path:
        rows = rows.filter(path=path)
    if username:
        rows = rows.filter(username=username)
    if username_prefix:
        rows = rows.filter(username__startswith=username_prefix)
    by_code = {r["code"]: r["n"] for r in rows.values("code").annotate(n=Count("id"))}
    report: dict[str, Any] = {
        "rows": sum(by_code.values()),
        "by_code": by_code,
        "distinct_request_ids": rows.values("request_id").distinct().count(),
    }
    if with_ids:
        report["request_ids"] = [list(pair) for pair in rows.values_list("request_id", "code")]
    return report


@contextmanager
def count_redis() -> Iterator[list[int]]:
    """Counts Redis round trips: each packed command sent (a pipeline or a script: one)."""
    from redis.connection import AbstractConnection

    counter = [0]
    original = AbstractConnection.send_packed_command

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def scenario_requests(token: str, tampered: str, names: list[str]) -> dict[str, Any]:
    """For each scenario, a function of the request number giving the client call's kwargs."""
    return {
        "valid_jwt": lambda i: ("get", "/api/me/", {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
        "tampered_jwt": lambda i: (
            "get",
            "/api/me/",
            {"HTTP_AUTHORIZATION": f"Bearer {tampered}"},
        ),
        "no_credentials": lambda i: ("get", "/api/me/", {}),
        "failed_basic": lambda i: (
            "get",
            "/api/me/",
            {"HTTP_AUTHORIZATION": _basic(names[i % len(names)], WRONG_PASSWORD)},
        ),
        "failed_token": lambda i: (
            "post",
            "/api/token/",
            {
                "data": json.dumps({"username": names[i % len(names)], "password": WRONG_PASSWORD}),
                "content_type": "application/json",
            },
        ),
    }


def queries(token: str, tampered: str, pool: int, show_sql: bool) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    report: dict[str, Any] = {}
    for name, build in scenario_requests(token, tampered, pool_names(pool)).items():
        samples: list[tuple[int, int]] = []
        statuses: set[int] = set()
        sql: list[str] = []
        for i in range(8):
            method, path, extra = build(i)
            kwargs = dict(extra)
            data = kwargs.pop("data", None)
            content_type = kwargs.pop("content_type", None)
            with CaptureQueriesContext(connection) as captured, count_redis() as trips:
                if method == "post":
                    response = client.post(path, data=data, content_type=content_type, **kwargs)
                else:
                    response = client.get(path, **kwargs)
            statuses.add(response.status_code)
            if i >= 3:  # after warm-up (migrations' content types, script loading)
                samples.append((len(captured), trips[0]))
                sql = [q["sql"] for q in captured.captured_queries]
        report[name] = {
            "sql": sum(s for s, _ in samples) / len(samples),
            "redis": sum(r for _, r in samples) / len(samples),
            "statuses": sorted(statuses),
        }
        if show_sql:
            report[name]["statements"] = sql
    reset()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack")
    parser.add_argument(
        "command",
        choices=["prepare", "reset", "sizes", "queries", "watermark", "drain", "events"],
    )
    parser.add_argument("--after-id", type=int, default=0)
    parser.add_argument("--path", default="")
    parser.add_argument("--username", default="")
    parser.add_argument("--username-prefix", default="")
    parser.add_argument("--request-ids", action="store_true")
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--token", default="")
    parser.add_argument("--tampered", default="")
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings.bare")
    django.setup()
    if args.command == "prepare":
        result = prepare(args.pool)
    elif args.command == "reset":
        result = reset()
    elif args.command == "sizes":
        result = sizes()
    elif args.command == "watermark":
        result = watermark()
    elif args.command == "drain":
        result = drain()
    elif args.command == "events":
        result = events(
            args.after_id, args.path, args.username, args.request_ids, args.username_prefix
        )
    else:
        result = queries(args.token, args.tampered, args.pool, args.show_sql)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
