"""A measured prototype of the changes proposed to auth401's hot paths, applied from outside
(the ``proposed`` stack, ``python -m benchmarks.run --proposed``).  Nothing here is imported
by auth401 or its tests; it exists so the proposals in benchmarks/README.md come with numbers.

1. ``fast_write``: the audit row as one ``INSERT`` in autocommit (one round trip, one commit)
   instead of ``bulk_create``'s BEGIN + INSERT ... RETURNING + COMMIT (three round trips) and
   its compiler; still synchronous and durable.
2. ``CachedLookup``: the user + AccountStatus query (``select_related``) compiled once per
   connection and re-executed with the new parameter: the join stays, Django's per-request
   SQL compilation of it goes (the whole difference to bare DRF on a valid JWT).
3. ``DeferredAudit``: rows of failures that checked no password (no credentials, a bad or
   tampered token, a malformed header) are grouped and written with one multi-row INSERT per
   100 rows or per second; password failures (what brute force produces) stay synchronous.
   Their log records are still written at once, so a crash loses at most a second of rows
   that the log still holds.
4. ``RedisCounters._client``: one ``redis.Redis`` per connection pool, kept, instead of
   ``get_client()``'s new client per call (about 17 KB each, kept alive for ever by the
   ``_scripts`` dict keyed on the client's id: a leak, and a ``register_script`` per call).
"""

from __future__ import annotations

import atexit
import logging
import time
from contextlib import nullcontext
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections, transaction

logger = logging.getLogger("auth401")

#: failures decided by a password check: their audit rows are written before the answer
PASSWORD_SCHEMES = frozenset({"Password", "Basic"})
DEFER_BATCH = 100
DEFER_SECONDS = 1.0


def _insert(events: list[Any], using: str = "default") -> None:
    from auth401.models import AuthEvent

    connection = connections[using]
    fields = [f for f in AuthEvent._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = []
    for event in events:
        params += [f.get_db_prep_save(f.pre_save(event, True), connection) for f in fields]
    sql = (
        f"INSERT INTO {quote(AuthEvent._meta.db_table)} ({columns}) "
        f"VALUES {', '.join([row] * len(events))}"
    )
    # Inside a transaction, a savepoint: an error cannot poison the caller's transaction.
    guard = transaction.atomic(using=using) if connection.in_atomic_block else nullcontext()
    with guard, connection.cursor() as cursor:
        cursor.execute(sql, params)


def fast_write(events: list[Any]) -> None:
    try:
        _insert(events)
    except DatabaseError:
        logger.exception(
            "auth401: %d audit event(s) could not be written; their log records stand",
            len(events),
        )


class DeferredAudit:
    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.since = 0.0
        atexit.register(self.flush)

    def write(self, events: list[Any]) -> None:
        now_rows = [e for e in events if e.scheme in PASSWORD_SCHEMES or e.username]
        later = [e for e in events if not (e.scheme in PASSWORD_SCHEMES or e.username)]
        if later:
            if not self.pending:
                self.since = time.monotonic()
            self.pending.extend(later)
        if now_rows:
            fast_write(now_rows)
        if self.pending and (
            len(self.pending) >= DEFER_BATCH or time.monotonic() - self.since >= DEFER_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        rows, self.pending = self.pending, []
        if rows:
            fast_write(rows)


class CachedLookup:
    """``get(**{field: value})`` through a compiled-once ``select_related`` query."""

    def __init__(self, model: Any, related: str) -> None:
        self.model = model
        self.related = related
        self._compiled: dict[tuple[int, str], Any] = {}

    def _compiler(self, field: str) -> Any:
        connection = connections[self.model._default_manager.db]
        key = (id(connection), field)
        found = self._compiled.get(key)
        if found is None:
            marker = "__auth401_lookup_parameter__"
            queryset = self.model._default_manager.select_related(self.related)
            if field in ("pk", "id", self.model._meta.pk.attname):
                marker_value: Any = 0
                queryset = queryset.filter(pk=marker_value)
            else:
                marker_value = marker
                queryset = queryset.filter(**{field: marker_value})
            compiler = queryset.query.get_compiler(connection=connection)
            sql, params = compiler.as_sql()
            assert list(params) == [marker_value], params
            from django.db.models.query import get_related_populators

            klass_info = compiler.klass_info
            fields = klass_info["select_fields"]
            start, end = fields[0], fields[-1] + 1
            init = [f[0].target.attname for f in compiler.select[start:end]]
            populators = get_related_populators(klass_info, compiler.select, connection.alias)
            found = (compiler, sql, start, end, init, populators)
            self._compiled[key] = found
        return found

    def get(self, **lookup: Any) -> Any:
        ((field, value),) = lookup.items()
        compiler, sql, start, end, init, populators = self._compiler(field)
        connection = compiler.connection
        with connection.cursor() as cursor:
            cursor.execute(sql, [value])
            rows = cursor.fetchmany(2)
        if not rows:
            raise self.model.DoesNotExist
        row = next(iter(compiler.results_iter(results=[rows[:1]])))
        user = self.model.from_db(connection.alias, init, row[start:end])
        for populator in populators:
            populator.populate(row, user)
        return user


def apply() -> None:
    """Patch the running auth401 (benchmark processes of the ``proposed`` stack only)."""
    from auth401 import _counters, audit, authentication, backends

    clients: dict[int, Any] = {}

    def _client(self: Any) -> Any:
        inner = self.cache._cache
        pool = inner._get_connection_pool(True)
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = inner._client(connection_pool=pool)
        return client

    _counters.RedisCounters._client = _client  # type: ignore[method-assign]

    deferred = DeferredAudit()
    audit._write = deferred.write  # type: ignore[assignment]
    model = get_user_model()
    lookup = CachedLookup(model, backends.STATUS_RELATION)

    class FastPrefetchingUserModel(authentication._PrefetchingUserModel):
        @property
        def objects(self) -> Any:
            return lookup

    original_init = authentication.JWTAuthentication.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.user_model = FastPrefetchingUserModel(model)

    authentication.JWTAuthentication.__init__ = init  # type: ignore[method-assign]

    def _lookup(self: Any, username: str) -> Any:
        return lookup.get(**{model.USERNAME_FIELD: username})

    backends.Auth401Backend._lookup = _lookup  # type: ignore[method-assign]
