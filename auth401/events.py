"""Audit events: build one (no secrets), log it, send ``auth_failed``, hand it on.

An event is a plain dict of ``AuthEvent`` field values plus a unique ``event_id`` made here,
at the failure; ``auth401.drain`` writes it to ``AuthEvent`` exactly once, whatever drains it.
Where an event goes:

- a failure that names an identity (a password checked or refused, a token whose signature
  verified, a session, an account state) is recorded *before its answer leaves*: by the
  counter call that counts it (``lockout``), or by ``record_failure`` through the counter
  store (the Redis stream, or the database on a connection the request's rollback cannot
  touch);
- a failure that names none (no credentials, a malformed header, an unsupported scheme, a
  token whose signature does not verify, an unknown API token) is aggregated per process
  (``Held``): one row per (code, client address, path) per ``AUDIT_BATCH_DELAY`` window, with
  a ``count``, written after a response once the window has passed and at a normal exit
  (``atexit``; ``flush()`` for a server's exit hook).  A ``kill -9`` loses at most one window
  of those counts; each failure's log record is written at once either way.  No thread, timer
  or signal handler is used.

Nothing secret is stored or logged: no password, no token (only a keyed 16-hex-digit
fingerprint of Bearer/API tokens), no session key.  Text is truncated to its column and
stripped of control characters, so CR/LF in a username or user agent cannot forge log lines.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
import time
import unicodedata
import uuid
from typing import Any

from django.utils import timezone
from django.utils.crypto import salted_hmac

from . import signals, state
from .client_ip import client_ip
from .conf import app_settings
from .exceptions import Auth401Error
from .models import AuthEvent
from .request_id import get_request_id, http_request, posted_token

logger = logging.getLogger("auth401")
#: one record per failure, written at once.  A library's logger gets a NullHandler (the logging
#: HOWTO's advice): configure ``auth401`` (or ``auth401.events``) in ``LOGGING`` to keep them;
#: unconfigured, they are dropped instead of going to stderr through Python's last resort.
#: auth401's own errors stay on ``auth401``.
event_logger = logging.getLogger("auth401.events")
event_logger.addHandler(logging.NullHandler())

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: schemes whose credentials are tokens (fingerprinted); Basic carries a password (never kept)
TOKEN_SCHEMES = ("bearer", "token")
#: failures that name no identity: batched (see the module's docstring)
IDENTITYLESS = frozenset(
    {
        "credentials_missing",
        "authorization_malformed",
        "scheme_unsupported",
        "token_invalid",
        "credentials_invalid",
        "login_busy",
        "lockout_unavailable",
    }
)

#: an event: AuthEvent attribute names -> JSON-able values
Event = dict[str, Any]


def clean(value: Any, limit: int) -> str:
    """Text safe for a column and a log line: control characters become '?', then cut."""
    return _CONTROL.sub("?", str(value or ""))[:limit]


def normalise_username(username: Any) -> str:
    """Case-folded NFKC, so ``ALICE``, ``alice`` and ``ａｌｉｃｅ`` are one username."""
    return unicodedata.normalize("NFKC", str(username)).casefold().strip()


def name_digest(username: Any) -> str:
    """A short hash of the normalised username (counter keys never hold a username)."""
    data = normalise_username(username).encode("utf-8", "replace")
    return hashlib.blake2b(data).hexdigest()[:40]


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
    limit = _LIMITS.get(name)
    if limit is None:
        field = AuthEvent._meta.get_field(name)
        limit = _LIMITS[name] = getattr(field, "max_length", None) or 255
    return limit


def build(
    request: Any,
    code: str,
    status_code: int | None,
    *,
    scheme: str | None = None,
    username: str = "",
    user: Any = None,
    user_id: Any = None,
    note: str = "",
    ip: str | None = None,
    actor_id: Any = None,
) -> Event:
    """One event, with a fresh ``event_id``.  ``request`` may be None (admin actions)."""
    if user is not None and not getattr(user, "pk", None):
        user = None  # AnonymousUser, TokenUser: nothing to link
    if user is not None:
        user_id = user.pk
        username = username or user.get_username()
    event: Event = {
        "event_id": uuid.uuid4().hex,
        "created_at": timezone.now().isoformat(),
        "code": code,
        "status_code": status_code,
        "username": clean(username, _field("username")),
        "username_normalised": clean(normalise_username(username), _field("username"))
        if username
        else "",
        "user_id": user_id,
        "ip": ip,
        "user_agent": "",
        "method": "",
        "path": "",
        "scheme": clean(scheme, _field("scheme")),
        "request_id": "",
        "token_fingerprint": "",
        "note": clean(note, _field("note")),
        "actor_id": actor_id,
    }
    if request is not None:
        req = http_request(request)
        meta = req.META
        token = _token_of(request)
        event.update(
            ip=ip or client_ip(req),
            user_agent=clean(meta.get("HTTP_USER_AGENT"), _field("user_agent")),
            method=clean(req.method, _field("method")),
            path=clean(req.path, _field("path")),
            request_id=get_request_id(req),
            token_fingerprint=fingerprint(token) if token else "",
        )
    return event


def for_failure(
    request: Any, failure: Auth401Error, *, username: str = "", user: Any = None, user_id=None
) -> Event:
    """The event of ``failure`` as answered (``DISCLOSE_ACCOUNT_STATE`` applied; the reason
    kept in the note when they differ)."""
    from .responses import effective

    answered = effective(failure)
    note = "" if answered is failure else f"answered {answered.code}; reason {failure.code}"
    event = build(
        request,
        answered.code,
        answered.reason.status_code(),
        scheme=failure.scheme,
        username=username,
        user=user,
        user_id=user_id,
        note=note,
    )
    event["event_id"] = failure.event_id
    return event


def retag(event: Event, code: str) -> Event:
    """``event`` with another outcome's code (as answered: ``DISCLOSE_ACCOUNT_STATE``
    applied), status and note; the same ``event_id``: only one of them is ever recorded."""
    from .codes import CATALOGUE

    reason = CATALOGUE[code]
    note = ""
    if reason.discloses_account and not app_settings.DISCLOSE_ACCOUNT_STATE:
        note = f"answered credentials_invalid; reason {code}"
        reason = CATALOGUE["credentials_invalid"]
    return {**event, "code": reason.code, "status_code": reason.status_code(), "note": note}


_LOGGED = (
    "event_id",
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


def log(event: Event, level: int = logging.WARNING) -> None:
    if not event_logger.isEnabledFor(level):
        return
    event_logger.log(
        level,
        "auth401 %s %s user=%r ip=%s path=%s request_id=%s",
        event["status_code"] or "-",
        event["code"],
        event["username"],
        event["ip"],
        event["path"],
        event["request_id"],
        extra={name: event.get(name) for name in _LOGGED},
    )


def announce(request: Any, failure: Auth401Error, event: Event) -> None:
    """Log the event and send ``auth_failed`` (with the unsaved ``AuthEvent``)."""
    log(event)
    if signals.auth_failed.has_listeners(AuthEvent):
        from .counters.database import event_row

        signals.auth_failed.send(
            sender=AuthEvent, request=request, failure=failure, event=event_row(event)
        )


def record_failure(
    request: Any,
    failure: Auth401Error,
    *,
    username: str = "",
    user: Any = None,
    durable: bool = False,
) -> None:
    """Record ``failure`` once (a second call for the same failure does nothing): the log
    record, ``auth_failed``, and the event, durably when it names an identity."""
    if request is None:
        return
    current = state.of(request)
    if current.is_recorded(failure):
        return
    current.mark_recorded(failure)
    user = user if user is not None else getattr(failure, "user", None)
    event = for_failure(request, failure, username=username, user=user)
    announce(request, failure, event)
    if durable or event["user_id"] is not None or failure.code not in IDENTITYLESS:
        store_now([event], request)
    else:
        held.add(event)
        if not current.managed:  # the middleware's own after-response work flushes otherwise
            held.flush_if_due()


def record_success(request: Any, user: Any, scheme: str | None) -> None:
    """A password login: an event only with ``AUDIT_SUCCESS``."""
    if request is None or not app_settings.AUDIT_SUCCESS:
        return
    event = build(request, "login_succeeded", None, scheme=scheme, user=user)
    log(event, logging.INFO)
    store_now([event], request)


def store_now(events: list[Event], request: Any = None) -> None:
    """Record events durably before the answer: the counter store's stream, or the database
    (logged, never raised, when both fail: the log records stand).  SQLite inside a request's
    transaction has no second connection: there the events are written after the response,
    where a rollback of the request cannot undo them."""
    from django.db import connection

    from .counters import get_store

    def append() -> None:
        try:
            get_store().append(events)
        except Exception:
            logger.exception("auth401: %d audit event(s) could not be recorded", len(events))

    if request is not None and connection.vendor == "sqlite" and connection.in_atomic_block:
        state.of(request).after_response(append)
    else:
        append()


def write(events: list[Event]) -> None:
    """Write events to ``AuthEvent`` now (see ``drain.write_events``); errors logged."""
    from .drain import write_events

    try:
        write_events(events)
    except Exception:
        logger.exception(
            "auth401: %d audit event(s) could not be written; their log records stand",
            len(events),
        )


class Held:
    """Identity-less failures of this process, aggregated: one row per (code, client address,
    path) per ``AUDIT_BATCH_DELAY`` window, carrying a ``count``, the first time
    (``created_at``), the last (``last_seen``) and the first request id.  Written by
    ``flush_if_due()`` after a response once the window has passed, and by ``flush()`` (at a
    normal exit through ``atexit``, registered when the first row is held, or from a
    server's exit hook).  At most ``MAX_GROUPS`` rows wait; further (address, path) pairs of
    a code are summed into one row for that code without address or path.  No thread, timer
    or signal handler: an idle worker holds its counts until its next response or its exit,
    and a worker killed outright loses at most one window of counts (at most ``MAX_GROUPS`` +
    one per code rows), never an identity event; each failure's log record is written at once.
    """

    MAX_GROUPS = 1_000

    def __init__(self) -> None:
        self._exit_hook = False
        self._forked()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # A forked child (a gunicorn worker) starts empty: the parent writes its own rows,
        # and a lock held by another thread at the fork would never be released.
        self._lock = threading.Lock()
        self._groups: dict[tuple[Any, ...], Event] = {}
        self._since = 0.0

    def add(self, event: Event) -> None:
        key = (event["code"], event["ip"], event["path"])
        with self._lock:
            group = self._groups.get(key)
            if group is None and len(self._groups) >= self.MAX_GROUPS:
                key = (event["code"], None, "")
                group = self._groups.get(key)
                if group is None:
                    event = {**event, "ip": None, "path": "", "note": OVERFLOW_NOTE}
            if group is None:
                if not self._groups:
                    self._since = time.monotonic()
                self._groups[key] = {**event, "count": 1, "last_seen": event["created_at"]}
            else:
                group["count"] += 1
                group["last_seen"] = event["created_at"]
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(self.flush)

    def pending(self) -> int:
        """How many failures are held (the sum of the rows' counts)."""
        with self._lock:
            return sum(group["count"] for group in self._groups.values())

    def flush_if_due(self) -> None:
        delay = app_settings.AUDIT_BATCH_DELAY.total_seconds()
        if self._groups and time.monotonic() - self._since >= delay:
            self.flush()

    def flush(self) -> None:
        """Write what is held, now."""
        with self._lock:
            rows, self._groups = list(self._groups.values()), {}
        if rows:
            write(rows)


#: the note of a row that sums the failures of a code beyond ``Held.MAX_GROUPS`` rows
OVERFLOW_NOTE = "other addresses and paths of this code in the same window"

held = Held()


def flush() -> None:
    """Write the identity-less rows this process holds, now: call it from a server's exit
    hook (gunicorn's ``worker_exit``, uWSGI's ``atexit``) where the normal interpreter exit
    does not run."""
    held.flush()
