"""The audit trail: one ``AuthEvent`` row and one ``auth401`` log record per failure.

``record_failure`` is called once per failure (the backend records password failures, with
the username as typed; the response layer records the rest), and ``record_success`` for
password logins when ``AUDIT_SUCCESS`` is on.  Rows are written by ``Auth401Middleware``
*after* the view returns, outside the request's transaction, so ``ATOMIC_REQUESTS`` cannot
roll them back; without the middleware they are written at once.  A failed write is logged
and never changes the answer.

Nothing secret is stored or logged: no password, no token (only a keyed 16-hex-digit
fingerprint of Bearer/API tokens, for correlation), no session key.  Text is truncated to
its column and stripped of control characters, so CR/LF in a username or user agent cannot
forge log lines.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import DatabaseError
from django.utils.crypto import salted_hmac

from . import signals
from .client_ip import client_ip
from .conf import app_settings
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


def _field(name: str) -> int:
    return AuthEvent._meta.get_field(name).max_length or 255


def build_event(
    request: Any,
    code: str,
    status_code: int | None,
    *,
    scheme: str | None = None,
    username: str = "",
    user: Any = None,
    note: str = "",
) -> AuthEvent:
    req = http_request(request)
    meta = req.META
    token = _token_of(request)
    if user is not None and not getattr(user, "pk", None):
        user = None  # AnonymousUser, TokenUser: nothing to link
    if not username and user is not None:
        username = user.get_username()
    return AuthEvent(
        code=code,
        status_code=status_code,
        username=clean(username, _field("username")),
        user=user,
        ip=client_ip(req),
        user_agent=clean(meta.get("HTTP_USER_AGENT"), _field("user_agent")),
        method=clean(req.method, _field("method")),
        path=clean(req.path, _field("path")),
        scheme=clean(scheme, _field("scheme")),
        request_id=get_request_id(req),
        token_fingerprint=fingerprint(token) if token else "",
        note=clean(note, _field("note")),
    )


def _log(event: AuthEvent, level: int) -> None:
    fields = {
        "code": event.code,
        "status_code": event.status_code,
        "username": event.username,
        "user_id": event.user_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "method": event.method,
        "path": event.path,
        "scheme": event.scheme,
        "request_id": event.request_id,
        "token_fingerprint": event.token_fingerprint,
    }
    logger.log(
        level,
        "auth401 %s %s user=%r ip=%s path=%s request_id=%s",
        event.status_code or "-",
        event.code,
        event.username,
        event.ip,
        event.path,
        event.request_id,
        extra=fields,
    )


def _write(events: list[AuthEvent]) -> None:
    if not events:
        return
    try:
        if len(events) == 1:
            # One INSERT in autocommit: one round trip (bulk_create adds BEGIN and COMMIT).
            events[0].save(force_insert=True)
        else:
            AuthEvent.objects.bulk_create(events)
    except DatabaseError:
        logger.exception(
            "auth401: %d audit event(s) could not be written; their log records stand",
            len(events),
        )


def _queue(request: Any, event: AuthEvent) -> None:
    req = http_request(request)
    pending = getattr(req, _PENDING, None)
    if pending is None:
        _write([event])  # no Auth401Middleware to write it after the view
    else:
        pending.append(event)


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
        _write([item for item in pending if isinstance(item, AuthEvent)])
        for work in (item for item in pending if not isinstance(item, AuthEvent)):
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
    request: Any, failure: Auth401Error, *, username: str = "", user: Any = None
) -> None:
    """Record ``failure`` once: the row, the log record and the ``auth_failed`` signal."""
    if getattr(failure, "audited", False) or request is None:
        return
    failure.audited = True  # type: ignore[attr-defined]
    from .responses import effective

    answered = effective(failure)
    note = "" if answered is failure else f"answered {answered.code}; reason {failure.code}"
    event = build_event(
        request,
        answered.code,
        answered.reason.status_code(),
        scheme=failure.scheme,
        username=username,
        user=user if user is not None else getattr(failure, "user", None),
        note=note,
    )
    _log(event, logging.WARNING)
    _queue(request, event)
    signals.auth_failed.send(sender=AuthEvent, request=request, failure=failure, event=event)


def record_success(request: Any, user: Any, scheme: str | None) -> None:
    if not app_settings.AUDIT_SUCCESS or request is None:
        return
    event = build_event(request, "login_succeeded", None, scheme=scheme, user=user)
    _log(event, logging.INFO)
    _queue(request, event)
