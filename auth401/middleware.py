"""``Auth401Middleware``: request ids everywhere, and the contract body for non-DRF API views.

Place it after ``AuthenticationMiddleware``.  It

- gives every request an id (the caller's ``X-Request-ID`` when sane, else a new one) and
  echoes it on every response;
- under ``API_PATH_PREFIXES``, turns a plain Django view's ``PermissionDenied`` and a
  login-required redirect into the JSON body (DRF views answer for themselves through
  ``auth401.handlers.exception_handler``); everything else stays as it was (HTML);
- ends sessions older than the account's last lock or suspension: a session user whose
  account may not be used (``accounts.failure_for``) is anonymous, and a revoked session is
  flushed, for plain Django views (the admin) as for DRF;
- owns the request's ``auth401.state`` and runs its after-response work once the response
  has been sent (lock mirrors, batched audit rows, the drain of the event stream);
- logs every unexpected error with its request id, whatever ``DEBUG`` is;
- refuses to start with a bad ``AUTH401`` setting, since system checks do not run under
  gunicorn or uwsgi.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import (
    BadRequest,
    ImproperlyConfigured,
    PermissionDenied,
    SuspiciousOperation,
)
from django.core.signals import request_finished
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import resolve_url
from django.utils.functional import SimpleLazyObject
from rest_framework.exceptions import ParseError

from . import devices, drain, events, state
from .accounts import failure_for
from .conf import SETTING_NAME, app_settings, validate
from .exceptions import Auth401Error
from .request_id import HEADER, get_request_id
from .signals import session_issued_at

logger = logging.getLogger("auth401")

#: what a client's bad input raises, answered 400 by Django (or DRF): logged at INFO, without
#: a traceback (``DisallowedModelAdminLookup``, ``RequestDataTooBig``, ``TooManyFieldsSent``
#: and ``DisallowedHost`` are ``SuspiciousOperation``s)
CLIENT_ERRORS = (SuspiciousOperation, BadRequest, ParseError)


def is_api_path(request: HttpRequest) -> bool:
    return request.path_info.startswith(app_settings.api_path_prefixes)


def session_user(request: HttpRequest) -> Any:
    """``get_user(request)``, refused when the account's state forbids it; a session that
    predates the last lock or suspension is flushed (a new login is needed)."""
    user = get_user(request)
    if not user.is_authenticated:
        return user
    failure = failure_for(
        user, issued_at=session_issued_at(request.session), revoked_code="session_expired"
    )
    if failure is None:
        return user
    if failure.code == "session_expired":
        request.session.flush()
    return AnonymousUser()


#: after-response work of the response this thread answered last, until request_finished
_pending = threading.local()


def run_pending(**kwargs: Any) -> None:
    """``request_finished``: the response was sent and closed; run its work.  A database
    connection that Django had already closed for the request's end and that the work opened
    again is closed after it, as Django would have."""
    work = getattr(_pending, "work", None)
    if not work:
        return
    _pending.work = None
    closed = [c for c in connections.all(initialized_only=True) if c.connection is None]
    try:
        state.run(work)
    finally:
        for conn in closed:
            if conn.connection is not None and not conn.in_atomic_block:
                conn.close()


request_finished.connect(run_pending, dispatch_uid="auth401_after_response")


def _login_path() -> str:
    return urlsplit(resolve_url(settings.LOGIN_URL)).path


class Auth401Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        problems = validate(getattr(settings, SETTING_NAME, None))
        if problems:
            raise ImproperlyConfigured("; ".join(p.message for p in problems))
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        self.start(request)
        return self.finish(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.start(request)
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        response = await get_response(request)
        # finish() may query and write (the 401 body, the audit rows): not in the event loop.
        # Under ASGI the after-response work runs here, in the request's own thread, before
        # the response is handed back: Django closes ASGI responses in another thread, with
        # other database connections than the request's.
        return await sync_to_async(self.finish)(request, response, now=True)

    def start(self, request: HttpRequest) -> None:
        """Shared by the sync and async paths."""
        run_pending()  # a response nobody closed: its work runs before this request's
        get_request_id(request)
        state.start(request)
        if hasattr(request, "user") and hasattr(request, "session"):
            # As Django's AuthenticationMiddleware does; the stubs type request.user as the
            # user itself, not the lazy object standing in for it.
            request.user = SimpleLazyObject(lambda: session_user(request))  # type: ignore[assignment]

    def finish(
        self, request: HttpRequest, response: HttpResponseBase, now: bool = False
    ) -> HttpResponseBase:
        """Shared by the sync and async paths."""
        if (
            response.status_code == 302
            and is_api_path(request)
            and urlsplit(response.get("Location", "")).path == _login_path()
        ):
            response = self._render(request, None)
        if HEADER not in response:
            response[HEADER] = get_request_id(request)
        devices.set_cookie(request, response)
        self._after_response(request, response, now)
        return response

    @staticmethod
    def _after_response(request: HttpRequest, response: HttpResponseBase, now: bool) -> None:
        """Run the request's after-response work once the server has sent the response:
        after the view's transaction (``ATOMIC_REQUESTS`` cannot undo it), without the answer
        waiting for it.  Nothing is attached to the response (the site-wide cache pickles
        it): the work waits in this thread until Django's ``request_finished``, which the
        response's ``close()`` sends once the server has sent it (streamed and file
        responses included)."""
        current = state.of(request)
        work = [*current.after, events.held.flush_if_due, drain.after_response]
        current.after = []
        current.managed = False  # work added from now on runs at once
        if now:
            state.run(work)
            return
        _pending.work = work

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, PermissionDenied) and is_api_path(request):
            text = str(exception.args[0]) if exception.args else None
            return self._render(request, Auth401Error("permission_denied", detail=text or None))
        if isinstance(exception, CLIENT_ERRORS):
            # Django answers these 400 (a disallowed admin lookup, a body over the limits, a
            # bad Host): the client's mistake, logged without a traceback.
            logger.info(
                "auth401: client error %s on %s %s (%r) request_id=%s",
                type(exception).__name__,
                request.method,
                events.clean(request.path, 200),
                str(exception)[:200],
                get_request_id(request),
                extra={"request_id": get_request_id(request)},
            )
        elif not isinstance(exception, PermissionDenied | Auth401Error | Http404):
            # Django logs it too, but only where its own logging is configured (DEBUG off
            # and no LOGGING: nowhere); this record carries the request id either way.
            logger.error(
                "auth401: unexpected %s on %s %s request_id=%s",
                type(exception).__name__,
                request.method,
                request.path,
                get_request_id(request),
                exc_info=exception,
                extra={"request_id": get_request_id(request)},
            )
        return None

    def _render(self, request: HttpRequest, failure: Auth401Error | None) -> HttpResponseBase:
        from .authentication import SessionAuthentication
        from .handlers import render_failure, unauthenticated

        # A plain Django view (login_required) accepts a session, nothing else: its answer
        # names that, and an Authorization header it cannot use is scheme_unsupported (the
        # credentials were sent, so not "missing"), with the session as what it accepts.
        authenticators = [SessionAuthentication()]
        if failure is None:
            failure = unauthenticated(request, authenticators)
        return render_failure(request, failure, authenticators)
