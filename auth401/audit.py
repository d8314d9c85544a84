"""The audit trail: one ``AuthEvent`` row and one ``auth401`` log record per failure.

``record_failure`` is called once per failure (the backend records password failures, with
the username as typed; the response layer records the rest), and ``record_success`` for
password logins when ``AUDIT_SUCCESS`` is on.  The log record is written at once.  The row:

- of a failure decided by a password check (what brute force produces) is written durably
  before the answer leaves: on PostgreSQL in autocommit, by the user lookup's own statement
  (``PasswordRow``: the row of a wrong password goes with the lookup; another outcome
  updates or removes it after the view); otherwise by ``Auth401Middleware`` *after* the view
  returns, outside the request's transaction (``ATOMIC_REQUESTS`` cannot roll it back), or
  at once without the middleware;
- of any other failure (no credentials, a bad or expired token, a 403) is handed to a
  per-process writer thread that inserts the rows of up to ``AUDIT_BATCH_DELAY`` (one
  second) in one statement, on its own connection.  Those failures cost the caller no
  database work at all, which is what keeps a flood of junk tokens as cheap as bare DRF;
  a worker killed outright loses the rows still waiting (normally that second's), which
  its log records still hold.  ``AUDIT_BATCH_DELAY = timedelta(0)`` writes them like
  password failures (the default under Django's test environment).

Rows are single ``INSERT`` statements built once per connection (no ORM compiler per row).  A
failed write is logged and never changes the answer.

Nothing secret is stored or logged: no password, no token (only a keyed 16-hex-digit
fingerprint of Bearer/API tokens, for correlation), no session key.  Text is truncated to
its column and stripped of control characters, so CR/LF in a username or user agent cannot
forge log lines.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from contextlib import nullcontext
from typing import Any

from django.conf import settings
from django.core import mail
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from . import signals
from .client_ip import client_ip
from .conf import SETTING_NAME, app_settings
from .exceptions import Auth401Error
from .models import AuthEvent
from .request_id import get_request_id, http_request, posted_token

logger = logging.getLogger("auth401")

_PENDING = "_auth401_pending_events"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: schemes whose credentials are tokens (fingerprinted); Basic carries a password (never kept)
TOKEN_SCHEMES = ("bearer", "token")


def clean(value: Any, limit: int) -> str:
    """Text safe for a column and a log line: control characters become '?', then cut."""
    return _CONTROL.sub("?", str(value or ""))[:limit]


def fingerprint(token: str | bytes) -> str:
    """A short keyed hash: equal tokens share it, and it cannot be turned back into one."""
    return salted_hmac("auth401.token-fingerprint", token).hexdigest()[:16]


def _token_of(request: Any) -> str:
    header = http_request(request).META.get("HTTP_AUTHORIZATION", "")
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() in TOKEN_SCHEMES:
        return parts[1]
    return posted_token(request)  # simplejwt's token views take it in the body


_LIMITS: dict[str, int] = {}


def _field(name: str) -> int:
    """The column's length (looked up once)."""
    limit = _LIMITS.get(name)
    if limit is None:
        limit = _LIMITS[name] = AuthEvent._meta.get_field(name).max_length or 255
    return limit


#: a failure's row: AuthEvent attribute names -> values (built without a model instance)
Row = dict[str, Any]


def build_row(
    request: Any,
    code: str,
    status_code: int | None,
    *,
    scheme: str | None = None,
    username: str = "",
    user: Any = None,
    note: str = "",
) -> Row:
    req = http_request(request)
    meta = req.META
    token = _token_of(request)
    if user is not None and not getattr(user, "pk", None):
        user = None  # AnonymousUser, TokenUser: nothing to link
    if not username and user is not None:
        username = user.get_username()
    return {
        "created_at": timezone.now(),
        "code": code,
        "status_code": status_code,
        "username": clean(username, _field("username")),
        "user_id": user.pk if user is not None else None,
        "ip": client_ip(req),
        "user_agent": clean(meta.get("HTTP_USER_AGENT"), _field("user_agent")),
        "method": clean(req.method, _field("method")),
        "path": clean(req.path, _field("path")),
        "scheme": clean(scheme, _field("scheme")),
        "request_id": get_request_id(req),
        "token_fingerprint": fingerprint(token) if token else "",
        "note": clean(note, _field("note")),
    }


def build_event(request: Any, code: str, status_code: int | None, **kwargs: Any) -> AuthEvent:
    """The unsaved ``AuthEvent`` of ``build_row``."""
    return AuthEvent(**build_row(request, code, status_code, **kwargs))


def _log(row: Row, level: int) -> None:
    fields = {name: row[name] for name in _LOGGED}
    logger.log(
        level,
        "auth401 %s %s user=%r ip=%s path=%s request_id=%s",
        row["status_code"] or "-",
        row["code"],
        row["username"],
        row["ip"],
        row["path"],
        row["request_id"],
        extra=fields,
    )


_LOGGED = (
    "code",
    "status_code",
    "username",
    "user_id",
    "ip",
    "user_agent",
    "method",
    "path",
    "scheme",
    "request_id",
    "token_fingerprint",
)


def _columns(connection: Any) -> tuple[str, str, list[tuple[str, Any]]]:
    """The quoted table, the quoted column list, and each column's attribute name and
    database adapter (or None): what every audit statement (INSERT, COPY, the lookup's
    WITH clause) is built from; computed once per connection."""
    found = connection.__dict__.get("_auth401_audit_columns")
    if found is None:
        ops = connection.ops
        adapters = {
            "DateTimeField": ops.adapt_datetimefield_value,
            "GenericIPAddressField": ops.adapt_ipaddressfield_value,
        }
        fields = [f for f in AuthEvent._meta.concrete_fields if not f.primary_key]
        columns = [(f.attname, adapters.get(f.get_internal_type())) for f in fields]
        names = ", ".join(ops.quote_name(f.column) for f in fields)
        found = (ops.quote_name(AuthEvent._meta.db_table), names, columns)
        connection.__dict__["_auth401_audit_columns"] = found
    return found


def _params(row: Row, columns: list[tuple[str, Any]]) -> list[Any]:
    return [
        adapt(value) if adapt is not None and value is not None else value
        for value, adapt in ((row.get(name), adapt) for name, adapt in columns)
    ]


def _statement(connection: Any, count: int) -> tuple[str, list[tuple[str, Any]]]:
    """``INSERT INTO auth401_authevent (...) VALUES (...)`` for ``count`` rows, and the
    columns of ``_columns``; kept for one row and a full chunk, other sizes built when
    needed."""
    cache = connection.__dict__.setdefault("_auth401_audit_sql", {})
    found = cache.get(count)
    if found is None:
        table, names, columns = _columns(connection)
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        found = (f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * count)}", columns)
        if count == 1 or count == chunk_size(connection):
            cache[count] = found
    return found


#: rows per INSERT statement at most (fewer where the database takes fewer parameters)
CHUNK = 500


def chunk_size(connection: Any) -> int:
    """Rows per INSERT: ``CHUNK``, or what ``max_query_params`` allows (999 on older SQLite)."""
    columns = len(AuthEvent._meta.concrete_fields) - 1
    limit = getattr(connection.features, "max_query_params", None) or 32766
    return max(1, min(CHUNK, limit // columns))


def _copy_capable(connection: Any) -> bool:
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


def _copy(connection: Any, rows: list[Row]) -> bool:
    """PostgreSQL with psycopg 3, outside a transaction: ``COPY ... FROM STDIN``, about four
    times cheaper per row than a many-row INSERT (measured: 18 against 70 us).  False when
    the connection cannot."""
    if not _copy_capable(connection):
        return False
    table, names, columns = _columns(connection)
    with connection.cursor() as cursor:
        copy = getattr(cursor.cursor, "copy", None)  # psycopg 3 (psycopg2 has none)
        if copy is None:
            return False
        # psycopg's own cursor: its errors become Django's DatabaseError here, as in execute()
        with (
            connection.wrap_database_errors,
            copy(f"COPY {table} ({names}) FROM STDIN") as stream,
        ):
            for index, row in enumerate(rows, 1):
                stream.write_row([row.get(name) for name, _ in columns])
                if not index % 50:
                    time.sleep(0)  # let request threads have the GIL between slices
    return True


def write_rows(rows: list[Row]) -> None:
    """Insert ``rows`` (one statement per ``CHUNK``, or one COPY); inside a transaction, in a
    savepoint so an error cannot poison the caller's transaction."""
    using = router.db_for_write(AuthEvent)
    connection = connections[using]
    if len(rows) > 1 and _copy(connection, rows):
        return
    for chunk in _chunks(connection, rows):
        sql, columns = _statement(connection, len(chunk))
        params = [value for row in chunk for value in _params(row, columns)]
        guard = transaction.atomic(using=using) if connection.in_atomic_block else nullcontext()
        with guard, connection.cursor() as cursor:
            cursor.execute(sql, params)


def _groups(rows: list[Row]) -> list[list[Row]]:
    """What one statement writes: all rows (one COPY) or one INSERT's chunk each, so a
    failed statement leaves the others' rows written once and counted right."""
    connection = connections[router.db_for_write(AuthEvent)]
    return [rows] if _copy_capable(connection) else _chunks(connection, rows)  # one COPY


def _chunks(connection: Any, rows: list[Row]) -> list[list[Row]]:
    size = chunk_size(connection)
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _write(rows: list[Row]) -> None:
    for group in _groups(rows) if len(rows) > 1 else [rows] if rows else []:
        try:
            write_rows(group)
        except DatabaseError as exc:
            if isinstance(exc, IntegrityError) and len(group) > 1:
                # One bad row (a user deleted meanwhile) must not cost the others theirs.
                for row in group:
                    _write([row])
                continue
            logger.exception(
                "auth401: %d audit event(s) could not be written; their log records stand",
                len(group),
            )


class BatchWriter:
    """Rows handed over by requests, inserted by one thread per process at most
    ``AUDIT_BATCH_DELAY`` later, many per statement, on the thread's own connection (a
    request's transaction cannot roll them back; one more connection per process).  Rows
    the database refuses are logged and dropped, not retried.  At most ``LIMIT`` rows wait
    for a writer that is behind (a slow or unreachable database); beyond that the oldest are
    dropped, each drop logged (their log records stand).  A process killed outright loses
    the rows still waiting: normally one ``AUDIT_BATCH_DELAY`` of them."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self._forked()
        atexit.register(self.flush)
        # A forked child (a gunicorn worker) starts empty: the parent writes its own rows,
        # and a lock held by another thread at the fork would never be released.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[Row] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, row: Row) -> None:
        with self._lock:
            if len(self._rows) >= self.LIMIT:
                dropped = min(len(self._rows), max(1, self.LIMIT // 10))
                del self._rows[:dropped]
                logger.error("auth401: %d audit rows dropped (the writer is behind)", dropped)
            self._rows.append(row)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="auth401-audit-writer", daemon=True
                )
                self._thread.start()
            if len(self._rows) >= CHUNK:
                self._wake.set()

    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> None:
        """Write what is waiting, now, on the calling thread's connection."""
        with self._lock:
            rows, self._rows = self._rows, []
        _write(rows)

    def _run(self) -> None:
        while True:
            self._wake.wait(app_settings.AUDIT_BATCH_DELAY.total_seconds() or 1.0)
            self._wake.clear()
            try:
                self.flush()
                connection = connections[router.db_for_write(AuthEvent)]
                if connection.connection is not None and not connection.get_autocommit():
                    connection.commit()  # AUTOCOMMIT = False: nobody else commits here
            except DatabaseError:
                logger.exception("auth401: the audit writer could not commit its rows")
            finally:
                for connection in connections.all(initialized_only=True):
                    connection.close_if_unusable_or_obsolete()


batch = BatchWriter()


def batching() -> bool:
    """Whether rows of non-password failures go to the batch writer.  Under Django's test
    environment (``django.core.mail.outbox`` exists) the default is off: a writer thread
    with its own connection cannot see a test's uncommitted users and could outlive the
    test database; an explicit ``AUDIT_BATCH_DELAY`` is obeyed everywhere."""
    if not app_settings.AUDIT_BATCH_DELAY:
        return False
    configured = getattr(settings, SETTING_NAME, None) or {}
    return "AUDIT_BATCH_DELAY" in configured or not hasattr(mail, "outbox")


def _queue(request: Any, row: Row, durable: bool) -> None:
    if not durable and batching():
        batch.add(row)
        return
    req = http_request(request)
    pending = getattr(req, _PENDING, None)
    if pending is None:
        _write([row])  # no Auth401Middleware to write it after the view
    else:
        pending.append(row)


class PasswordRow:
    """The row of a password check's likeliest outcome, a wrong password
    (``credentials_invalid``), written *with the user lookup*: one statement, ``WITH ...
    AS (INSERT ...) SELECT <the user>``, in autocommit on PostgreSQL.  A failed login then
    costs one durable round trip instead of a lookup plus an INSERT.  When the outcome is
    another (a right password, a lock, a suspended account), ``settle`` replaces or removes
    the row after the view; ``executed`` says whether the statement ran at all (the lookup
    may have taken the ORM path, and then the row is written the usual way)."""

    def __init__(self, request: Any, row: Row, connection: Any) -> None:
        self.request, self.row, self.connection = request, row, connection
        self.executed = False

    @classmethod
    def for_lookup(cls, request: Any, username: str, scheme: str | None) -> PasswordRow | None:
        """None where it cannot apply: no request, not PostgreSQL, inside a transaction or
        with autocommit off (the row must not share the caller's fate, and a refused write
        must not abort the caller's transaction), or the events live in another database."""
        if request is None:
            return None
        from django.contrib.auth import get_user_model

        model = get_user_model()
        using = router.db_for_write(AuthEvent)
        connection = connections[using]
        if (
            using != model._default_manager.db
            or connection.vendor != "postgresql"
            or connection.in_atomic_block
            or not connection.get_autocommit()  # a caller's own transaction
        ):
            return None
        if model._meta.get_field(model.USERNAME_FIELD).model is not model:
            return None  # the username lives in a parent table (multi-table inheritance)
        row = build_row(request, "credentials_invalid", 401, scheme=scheme, username=username)
        return cls(request, row, connection)

    def build(self, username_parameter: Any) -> tuple[str, list[Any]]:
        """The ``WITH`` clause and its parameters; the row's user is looked up in the same
        statement by the prepared username parameter."""
        clause, columns = _password_row_clause(self.connection)
        params = _params({**self.row, "user_id": username_parameter}, columns)
        return clause, params

    def matches(self, code: str, status_code: int, scheme: str | None, note: str) -> bool:
        row = self.row
        return (row["code"], row["status_code"], row["scheme"], row["note"]) == (
            code,
            status_code,
            clean(scheme, _field("scheme")),
            clean(note, _field("note")),
        )

    def settle(self, final: Row | None) -> None:
        """After the view: remove the written row and write ``final`` instead (if any)."""
        written = self.row

        def replace() -> None:
            provisional = AuthEvent.objects.filter(
                request_id=written["request_id"],
                created_at=written["created_at"],
                code=written["code"],
                username=written["username"],
            )
            try:
                if final is None:
                    provisional.delete()
                    return
                # One UPDATE (a lock refusing a flood pays one write per attempt, not two).
                changed = provisional.update(**{k: final[k] for k in _SETTLED})
            except DatabaseError:
                logger.exception("auth401: a provisional audit row could not be settled")
                changed = 0
            if final is not None and not changed:
                _write([final])

        after_view(self.request, replace)


def _password_row_clause(connection: Any) -> tuple[str, list[tuple[str, Any]]]:
    """``WITH auth401_event AS (INSERT ...)`` with the user id as a sub-select on the
    username parameter (in the ``user_id`` column's place); built once per connection."""
    from django.contrib.auth import get_user_model

    model = get_user_model()
    cache = connection.__dict__.setdefault("_auth401_password_row_sql", {})
    found = cache.get(model)
    if found is None:
        quote = connection.ops.quote_name
        user_sql = (
            f"(SELECT {quote(model._meta.pk.column)} FROM {quote(model._meta.db_table)} "
            f"WHERE {quote(model._meta.get_field(model.USERNAME_FIELD).column)} = %s LIMIT 1)"
        )
        table, names, columns = _columns(connection)
        values = ", ".join(user_sql if name == "user_id" else "%s" for name, _ in columns)
        clause = f"WITH auth401_event AS (INSERT INTO {table} ({names}) VALUES ({values})) "
        found = cache[model] = (clause, columns)
    return found


_PASSWORD_ROW = "_auth401_password_row"
#: what may differ between the provisional row and the outcome's
_SETTLED = ("code", "status_code", "scheme", "note", "user_id")


def expect_password_check(request: Any, username: str, scheme: str | None) -> PasswordRow | None:
    """Called by the backend before its lookup; see ``PasswordRow``."""
    written = PasswordRow.for_lookup(request, username, scheme)
    if written is not None:
        setattr(http_request(request), _PASSWORD_ROW, written)
    return written


def _password_row(request: Any) -> PasswordRow | None:
    written = getattr(http_request(request), _PASSWORD_ROW, None)
    if not isinstance(written, PasswordRow) or not written.executed:  # a MagicMock request
        return None
    delattr(http_request(request), _PASSWORD_ROW)  # settled once
    return written


def start_request(request: Any) -> None:
    """Called by the middleware: events of this request wait for ``flush``."""
    setattr(http_request(request), _PENDING, [])


def flush(request: Any) -> None:
    """Called by the middleware once the view (and its transaction) is done: the rows first,
    then the deferred work (``after_view``), each failure of which is logged."""
    req = http_request(request)
    pending = getattr(req, _PENDING, None)
    if pending:
        setattr(req, _PENDING, [])
        _write([item for item in pending if isinstance(item, dict)])
        for work in (item for item in pending if not isinstance(item, dict)):
            try:
                work()
            except DatabaseError:
                logger.exception("auth401: deferred work %r failed", work)


def after_view(request: Any, work: Any) -> None:
    """Run ``work()`` once the view and its transaction are done (at once without the
    middleware): what a request's rollback must not undo, e.g. the automatic lock's row."""
    pending = getattr(http_request(request), _PENDING, None) if request is not None else None
    if pending is None:
        work()
    else:
        pending.append(work)


def record_failure(
    request: Any,
    failure: Auth401Error,
    *,
    username: str = "",
    user: Any = None,
    durable: bool = False,
) -> None:
    """Record ``failure`` once: the row, the log record and the ``auth_failed`` signal.
    ``durable``: a password failure, whose row is written before the answer leaves."""
    if getattr(failure, "audited", False) or request is None:
        return
    failure.audited = True  # type: ignore[attr-defined]
    from .responses import effective

    answered = effective(failure)
    note = "" if answered is failure else f"answered {answered.code}; reason {failure.code}"
    status_code = answered.reason.status_code()
    user = user if user is not None else getattr(failure, "user", None)
    written = _password_row(request) if durable else None
    if written is not None and written.matches(answered.code, status_code, failure.scheme, note):
        # The lookup's statement wrote this very row: only the log record is left to do.
        row = {**written.row, "user_id": getattr(user, "pk", None)}
        _log(row, logging.WARNING)
    else:
        row = build_row(
            request,
            answered.code,
            status_code,
            scheme=failure.scheme,
            username=username,
            user=user,
            note=note,
        )
        _log(row, logging.WARNING)
        if written is None:
            _queue(request, row, durable)
        else:
            written.settle(row)
    if signals.auth_failed.has_listeners(AuthEvent):
        event = AuthEvent(**row)  # unsaved: the row is written after the view
        signals.auth_failed.send(sender=AuthEvent, request=request, failure=failure, event=event)


def record_success(request: Any, user: Any, scheme: str | None) -> None:
    if request is None:
        return
    written = _password_row(request)
    if not app_settings.AUDIT_SUCCESS:
        if written is not None:
            written.settle(None)  # the provisional failure row goes
        return
    row = build_row(request, "login_succeeded", None, scheme=scheme, user=user)
    _log(row, logging.INFO)
    if written is not None:
        written.settle(row)
    else:
        _queue(request, row, durable=True)
