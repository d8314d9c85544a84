"""The per-request state of auth401: one typed object, owned by ``Auth401Middleware``.

Everything auth401 needs to remember about a request lives here, reached through one helper,
``state.of(request)`` (a DRF ``Request`` or Django's ``HttpRequest``)::

    from auth401 import state

    failure = state.of(request).failure   # what the backend decided, if anything

Without the middleware the object is made on first use and ``managed`` is False: the work
that would run after the response (``after_response``) then runs at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .request_id import http_request

logger = logging.getLogger("auth401")

_ATTRIBUTE = "_auth401_state"


@dataclass
class RequestState:
    #: True when ``Auth401Middleware`` runs ``after`` once the response is sent
    managed: bool = False
    #: the scheme a password login came through ("Basic"; set by the authentication class)
    scheme: str | None = None
    #: the failure the backend decided (DRF's Basic class, simplejwt's token view and the
    #: login forms answer with it)
    failure: Any = None
    #: event ids of the failures already recorded, so none is recorded twice
    recorded: set[str] = field(default_factory=set)
    #: work to run after the response (lock mirrors, the drain, the batch flush)
    after: list[Callable[[], None]] = field(default_factory=list)

    def after_response(self, work: Callable[[], None]) -> None:
        """Run ``work()`` after the response has been sent (at once when unmanaged): what the
        answer must not wait for, and what a request's rollback must not undo."""
        if self.managed:
            self.after.append(work)
        else:
            run([work])

    def is_recorded(self, failure: Any) -> bool:
        return failure.event_id in self.recorded

    def mark_recorded(self, failure: Any) -> None:
        self.recorded.add(failure.event_id)


def of(request: Any) -> RequestState:
    """The request's state (made, unmanaged, when the middleware did not)."""
    req = http_request(request)
    found = getattr(req, _ATTRIBUTE, None)
    if found is None:
        found = RequestState()
        setattr(req, _ATTRIBUTE, found)
    return found


def start(request: Any) -> RequestState:
    """Called by the middleware: a managed state for this request."""
    found = RequestState(managed=True)
    setattr(http_request(request), _ATTRIBUTE, found)
    return found


def run(work: list[Callable[[], None]]) -> None:
    """Run each piece of after-response work; a failure is logged and the rest still runs."""
    for item in work:
        try:
            item()
        except Exception:
            logger.exception("auth401: after-response work %r failed", item)
