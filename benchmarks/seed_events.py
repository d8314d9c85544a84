"""``python -m benchmarks.seed_events N``: insert N realistic AuthEvent rows, for benchmarks and
for trying the admin on a big table.  Not for production databases (it lives in benchmarks/, not
in the auth401 package).  Uses ``DJANGO_SETTINGS_MODULE`` (default: the example project's);
from Python, ``call_command(seed_events.Command(), N, seed=1)``.

The rows spread over the last ``--days`` days, denser towards now; about 5,000 usernames and
2,000 client IPs, both skewed so that a few are very frequent (as in an attack); a mix of
codes like a real API's (mostly wrong passwords and expired tokens); and, for the first
``--users`` usernames, real users (created if missing, with unusable passwords) linked by FK.

On PostgreSQL it is one ``INSERT ... SELECT FROM generate_series`` (a million rows in well
under a minute); elsewhere batched ``bulk_create``.  Rows go in oldest first, as a real audit
trail fills up, so the table's physical order follows ``created_at`` as it would in
production (the planner's costs for recent-window queries depend on it).
"""

from __future__ import annotations

import ipaddress
import os
import random
import sys
import time
from datetime import timedelta
from itertools import accumulate
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from django.utils import timezone

from auth401.codes import CATALOGUE
from auth401.models import AuthEvent

# (code, scheme, method, path, weight); the status comes from the catalogue
MIX: tuple[tuple[str, str, str, str, float], ...] = (
    ("credentials_invalid", "Password", "POST", "/api/token/", 25),
    ("credentials_invalid", "Basic", "GET", "/api/me/", 18),
    ("credentials_invalid", "Password", "POST", "/admin/login/", 6),
    ("credentials_invalid", "Token", "GET", "/api/me/", 4),
    ("token_expired", "Bearer", "GET", "/api/me/", 14),
    ("credentials_missing", "", "GET", "/api/me/", 8),
    ("account_locked", "Password", "POST", "/api/token/", 5),
    ("token_invalid", "Bearer", "GET", "/api/me/", 4),
    ("permission_denied", "Bearer", "GET", "/api/staff/", 3),
    ("authorization_malformed", "Basic", "GET", "/api/me/", 2),
    ("session_expired", "Session", "GET", "/api/me/", 2),
    ("csrf_failed", "Session", "POST", "/api/me/", 1),
    ("token_revoked", "Bearer", "POST", "/api/token/refresh/", 1),
    ("scheme_unsupported", "", "GET", "/api/me/", 0.6),
    ("token_wrong_type", "Bearer", "GET", "/api/me/", 0.5),
    ("password_expired", "Password", "POST", "/api/token/", 0.5),
    ("token_not_yet_valid", "Bearer", "GET", "/api/me/", 0.3),
    ("account_suspended", "Password", "POST", "/api/token/", 0.3),
    ("account_inactive", "Password", "POST", "/api/token/", 0.2),
    ("auto_lock", "", "", "", 0.2),
)
USER_AGENTS = (
    "curl/8.5.0",
    "python-requests/2.32.3",
    "okhttp/4.12.0",
    "Go-http-client/1.1",
    "PostmanRuntime/7.39.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
)
USERNAMES = 5000
IPS = 2000
IPV4_SHARE = 0.95
#: age = days * r ** AGE_SKEW for a uniform r: about 5 % of the rows fall in the last day
AGE_SKEW = 1.5
BATCH = 5000
#: from this many rows on, PostgreSQL seeding rebuilds the indexes instead of updating them
REBUILD_FROM = 100_000


def _username(index: int) -> str:
    return f"user{index:04d}"


def _ip(index: int) -> str:
    """Client IP number ``index``: scattered IPv4 addresses, then a few IPv6 ones."""
    if index < IPS * IPV4_SHARE:
        return str(ipaddress.IPv4Address((index + 1) * 2654435761 % 2**32))
    return str(ipaddress.IPv6Address("2001:db8::") + index)


def _mix() -> tuple[list[Any], ...]:
    codes, statuses, schemes, methods, paths, weights = [], [], [], [], [], []
    for code, scheme, method, path, weight in MIX:
        reason = CATALOGUE.get(code)
        codes.append(code)
        statuses.append(reason.status_code() if reason else None)
        schemes.append(scheme)
        methods.append(method)
        paths.append(path)
        weights.append(weight)
    total = sum(weights)
    # lower bound of each code's slice of [0, 1)
    bounds = [0.0] + [w / total for w in accumulate(weights)][:-1]
    return codes, statuses, schemes, methods, paths, bounds


class Command(BaseCommand):
    help = "Insert N realistic AuthEvent rows (benchmarks, demos). Not for production."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("count", type=int, help="how many rows to insert")
        parser.add_argument(
            "--days", type=int, default=90, help="spread the rows over this many days (90)"
        )
        parser.add_argument(
            "--users",
            type=int,
            default=300,
            help="how many of the usernames are real users linked by FK (300; created if missing)",
        )
        parser.add_argument("--seed", type=int, help="random seed, for repeatable data")
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args: Any, count: int, days: int, users: int, **options: Any) -> None:
        if count < 0:
            raise CommandError("N must be 0 or more.")
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        using = options["database"]
        started = time.monotonic()
        user_ids = self._users(min(max(users, 0), USERNAMES), using)
        if connections[using].vendor == "postgresql":
            self._postgresql(count, days, user_ids, options["seed"], using)
        else:
            self._batched(count, days, user_ids, options["seed"], using)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Inserted {count:,} events over the last {days} days in {elapsed:.1f} s."
        )

    def _users(self, count: int, using: str) -> list[Any]:
        """The ids of users ``user0000``..: created (unusable password) when missing."""
        if not count:
            return []
        model = get_user_model()
        field = model.USERNAME_FIELD
        names = [_username(i) for i in range(count)]
        manager = model._default_manager.db_manager(using)
        existing = set(manager.filter(**{f"{field}__in": names}).values_list(field, flat=True))
        missing = []
        for name in names:
            if name not in existing:
                user = model(**{field: name})
                user.set_unusable_password()
                missing.append(user)
        manager.bulk_create(missing, batch_size=BATCH)
        ids = dict(manager.filter(**{f"{field}__in": names}).values_list(field, "pk"))
        return [ids[name] for name in names]

    def _postgresql(
        self, count: int, days: int, user_ids: list[Any], seed: int | None, using: str
    ) -> None:
        codes, statuses, schemes, methods, paths, bounds = _mix()
        table = AuthEvent._meta.db_table
        columns = ", ".join(
            connections[using].ops.quote_name(AuthEvent._meta.get_field(name).column)
            for name in (
                "created_at", "code", "status_code", "username", "username_normalised", "user",
                "ip", "user_agent",
                "method", "path", "scheme", "request_id", "token_fingerprint", "note",
            )
        )  # fmt: skip
        ipv4 = int(IPS * IPV4_SHARE)
        pk_type = AuthEvent._meta.get_field("user").target_field.rel_db_type(connections[using])
        sql = f"""
            INSERT INTO {connections[using].ops.quote_name(table)} ({columns})
            SELECT
                now() - make_interval(secs => %(span)s * power(r_age, %(skew)s)),
                (%(codes)s::text[])[k],
                (%(statuses)s::int[])[k],
                'user' || lpad(u::text, 4, '0'),
                'user' || lpad(u::text, 4, '0'),
                (%(user_ids)s::{pk_type}[])[u + 1],
                CASE WHEN a < {ipv4}
                     THEN '0.0.0.0'::inet + ((a::bigint + 1) * 2654435761 %% 4294967296)
                     ELSE '2001:db8::'::inet + a END,
                (%(agents)s::text[])[1 + floor(r_agent * %(n_agents)s)::int],
                (%(methods)s::text[])[k],
                (%(paths)s::text[])[k],
                (%(schemes)s::text[])[k],
                substr(md5(g::text || r_age::text), 1, 16),
                CASE WHEN (%(schemes)s::text[])[k] IN ('Bearer', 'Token')
                     THEN substr(md5(r_agent::text || g::text), 1, 16) ELSE '' END,
                ''
            FROM (
                SELECT g,
                       -- the g-th of N equal slices of [0, 1), from the top: the ages
                       -- fall as g grows, so rows go in oldest first without a sort
                       (%(count)s - g + random()) / %(count)s AS r_age,
                       random() AS r_agent,
                       width_bucket(random(), %(bounds)s::float8[]) AS k,
                       floor(%(usernames)s * power(random(), 2))::int AS u,
                       floor(%(ips)s * power(random(), 2))::int AS a
                FROM generate_series(1, %(count)s) AS g
            ) AS draws
        """
        params = {
            "span": days * 86400,
            "skew": AGE_SKEW,
            "codes": codes,
            "statuses": statuses,
            "user_ids": user_ids,
            "agents": list(USER_AGENTS),
            "n_agents": len(USER_AGENTS),
            "methods": methods,
            "paths": paths,
            "schemes": schemes,
            "bounds": bounds,
            "usernames": USERNAMES,
            "ips": IPS,
            "count": count,
        }
        connection = connections[using]
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Building an index once is several times faster than a million inserts into it.
            # DROP and CREATE INDEX are transactional: an interrupted run leaves them all.
            indexes = self._secondary_indexes(cursor, table) if count >= REBUILD_FROM else []
            if indexes:
                cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
                # Check the user FKs at the INSERT, not at COMMIT: CREATE INDEX refuses a
                # table with pending trigger events.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for name, _definition in indexes:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
            if seed is not None:
                cursor.execute("SELECT setseed(%s)", [(seed % 2000) / 1000 - 1])
            cursor.execute(sql, params)
            for _name, definition in indexes:
                cursor.execute(definition)
        with connection.cursor() as cursor:
            # Fresh statistics: the planner's choices and the admin's row estimate need them.
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")

    @staticmethod
    def _secondary_indexes(cursor: Any, table: str) -> list[tuple[str, str]]:
        """(name, CREATE INDEX statement) of the table's plain indexes, when the table holds
        fewer rows than are about to go in (else rebuilding them costs more than it saves)."""
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [f'"{table}"'])
        if cursor.fetchone()[0] >= REBUILD_FROM:
            return []
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT i.indisunique"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            [f'"{table}"'],
        )
        return list(cursor.fetchall())

    def _batched(
        self, count: int, days: int, user_ids: list[Any], seed: int | None, using: str
    ) -> None:
        rng = random.Random(seed)
        codes, statuses, schemes, methods, paths, bounds = _mix()
        now = timezone.now()
        span = days * 86400
        choices = range(len(codes))
        weights = [b - a for a, b in zip(bounds, [*bounds[1:], 1.0], strict=True)]
        done = 0
        while done < count:
            size = min(BATCH, count - done)
            rows = []
            for i, k in enumerate(rng.choices(choices, weights=weights, k=size), start=done):
                # oldest first, as on PostgreSQL
                age = span * ((count - i - rng.random()) / count) ** AGE_SKEW
                u = int(USERNAMES * rng.random() ** 2)
                token = schemes[k] in ("Bearer", "Token")
                rows.append(
                    AuthEvent(
                        created_at=now - timedelta(seconds=age),
                        code=codes[k],
                        status_code=statuses[k],
                        username=_username(u),
                        username_normalised=_username(u),  # already NFKC and case-folded
                        user_id=user_ids[u] if u < len(user_ids) else None,
                        ip=_ip(int(IPS * rng.random() ** 2)),
                        user_agent=rng.choice(USER_AGENTS),
                        method=methods[k],
                        path=paths[k],
                        scheme=schemes[k],
                        request_id=f"{rng.getrandbits(64):016x}",
                        token_fingerprint=f"{rng.getrandbits(64):016x}" if token else "",
                    )
                )
            with transaction.atomic(using=using):
                AuthEvent.objects.using(using).bulk_create(rows)
            done += size


def main(argv: list[str] | None = None) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    django.setup()
    Command().run_from_argv(["benchmarks.seed_events", "seed_events", *(argv or sys.argv[1:])])


if __name__ == "__main__":
    main()
