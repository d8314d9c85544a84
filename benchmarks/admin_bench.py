"""Benchmark: the AuthEvent admin and dashboard on 1,000,000 rows in PostgreSQL.

Run it from the repository root with one command::

    .venv/bin/python benchmarks/admin_bench.py

It creates the database ``auth401_bench`` on 127.0.0.1 (role ``postgres``) if missing — or uses
``BENCH_DATABASE_URL`` — migrates it, seeds ``--rows`` events with ``benchmarks.seed_events``
(again only when the table holds a different number of rows, or its newest row is over an hour
old, or with ``--reseed``), locks a few users so the dashboard lists them, and then times each
page with Django's test client, logged in as a superuser: ``--warmup`` untimed runs, then
``--runs`` timed ones. It prints the median and p95 in ms and the number of SQL queries per
page (and, on Linux with PostgreSQL on the same machine, the median and p95 of the CPU time
this process and its PostgreSQL backend spent on a page: what it costs when no other work
shares the CPUs; parallel query workers are not counted), and exits with status 1 if any median
reaches ``--limit`` ms (150). The pages: the AuthEvent list (filters, searches), the dashboard,
the user list (with the account state filter), the busiest user's page, the account statuses
and one account's page. The dashboard is also timed with its kept counts emptied before each
run (the first view after the cache was emptied, or after the drain wrote late events):
reported, not held to the limit. ``--explain`` prints PostgreSQL's EXPLAIN ANALYZE of each
page's slowest query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.admin_settings")

# (name, path and query) of each timed page
PAGES = (
    ("changelist, default page", "/admin/auth401/authevent/"),
    ("changelist, code filter", "/admin/auth401/authevent/?code=token_expired"),
    ("changelist, rare code filter", "/admin/auth401/authevent/?code=account_inactive"),
    ("changelist, username search", "/admin/auth401/authevent/?q=user0042"),
    ("changelist, username search in capitals", "/admin/auth401/authevent/?q=USER0042"),
    ("changelist, kind filter", "/admin/auth401/authevent/?kind=guessing&created=24h"),
    ("changelist, IP search", "/admin/auth401/authevent/?q={ip}"),
    ("changelist, last 24 hours", "/admin/auth401/authevent/?created=24h"),
    ("changelist, status filter", "/admin/auth401/authevent/?status=403"),
    ("changelist, scheme filter", "/admin/auth401/authevent/?scheme=Session"),
    ("dashboard", "/admin/auth401/authevent/dashboard/"),
    # the first view after an hour has settled counts the whole window (the cache is emptied
    # before each run)
    ("dashboard, counts not kept", "/admin/auth401/authevent/dashboard/"),
    ("user list", "/admin/auth/user/"),
    ("user list, locked filter", "/admin/auth/user/?auth401_state=locked"),
    ("user page (busiest user)", "/admin/auth/user/{user_pk}/change/"),
    ("account statuses", "/admin/auth401/accountstatus/"),
    ("account status page", "/admin/auth401/accountstatus/{status_pk}/change/"),
)
#: pages timed with an empty cache
COLD = {"dashboard, counts not kept"}
LOCKED_USERS = 12


def ensure_database(url: str) -> None:
    """Create the benchmark database if it does not exist (needs the CREATEDB right)."""
    import psycopg
    from psycopg import sql

    from example_project._env import parse_database_url

    settings = parse_database_url(url)
    dsn = {
        "host": settings["HOST"] or None,
        "port": settings["PORT"] or None,
        "user": settings["USER"] or None,
        "password": settings["PASSWORD"] or None,
    }
    kwargs = {key: value for key, value in dsn.items() if value}
    with psycopg.connect(dbname="postgres", autocommit=True, **kwargs) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [settings["NAME"]]
        ).fetchone()
        if not exists:
            print(f"Creating database {settings['NAME']}")
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings["NAME"]))
            )


def prepare(rows: int, reseed: bool) -> Any:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max
    from django.utils import timezone

    from auth401 import accounts
    from auth401.models import AccountStatus, AuthEvent
    from benchmarks import seed_events

    call_command("migrate", verbosity=0)
    present = AuthEvent.objects.count()
    newest = AuthEvent.objects.aggregate(newest=Max("created_at"))["newest"]
    stale = newest is None or newest < timezone.now() - timedelta(hours=1)
    if reseed or abs(present - rows) > rows // 100 or stale:
        print(f"Seeding {rows:,} events (the table held {present:,})...")
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {connection.ops.quote_name(AuthEvent._meta.db_table)}")
        call_command(seed_events.Command(), rows, seed=1)
    else:
        print(f"Reusing the {present:,} events already seeded (--reseed to start again).")
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(AuthEvent._meta.db_table)}")

    model = get_user_model()
    admin, created = model._default_manager.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        admin.set_unusable_password()
        admin.save()
    locked = AccountStatus.objects.filter(state=AccountStatus.State.LOCKED).count()
    for user in model._default_manager.filter(username__startswith="user00").order_by("username")[
        : max(0, LOCKED_USERS - locked)
    ]:
        accounts.lock(user, reason="Benchmark lock", by=admin)
    return admin


def busiest_user() -> Any:
    """The seeded user with the most events (``user0000``: the usernames are skewed)."""
    from django.contrib.auth import get_user_model

    from benchmarks.seed_events import _username

    return get_user_model()._default_manager.get_by_natural_key(_username(0))


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def cpu_ns(pid: int | str) -> int | None:
    """Nanoseconds a process has run on a CPU (Linux ``/proc/<pid>/schedstat``), or None."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def backend_pid() -> int | None:
    """The PostgreSQL backend's process id, when it runs on this machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
    return pid if cpu_ns(pid) is not None else None


def measure(
    client: Any, path: str, runs: int, warmup: int, cold: bool = False
) -> tuple[list[float], list[float], list[dict]]:
    """Wall-clock ms per run, CPU ms per run (this process and the PostgreSQL backend: the
    time the page costs when the machine is not shared; empty where /proc cannot tell), and
    the queries of one more run."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
    backend = backend_pid()
    timings, cpu = [], []
    for _ in range(runs):
        if cold:
            cache.clear()
        own, db = cpu_ns("self"), cpu_ns(backend) if backend else None
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        own_after, db_after = cpu_ns("self"), cpu_ns(backend) if backend else None
        if None not in (own, db, own_after, db_after):
            cpu.append((own_after - own + db_after - db) / 1e6)  # type: ignore[operator]
        assert response.status_code == 200, (path, response.status_code)
    if cold:
        cache.clear()
    with CaptureQueriesContext(connection) as queries:
        client.get(path)
    return timings, cpu, list(queries.captured_queries)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--limit", type=float, default=150.0, help="max median in ms (150)")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)

    from benchmarks.admin_settings import DEFAULT_BENCH_DATABASE_URL

    ensure_database(os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL))

    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from auth401.models import AccountStatus
    from benchmarks.seed_events import _ip

    if connection.vendor != "postgresql":
        raise SystemExit("The benchmark needs PostgreSQL (BENCH_DATABASE_URL).")
    admin = prepare(args.rows, args.reseed)
    client = Client()
    client.force_login(admin)

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    version = connection.pg_version
    print(
        f"\nPostgreSQL {version // 10000}.{version % 100}, {args.rows:,} rows, "
        f"{args.runs} runs each, {os.cpu_count()} CPUs, load average {load}"
    )
    print(
        f"{'page':<40} {'median ms':>10} {'p95 ms':>8} {'queries':>8} "
        f"{'cpu median':>11} {'cpu p95':>8}"
    )
    failed = []
    busiest = busiest_user()
    status = AccountStatus.objects.order_by("pk").first()
    for name, template in PAGES:
        if "{status_pk}" in template and status is None:
            continue
        path = template.format(
            ip=_ip(7), user_pk=busiest.pk, status_pk=status.pk if status else None
        )
        timings, cpu, queries = measure(client, path, args.runs, args.warmup, cold=name in COLD)
        median = statistics.median(timings)
        cpu_text = f"{statistics.median(cpu):>11.1f} {p95(cpu):>8.1f}" if cpu else ""
        print(f"{name:<40} {median:>10.1f} {p95(timings):>8.1f} {len(queries):>8} {cpu_text}")
        if median >= args.limit and name not in COLD:
            failed.append(name)
        if args.explain:
            slowest = max(queries, key=lambda q: float(q["time"]))
            print(f"  slowest query ({float(slowest['time']) * 1000:.1f} ms):\n  {slowest['sql']}")
            print("  " + explain(slowest["sql"]).replace("\n", "\n  "))
    if failed:
        print(f"\nFAIL: median of {', '.join(failed)} is {args.limit:.0f} ms or more.")
        return 1
    print(f"\nOK: every median is under {args.limit:.0f} ms.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
