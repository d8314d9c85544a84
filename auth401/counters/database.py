"""Counters, locks, in-flight checks and events in the database (``FailureCounter``,
``CounterSlot``, ``AuthEvent``): the SQL that the ORM cannot express (portable upserts, a
transaction on a side connection) lives here and nowhere else.

Each operation is one transaction.  Rows are touched in one order (the counters by sorted key,
then the in-flight slots, then the event), so concurrent attempts cannot deadlock; the first
statement of each is the counter upsert, which takes the rows' locks (PostgreSQL) or the
database's write lock (SQLite) at once.

Where the statements run: outside a transaction, on the default connection; inside one
(``ATOMIC_REQUESTS``, a view calling ``authenticate()``), on PostgreSQL and other servers a
separate connection of this thread, so a rollback of the request cannot undo a count or an
event; on SQLite (one writer at a time) a savepoint of the request's transaction.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.signals import request_finished
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone

from auth401.conf import app_settings
from auth401.models import AuthEvent, FailureCounter

from . import Begin, Held, Key, Lock, Peek, lock_duration, now_ms, policy

logger = logging.getLogger("auth401")

_side = threading.local()


def _side_connection() -> Any:
    """This thread's own autocommit connection to the default database."""
    conn = getattr(_side, "connection", None)
    if conn is None:
        conn = _side.connection = connections.create_connection(DEFAULT_DB_ALIAS)
    conn.close_if_unusable_or_obsolete()
    return conn


def close_side_connections(**kwargs: Any) -> None:
    """Close this thread's side connection when Django closes its own (request end), as
    ``CONN_MAX_AGE`` says; ``force`` closes it whatever (test teardown)."""
    conn = getattr(_side, "connection", None)
    if conn is None:
        return
    if kwargs.get("force"):
        conn.close()
        _side.connection = None
    else:
        conn.close_if_unusable_or_obsolete()


request_finished.connect(close_side_connections, dispatch_uid="auth401_counter_connection")


@contextmanager
def _transaction() -> Iterator[tuple[Any, Any]]:
    """(connection, cursor) inside one transaction that the request's cannot undo."""
    if not connection.in_atomic_block or connection.vendor == "sqlite":
        with transaction.atomic(), connection.cursor() as cursor:
            yield connection, cursor
        return
    side = _side_connection()
    side.ensure_connection()
    side.set_autocommit(False)
    try:
        with side.cursor() as cursor:
            yield side, cursor
        side.commit()
    except BaseException:
        side.rollback()
        raise
    finally:
        side.set_autocommit(True)


@contextmanager
def _one_statement() -> Iterator[tuple[Any, Any]]:
    """(connection, cursor) for a single statement that commits by itself (autocommit), with
    the same rule as ``_transaction`` inside a request's transaction: no BEGIN and COMMIT
    round trips for one upsert."""
    if not connection.in_atomic_block:
        with connection.cursor() as cursor:
            yield connection, cursor
        return
    if connection.vendor == "sqlite":
        with transaction.atomic(), connection.cursor() as cursor:
            yield connection, cursor
        return
    side = _side_connection()
    side.ensure_connection()
    with side.cursor() as cursor:
        yield side, cursor


def event_row(event: dict) -> AuthEvent:
    """The unsaved ``AuthEvent`` of an event dict (see ``auth401.events``)."""
    fields = {k: v for k, v in event.items() if k in _EVENT_FIELDS}
    for name in ("created_at", "last_seen"):
        if isinstance(fields.get(name), str):
            fields[name] = datetime.fromisoformat(fields[name])
    if isinstance(fields.get("event_id"), str):
        fields["event_id"] = uuid.UUID(fields["event_id"])
    return AuthEvent(**fields)


_EVENT_FIELDS = frozenset(
    f.attname for f in AuthEvent._meta.concrete_fields if not f.primary_key
) | {"user_id", "actor_id"}


_refused = threading.local()


def _without_events_if_refused(operation: Any, *args: Any) -> Any:
    """Run a counter transaction with its event; when the database refuses it, once more
    without (the count and the lock matter more than the row: the lost event is logged, and
    its log record stands)."""
    try:
        return operation(*args)
    except DatabaseError:
        _refused.skip = True
        try:
            result = operation(*args)
        finally:
            _refused.skip = False
        logger.exception("auth401: an audit event could not be recorded; the count stands")
        return result


def insert_events(conn: Any, cursor: Any, events: list[dict]) -> None:
    """INSERT the events' rows on ``cursor`` (values prepared by each field's own
    ``get_db_prep_save``)."""
    events = [e for e in events if e]
    if not events or getattr(_refused, "skip", False):
        return
    q = conn.ops.quote_name
    fields = [f for f in AuthEvent._meta.concrete_fields if not f.primary_key]
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = []
    for event in events:
        row = event_row(event)
        params += [f.get_db_prep_save(getattr(row, f.attname), conn) for f in fields]
    cursor.execute(
        f"INSERT INTO {q(AuthEvent._meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
        f"VALUES {', '.join([one] * len(events))}",
        params,
    )


def _repeated(fingerprint: str, recents: list[str]) -> bool:
    """Whether a wrong password's fingerprint is one every counter remembers."""
    if not app_settings.REPEATED_PASSWORD_MEMORY or not fingerprint or not recents:
        return False
    return all(fingerprint in (recent or "").split(",") for recent in recents)


def _remember(conn: Any, t: str, memory: int) -> tuple[str, str]:
    """SQL for an upsert that counts a wrong password unless the row remembers its
    fingerprint (``excluded.recent``), and remembers it (newest first, the last ``memory``
    kept; both forgotten with the window): SET clauses with 5 parameters (``_params``)."""
    q = conn.ops.quote_name

    def col(name: str) -> str:
        return f"{t}.{q(name)}"

    keep = max(0, memory * 9 - 1)
    over = f"{col('window_ends')} <= %s"
    seen = f"(',' || {col('recent')} || ',') LIKE %s"
    sets = (
        f"{q('failures')} = CASE WHEN {over} THEN 1 WHEN {seen} THEN {col('failures')} "
        f"ELSE {col('failures')} + 1 END, "
        f"{q('recent')} = CASE WHEN {over} THEN excluded.{q('recent')} "
        f"WHEN {seen} THEN {col('recent')} "
        f"ELSE substr(excluded.{q('recent')} || ',' || {col('recent')}, 1, {keep}) END, "
        f"{q('window_ends')} = CASE WHEN {over} "
        f"THEN excluded.{q('window_ends')} ELSE {col('window_ends')} END"
    )
    return sets, ""


def _params(now: int, fingerprint: str) -> list[Any]:
    pattern = f"%,{fingerprint},%" if fingerprint else "%,~,%"
    return [now, pattern, now, pattern, now]


class DatabaseCounters:
    """Counters, checks in flight and locks in the ``FailureCounter`` table."""

    @staticmethod
    def _names(conn: Any) -> tuple[str, Any]:
        return conn.ops.quote_name(FailureCounter._meta.db_table), conn.ops.quote_name

    def _columns(self, conn: Any) -> str:
        _, q = self._names(conn)
        names = (
            "counter_key",
            "failures",
            "window_ends",
            "locked_until",
            "lock_level",
            "in_flight",
            "in_flight_until",
            "last_attempt",
        )
        return ", ".join(q(n) for n in names)

    def begin(
        self,
        keys: list[Key],
        attempt: str,
        refusals: dict[str, dict],
        *,
        reserved: dict[str, int] | None = None,
    ) -> Begin:
        """``reserved``: places in flight per key that this table does not hold (attempts
        Redis admitted before it failed, outcome not known yet): admitted only when
        *failures + in flight + reserved* stay below the limit."""
        return _without_events_if_refused(self._begin, keys, attempt, refusals, reserved or {})

    def fail(
        self,
        keys: list[Key],
        attempt: str,
        event: dict,
        locked: dict[str, dict],
        *,
        held: bool = True,
        admitted_by: Any = None,
    ) -> list[Lock]:
        """``held``: whether the attempt holds a place in flight here (not when Redis
        admitted it and failed since)."""
        return _without_events_if_refused(self._fail, keys, attempt, event, locked, held)

    def _begin(
        self, keys: list[Key], attempt: str, refusals: dict[str, dict], reserved: dict[str, int]
    ) -> Begin:
        """One upsert over the keys, in key order: each row is reset when its window or
        in-flight period is over, and gets the attempt in flight when it is not locked and
        *failures + in flight* stays below its limit (``last_attempt`` then names it).  An
        attempt that not every lockable key admitted gives its places back (one UPDATE)."""
        from . import SLOT_TTL_MS

        if not keys:
            return Begin(True, store=self)
        now = now_ms()
        with _transaction() as (conn, cursor):
            t, q = self._names(conn)
            ordered = sorted({k.name: k for k in keys}.values(), key=lambda k: k.name)

            def col(name: str) -> str:
                return f"{t}.{q(name)}"

            live_failures = f"CASE WHEN {col('window_ends')} > %s THEN {col('failures')} ELSE 0 END"
            live_flight = (
                f"CASE WHEN {col('in_flight_until')} > %s THEN {col('in_flight')} ELSE 0 END"
            )
            limits = " ".join(["WHEN %s THEN %s"] * len(ordered))
            admit = (
                f"excluded.{q('last_attempt')} <> '' AND {col('locked_until')} <= %s AND "
                f"({live_failures}) + ({live_flight}) < CASE {col('counter_key')} {limits} END"
            )
            # An identical attempt (same fingerprint) in flight here: this one shares its place.
            same = (
                f"excluded.{q('last_attempt')} <> '' AND {col('locked_until')} <= %s AND "
                f"{col('in_flight_until')} > %s AND "
                f"{col('last_attempt')} = excluded.{q('last_attempt')}"
            )
            admit = f"(({admit}) OR ({same}))"
            admit_params: list[Any] = [now, now, now]
            for key in ordered:
                admit_params += [key.name, key.limit - reserved.get(key.name, 0)]
            admit_params += [now, now]
            same_params: list[Any] = [now, now]
            values = ", ".join(["(%s, 0, 0, 0, 0, %s, %s, %s)"] * len(ordered))
            params: list[Any] = []
            for key in ordered:
                takes = key.lockable
                params += [key.name, int(takes), now + SLOT_TTL_MS if takes else 0]
                params += [attempt if takes else ""]
            sql = (
                f"INSERT INTO {t} ({self._columns(conn)}) VALUES {values} "
                f"ON CONFLICT ({q('counter_key')}) DO UPDATE SET "
                f"{q('failures')} = {live_failures}, "
                f"{q('window_ends')} = CASE WHEN {col('window_ends')} > %s "
                f"THEN {col('window_ends')} ELSE 0 END, "
                f"{q('in_flight')} = CASE WHEN {same} THEN {live_flight} "
                f"WHEN {admit} THEN ({live_flight}) + 1 ELSE {live_flight} END, "
                f"{q('in_flight_until')} = CASE WHEN {admit} THEN %s "
                f"WHEN {col('in_flight_until')} > %s THEN {col('in_flight_until')} ELSE 0 END, "
                f"{q('last_attempt')} = CASE WHEN {admit} THEN excluded.{q('last_attempt')} "
                f"ELSE {col('last_attempt')} END "
                f"RETURNING {q('counter_key')}, {q('failures')}, {q('locked_until')}, "
                f"{q('lock_level')}, {q('last_attempt')}, {q('recent')}"
            )
            params += [now, now]  # failures, window_ends
            params += [*same_params, now, *admit_params, now, now]  # in_flight
            params += [*admit_params, now + SLOT_TTL_MS, now]  # in_flight_until
            params += admit_params  # last_attempt
            cursor.execute(sql, params)
            rows = {row[0]: row[1:] for row in cursor.fetchall()}
            lockable = [k for k in keys if k.lockable]
            held = [k.name for k in lockable if rows[k.name][3] == attempt]
            refusal: Begin | None = None
            for key in lockable:
                failures, locked_until, level, _, _ = rows[key.name]
                if locked_until > now:
                    refusal = Begin(False, key, locked_until - now, store=self)
                    break
            if refusal is None:
                for key in lockable:
                    failures, locked_until, level, _, _ = rows[key.name]
                    if failures >= key.limit:
                        # Confirmed failures at the limit without a lock (counted in Redis
                        # and drained here): the lock is due now.
                        lock = self._lock(conn, cursor, key, (failures, locked_until, level), now)
                        refusal = Begin(False, key, lock.ms, store=self, lock=lock)
                        break
            if refusal is None and _repeated(attempt, [rows[k.name][4] for k in keys]):
                refusal = Begin(False, store=self, repeat=True)
            if refusal is not None or len(held) < len(lockable):
                self._give_back(conn, cursor, held)
            if refusal is not None:
                kind = refusal.locked.kind if refusal.locked is not None else "repeat"
                insert_events(conn, cursor, [refusals.get(kind, {})])
                return refusal
            if len(held) < len(lockable):
                return Begin(False, store=self)
        return Begin(True, store=self)

    def _give_back(self, conn: Any, cursor: Any, names: list[str]) -> None:
        """One place in flight back on each key.  An upsert, so that the rows are locked in
        key order like every other statement here (an UPDATE ... IN locks them in scan order,
        and two such orders can deadlock)."""
        if not names:
            return
        t, q = self._names(conn)
        ordered = sorted(set(names))
        values = ", ".join(["(%s, 0, 0, 0, 0, 0, 0, '')"] * len(ordered))
        cursor.execute(
            f"INSERT INTO {t} ({self._columns(conn)}) VALUES {values} "
            f"ON CONFLICT ({q('counter_key')}) DO UPDATE SET {q('in_flight')} = "
            f"CASE WHEN {t}.{q('in_flight')} > 0 THEN {t}.{q('in_flight')} - 1 ELSE 0 END",
            ordered,
        )

    def _lock(self, conn: Any, cursor: Any, key: Key, row: tuple, now: int) -> Lock:
        t, q = self._names(conn)
        failures, locked_until, level = row
        _, base, ceiling, memory = policy()
        level = level + 1 if locked_until and now - locked_until < memory else 1
        duration = lock_duration(level, base, ceiling)
        cursor.execute(
            f"UPDATE {t} SET {q('locked_until')} = %s, {q('lock_level')} = %s, "
            f"{q('failures')} = 0, {q('window_ends')} = 0 WHERE {q('counter_key')} = %s",
            [now + duration, level, key.name],
        )
        return Lock(key, duration, level, failures)

    def _fail(
        self,
        keys: list[Key],
        attempt: str,
        event: dict,
        locked: dict[str, dict],
        held: bool = True,
    ) -> list[Lock]:
        """One upsert counts the failure on every key (a new window when the last one is
        over) and gives the attempt's place back; the keys at their limit lock."""
        now = now_ms()
        window = policy()[0]
        locks: list[Lock] = []
        if not keys:
            self.append([event])
            return locks
        with _transaction() as (conn, cursor):
            t, q = self._names(conn)

            def col(name: str) -> str:
                return f"{t}.{q(name)}"

            ordered = sorted({k.name for k in keys})
            memory = app_settings.REPEATED_PASSWORD_MEMORY
            fingerprint = attempt if memory else ""
            remembered = {r.counter_key: r.recent for r in self.rows(ordered)}
            if _repeated(attempt, [remembered.get(name, "") for name in ordered]):
                # The same wrong password failed meanwhile (an identical attempt in flight):
                # its place back, not counted again, its repeat event recorded.
                if held:
                    self._give_back(conn, cursor, [k.name for k in keys if k.lockable])
                insert_events(conn, cursor, [locked.get("repeat", event)])
                return locks
            values = ", ".join(["(%s, 1, %s, 0, 0, 0, 0, '', %s)"] * len(ordered))
            params: list[Any] = []
            for name in ordered:
                params += [name, now + window, fingerprint]
            back = "1" if held else "0"
            sets, _ = _remember(conn, t, memory)
            cursor.execute(
                f"INSERT INTO {t} ({self._columns(conn)}, {q('recent')}) VALUES {values} "
                f"ON CONFLICT ({q('counter_key')}) DO UPDATE SET {sets}, "
                f"{q('in_flight')} = CASE WHEN {col('in_flight')} >= {back} "
                f"THEN {col('in_flight')} - {back} ELSE 0 END "
                f"RETURNING {q('counter_key')}, {q('failures')}, {q('locked_until')}, "
                f"{q('lock_level')}",
                [*params, *_params(now, fingerprint)],
            )
            rows = {row[0]: row[1:] for row in cursor.fetchall()}
            for key in keys:
                failures, locked_until, _level = rows[key.name]
                if key.lockable and failures >= key.limit and locked_until <= now:
                    locks.append(self._lock(conn, cursor, key, rows[key.name], now))
            chosen = locked.get(locks[0].key.kind, event) if locks else event
            insert_events(conn, cursor, [chosen])
        return locks

    def release(self, keys: list[Key], attempt: str, *, admitted_by: Any = None) -> None:
        names = [k.name for k in keys if k.lockable]
        if names:
            with _transaction() as (conn, cursor):
                self._give_back(conn, cursor, names)

    def append(self, events: list[dict]) -> None:
        if events:
            with _transaction() as (conn, cursor):
                insert_events(conn, cursor, events)

    def peek(self, key: str) -> Peek:
        now = now_ms()
        row = FailureCounter.objects.filter(counter_key=key).first()
        if row is None:
            return Peek(0, 0, 0)
        flying = row.in_flight if row.in_flight_until > now else 0
        failures = row.failures if row.window_ends > now else 0
        return Peek(failures, max(0, row.locked_until - now), row.lock_level, flying)

    def clear(self, key: str) -> None:
        with _transaction() as (conn, cursor):
            t, q = self._names(conn)
            cursor.execute(f"DELETE FROM {t} WHERE {q('counter_key')} = %s", [key])

    def settle(self, keys: list[Key], locks: list[Lock], attempt: str = "") -> None:
        """Write through what Redis has just decided, in one transaction: one failure more on
        each of ``keys`` (a new window when the last one is over), and ``locks`` (never
        shortening a longer lock already here; the lock starts a new count).  The database
        then knows at least what Redis knows, should Redis lose it."""
        if not keys and not locks:
            return
        now = now_ms()
        window = policy()[0]
        # One upsert commits by itself; with locks too, one transaction for all.
        with _transaction() if locks else _one_statement() as (conn, cursor):
            t, q = self._names(conn)

            def col(name: str) -> str:
                return f"{t}.{q(name)}"

            ordered = sorted({k.name for k in keys})
            if ordered:
                memory = app_settings.REPEATED_PASSWORD_MEMORY
                fingerprint = attempt if memory else ""
                values = ", ".join(["(%s, 1, %s, 0, 0, 0, 0, '', %s)"] * len(ordered))
                params: list[Any] = []
                for name in ordered:
                    params += [name, now + window, fingerprint]
                sets, _ = _remember(conn, t, memory)
                cursor.execute(
                    f"INSERT INTO {t} ({self._columns(conn)}, {q('recent')}) VALUES {values} "
                    f"ON CONFLICT ({q('counter_key')}) DO UPDATE SET {sets}",
                    [*params, *_params(now, fingerprint)],
                )
            for lock in sorted(locks, key=lambda lock: lock.key.name):
                self._mirror(conn, cursor, lock.key.name, now + lock.ms, lock.level)

    def _mirror(self, conn: Any, cursor: Any, key: str, until_ms: int, level: int) -> None:
        """A lock decided in Redis, where this store (and the dashboard) see it: never
        shortens a longer lock already there."""
        t, q = self._names(conn)
        cursor.execute(
            f"INSERT INTO {t} ({self._columns(conn)}) VALUES (%s, 0, 0, %s, %s, 0, 0, '') "
            f"ON CONFLICT ({q('counter_key')}) DO UPDATE SET "
            f"{q('failures')} = 0, {q('window_ends')} = 0, "
            f"{q('locked_until')} = CASE WHEN {t}.{q('locked_until')} > %s "
            f"THEN {t}.{q('locked_until')} ELSE %s END, "
            f"{q('lock_level')} = CASE WHEN {t}.{q('lock_level')} > %s "
            f"THEN {t}.{q('lock_level')} ELSE %s END",
            [key, until_ms, level, until_ms, until_ms, level, level],
        )

    def lock(self, key: str, until_ms: int, level: int) -> None:
        self.mirror_lock(key, until_ms, level)

    def mirror_lock(self, key: str, until_ms: int, level: int) -> None:
        with _transaction() as (conn, cursor):
            self._mirror(conn, cursor, key, until_ms, level)

    def add_failures(self, counts: dict[str, int]) -> None:
        """Failures counted in Redis, added to the database's counters by the drain, so that
        counting goes on from them when Redis is down.  Keys that are locked are skipped (a
        lock starts a new count)."""
        if not counts:
            return
        now = now_ms()
        window = policy()[0]
        names = sorted(counts)
        with _transaction() as (conn, cursor):
            t, q = self._names(conn)
            new = f"{q('excluded')}.{q('failures')}"
            # One statement for every key (rows in key order, as everywhere here).
            cursor.execute(
                f"INSERT INTO {t} ({self._columns(conn)}) VALUES "
                + ", ".join(["(%s, %s, %s, 0, 0, 0, 0, '')"] * len(names))
                + f" ON CONFLICT ({q('counter_key')}) DO UPDATE SET "
                f"{q('failures')} = CASE WHEN {t}.{q('locked_until')} > %s "
                f"THEN {t}.{q('failures')} WHEN {t}.{q('window_ends')} <= %s THEN {new} "
                f"ELSE {t}.{q('failures')} + {new} END, "
                f"{q('window_ends')} = CASE WHEN {t}.{q('locked_until')} > %s "
                f"THEN {t}.{q('window_ends')} WHEN {t}.{q('window_ends')} <= %s THEN %s "
                f"ELSE {t}.{q('window_ends')} END",
                [v for name in names for v in (name, counts[name], now + window)]
                + [now, now, now, now, now + window],
            )

    def live_rows(self) -> list[FailureCounter]:
        """Rows with a lock, a remembered lock level or a count in force now (to reseed Redis
        after an outage or when it has lost its keys)."""
        from django.db.models import Q

        now = now_ms()
        remembered = now - policy()[3]
        return list(
            FailureCounter.objects.filter(
                Q(locked_until__gt=remembered, lock_level__gt=0)
                | Q(window_ends__gt=now, failures__gt=0)
            )
        )

    def forget_passwords(self, key: str) -> None:
        with _transaction() as (conn, cursor):
            t, q = self._names(conn)
            cursor.execute(
                f"UPDATE {t} SET {q('recent')} = '' WHERE {q('counter_key')} = %s", [key]
            )

    def rows(self, names: list[str]) -> list[FailureCounter]:
        """The rows of these counter keys (to merge them into Redis)."""
        return list(FailureCounter.objects.filter(counter_key__in=names))

    def locked(self, prefix: str) -> list[Held]:
        """Counters under a lock now whose key starts with ``prefix``, longest first."""
        now = now_ms()
        rows = FailureCounter.objects.filter(
            counter_key__startswith=prefix, locked_until__gt=now
        ).order_by("-locked_until")
        return [Held(r.counter_key, r.locked_until - now, r.lock_level) for r in rows]

    def prune(self) -> int:
        """Delete rows whose window and lock are over and whose level is forgotten."""
        now = now_ms()
        horizon = now - policy()[3]
        deleted, _ = FailureCounter.objects.filter(
            window_ends__lt=now, locked_until__lt=horizon
        ).delete()
        return deleted


def stamp() -> datetime:
    return timezone.now()
