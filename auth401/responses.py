"""The one place that turns a failure into a response: body (both formats) and headers.

The DRF exception handler, the middleware and the login paths all call ``render()``, so
``status``, ``error``, ``code``, ``detail``, ``hint``, ``request_id`` and every header are
written here and nowhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone, translation
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response

from .conf import app_settings
from .exceptions import Auth401Error
from .request_id import HEADER as REQUEST_ID_HEADER
from .request_id import get_request_id, http_request

# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (printable ASCII but " and \).
_NOT_QUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def header_safe(text: str, limit: int = 200) -> str:
    """Text that can stand inside a quoted header parameter: no quotes, controls or non-ASCII."""
    return _NOT_QUOTABLE.sub("?", text[:limit])


def effective(failure: Auth401Error) -> Auth401Error:
    """Apply ``DISCLOSE_ACCOUNT_STATE``: account-state codes become ``credentials_invalid``."""
    if failure.reason.discloses_account and not app_settings.DISCLOSE_ACCOUNT_STATE:
        return Auth401Error("credentials_invalid", scheme=failure.scheme)
    return failure


def bearer_challenge(scheme: str, realm: str, failure: Auth401Error | None) -> str:
    """A Bearer challenge, with RFC 6750 ``error`` parameters when the Bearer scheme failed."""
    challenge = f'{scheme} realm="{realm}"'
    error = failure.reason.bearer_error if failure is not None else None
    if error and failure is not None and failure.scheme == "Bearer":
        if (translation.get_language() or "en").partition("-")[0] == "en":
            description = header_safe(failure.render_detail())  # already English
        else:
            with translation.override("en"):
                description = header_safe(failure.render_detail())
        challenge += f', error="{error}", error_description="{description}"'
    return challenge


def challenges(
    request: Any, authenticators: Iterable[Any], failure: Auth401Error | None
) -> list[str]:
    """One ``WWW-Authenticate`` challenge per HTTP scheme the authenticators accept, in order.

    The session is not an HTTP authentication scheme: its ``Session`` challenge is given only
    when the view accepts nothing else, because a 401 must carry a challenge (RFC 9110).
    """
    found: list[str] = []
    fallback: list[str] = []
    for authenticator in authenticators:
        # DRF's ForcedAuthentication (force_authenticate in tests) has no authenticate_header
        plain = getattr(authenticator, "authenticate_header", None)
        own = getattr(authenticator, "auth401_challenge", None)
        challenge = own(request, failure) if own else plain(request) if plain else None
        if challenge and challenge not in found:
            found.append(challenge)
        elif own and not challenge and plain:
            fallback.append(plain(request))
    return found or fallback[:1]


def _members(request: HttpRequest, failure: Auth401Error, status: int) -> dict[str, Any]:
    members: dict[str, Any] = {}
    extras = failure.reason.extras
    if "retry_after" in extras and failure.retry_after is not None:
        members["retry_after"] = failure.retry_after
    if "server_time" in extras:
        members["server_time"] = iso_utc(failure.server_time or timezone.now())
    return members


def _detail(failure: Auth401Error) -> ErrorDetail:
    """``detail`` as DRF gives it in ``response.data`` (a str with ``.code``), so code that
    reads ``response.data["detail"].code`` keeps working; in JSON it is a plain string.  The
    body's ``code`` member is always the catalogue's."""
    own = getattr(failure.custom_detail, "code", None)  # a view's own message keeps its code
    return ErrorDetail(failure.render_detail(), code=own or failure.code)


def _docs_url(code: str) -> str | None:
    template = app_settings.DOCS_URL
    return template.replace("{code}", code) if template else None  # no other braces read


def _auth401_body(request: HttpRequest, failure: Auth401Error, status: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "error": failure.reason.title(),
        "code": failure.code,
        "detail": _detail(failure),
        "hint": failure.render_hint(),
        "request_id": get_request_id(request),
    }
    body.update(_members(request, failure, status))
    docs = _docs_url(failure.code)
    if docs:
        body["docs"] = docs
    return body


def _problem_body(request: HttpRequest, failure: Auth401Error, status: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": _docs_url(failure.code) or "about:blank",
        "title": failure.reason.title(),
        "status": status,
        "detail": _detail(failure),
        "instance": request.path,
        "code": failure.code,
        "hint": failure.render_hint(),
        "request_id": get_request_id(request),
    }
    body.update(_members(request, failure, status))
    return body


def _standardized_errors_body(
    request: HttpRequest, failure: Auth401Error, status: int
) -> dict[str, Any]:
    """drf-standardized-errors' shape (``type``, ``errors[]`` of ``code``, ``detail``,
    ``attr``), each error also carrying auth401's ``hint``, ``request_id`` and the optional
    members; ``code`` is the catalogue's, as in the other formats."""
    error: dict[str, Any] = {
        "code": failure.code,
        "detail": _detail(failure),
        "attr": None,
        "hint": failure.render_hint(),
        "request_id": get_request_id(request),
    }
    error.update(_members(request, failure, status))
    docs = _docs_url(failure.code)
    if docs:
        error["docs"] = docs
    return {"type": "client_error", "errors": [error]}


# RESPONSE_FORMAT -> (Content-Type, body builder)
FORMATS: dict[str, tuple[str, Callable[[HttpRequest, Auth401Error, int], dict[str, Any]]]] = {
    "auth401": ("application/json", _auth401_body),
    "problem": ("application/problem+json", _problem_body),
    "standardized_errors": ("application/json", _standardized_errors_body),
}


class FailureResponse(Response):
    """A DRF ``Response`` whose body is always the failure's JSON, in its format's media
    type, whatever renderer the view negotiated (the browsable API included): a client gets
    the same answer whatever it sent in ``Accept``.  It is rendered when built, so the
    middleware can return it from outside a view; ``render()`` is then a no-op."""

    @property
    def rendered_content(self) -> bytes:  # type: ignore[override]  # DRF's is bytes too
        # "replace": text no UTF-8 encodes (a lone surrogate from a view's own message) is a
        # "?", never a 500 after the failure has been recorded as answered.
        return json.dumps(self.data, ensure_ascii=False).encode("utf-8", "replace")


def render(request: Any, failure: Auth401Error, challenge_list: Iterable[str] = ()) -> Response:
    """The complete response for ``failure``: status, body and every header."""
    req = http_request(request)
    failure = effective(failure)
    status = failure.reason.status_code()
    content_type, build = FORMATS[app_settings.RESPONSE_FORMAT]
    body = build(req, failure, status)
    response = FailureResponse(body, status=status, content_type=content_type)
    response.render()
    response["Content-Type"] = content_type
    response["Cache-Control"] = "no-store"
    response[REQUEST_ID_HEADER] = get_request_id(req)
    if status == 401:
        listed = list(challenge_list)
        if listed:
            response["WWW-Authenticate"] = ", ".join(listed)
    retry_after = _members(req, failure, status).get("retry_after")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
