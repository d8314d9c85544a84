"""The one place that turns a failure into a response: body (each format) and headers.

The DRF exception handler, the middleware and the login paths all call ``render()``, so
``status``, ``error``, ``code``, ``detail``, ``hint``, ``request_id`` and every header are
written here and nowhere else.

``RESPONSE_FORMAT = "upstream"`` answers as DRF and simplejwt answer (their bodies, texts and
statuses) while auth401 still decides, counts, locks and records with its own code, which
the ``X-Auth401-Code`` header carries in every format.  What upstream raises for each of
auth401's refusals is a table (``UPSTREAM_ANSWERS``), not code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core import exceptions as django_exceptions
from django.http import HttpRequest
from django.utils import timezone, translation

# Upstream's own message ids: DRF's and simplejwt's catalogues translate them, as upstream's
# code does (a name makemessages does not extract, so they stay out of auth401's catalogue).
from django.utils.translation import gettext_lazy as upstream_text
from rest_framework import exceptions as drf_exceptions
from rest_framework.exceptions import APIException, ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework_simplejwt import exceptions as jwt_exceptions
from rest_framework_simplejwt import settings as simplejwt  # rebound on changes

from .codes import PROBLEMS
from .conf import app_settings
from .exceptions import Auth401Error
from .request_id import HEADER as REQUEST_ID_HEADER
from .request_id import get_request_id, http_request

#: the header that carries auth401's code in every format (the body's ``code`` where it has one)
CODE_HEADER = "X-Auth401-Code"
#: the RESPONSE_FORMAT that keeps upstream's wire format
UPSTREAM = "upstream"

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


def render(
    request: Any,
    failure: Auth401Error,
    challenge_list: Iterable[str] = (),
    *,
    raised: BaseException | None = None,
    upstream_challenge: str | None = None,
    in_view: bool = False,
) -> Response:
    """The complete response for ``failure``: status, body and every header.

    For ``RESPONSE_FORMAT = "upstream"``: ``raised`` is the exception the handler was given,
    ``upstream_challenge`` the ``WWW-Authenticate`` DRF would send (None: DRF answers 403),
    and ``in_view`` says that DRF's view renders the response with the renderer it negotiated,
    as it renders its own errors (otherwise it is rendered as JSON here)."""
    req = http_request(request)
    if app_settings.RESPONSE_FORMAT == UPSTREAM:
        answer = upstream_exception(failure, raised)
        return _render_upstream(req, failure, answer, upstream_challenge, in_view)
    failure = effective(failure)
    status = failure.reason.status_code()
    content_type, build = FORMATS[app_settings.RESPONSE_FORMAT]
    body = build(req, failure, status)
    response = FailureResponse(body, status=status, content_type=content_type)
    response.render()
    response["Content-Type"] = content_type
    if status == 401:
        listed = list(challenge_list)
        if listed:
            response["WWW-Authenticate"] = ", ".join(listed)
    _add_headers(req, failure, status, response)
    return response


def _add_headers(req: HttpRequest, failure: Auth401Error, status: int, response: Any) -> None:
    """auth401's own headers, in every format: no caching, the request id, the code, and
    ``Retry-After`` on locks with an end."""
    response["Cache-Control"] = "no-store"
    response[REQUEST_ID_HEADER] = get_request_id(req)
    response[CODE_HEADER] = failure.code
    retry_after = _members(req, failure, status).get("retry_after")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)


# --- RESPONSE_FORMAT = "upstream" ------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamAnswer:
    """What DRF or simplejwt raises at one of its raise sites: the exception class, its text
    (None: the class's default), simplejwt's ``code``, and simplejwt's ``messages`` list
    (``"kept"``: the one auth401's error carries, built from the token classes' real errors;
    ``"invalid"``: "Token is invalid" for each of ``AUTH_TOKEN_CLASSES``)."""

    raises: type[APIException]
    detail: Any = None
    code: str | None = None
    messages: str | None = None

    def build(self, error: Auth401Error) -> APIException:
        detail: Any = self.detail
        if self.messages is not None:
            detail = {"detail": detail, "messages": _MESSAGES[self.messages](error)}
        if self.code is not None:
            return self.raises(detail, code=self.code)
        return self.raises(detail)


def _kept_messages(error: Auth401Error) -> list[Any]:
    detail: Any = error.detail
    return list(detail.get("messages", ())) if isinstance(detail, dict) else []


def _invalid_messages(error: Auth401Error) -> list[dict[str, Any]]:
    return [
        {
            "token_class": token_class.__name__,
            "token_type": getattr(token_class, "token_type", None),
            "message": upstream_text("Token is invalid"),
        }
        for token_class in simplejwt.api_settings.AUTH_TOKEN_CLASSES
    ]


_MESSAGES: dict[str, Callable[[Auth401Error], list[Any]]] = {
    "kept": _kept_messages,
    "invalid": _invalid_messages,
}

_GIVEN_TOKEN = upstream_text("Given token not valid for any token type")
_REFRESH_NO_ACCOUNT = upstream_text("No active account found for the given token.")
_TOKEN_CODES = ("token_invalid", "token_expired", "token_not_yet_valid", "token_wrong_type")

#: (auth401's code as answered, raise site, problem) -> what upstream raises there.  The raise
#: site is simplejwt's code where auth401's error carries one (simplejwt's errors name their
#: site so), else the scheme that failed; the problem is the ``PROBLEMS`` key of a malformed
#: header or an invalid token.  Lookup: the full key, then without the problem, then the code
#: alone (every code listed has that row).  Where auth401 refused from upstream's own exception
#: (``raise ... from``: a Basic header DRF could not parse, a wrong Basic password, a CSRF
#: failure), that exception is the answer.  A code not listed has no upstream counterpart (a
#: lock, a suspension, an expired password): it answers auth401's text and status in DRF's
#: shape.
UPSTREAM_ANSWERS: dict[tuple[str, str | None, str | None], UpstreamAnswer] = {
    # simplejwt's JWTAuthentication
    ("authorization_malformed", "bad_authorization_header", None): UpstreamAnswer(
        jwt_exceptions.AuthenticationFailed,
        upstream_text("Authorization header must contain two space-delimited values"),
        code="bad_authorization_header",
    ),
    ("authorization_malformed", "bad_authorization_header", "token_not_ascii"): UpstreamAnswer(
        jwt_exceptions.InvalidToken, _GIVEN_TOKEN, messages="invalid"
    ),
    **{
        (code, "token_not_valid", None): UpstreamAnswer(
            jwt_exceptions.InvalidToken, _GIVEN_TOKEN, messages="kept"
        )
        for code in (*_TOKEN_CODES, "token_revoked")
    },
    ("token_invalid", "token_not_valid", "no_user"): UpstreamAnswer(
        jwt_exceptions.InvalidToken,
        upstream_text("Token contained no recognizable user identification"),
    ),
    ("token_invalid", "user_not_found", None): UpstreamAnswer(
        jwt_exceptions.AuthenticationFailed, upstream_text("User not found"), code="user_not_found"
    ),
    ("account_inactive", "user_inactive", None): UpstreamAnswer(
        jwt_exceptions.AuthenticationFailed, upstream_text("User is inactive"), code="user_inactive"
    ),
    ("token_revoked", "password_changed", None): UpstreamAnswer(
        jwt_exceptions.AuthenticationFailed,
        upstream_text("The user's password has been changed."),
        code="password_changed",
    ),
    # simplejwt's refresh serializer (DRF's AuthenticationFailed there)
    ("credentials_invalid", "no_active_account", None): UpstreamAnswer(
        drf_exceptions.AuthenticationFailed, _REFRESH_NO_ACCOUNT, code="no_active_account"
    ),
    ("account_inactive", "no_active_account", None): UpstreamAnswer(
        drf_exceptions.AuthenticationFailed, _REFRESH_NO_ACCOUNT, code="no_active_account"
    ),
    # DRF's TokenAuthentication (its default keyword)
    ("credentials_invalid", "Token", None): UpstreamAnswer(
        drf_exceptions.AuthenticationFailed, upstream_text("Invalid token.")
    ),
    ("account_inactive", "Token", None): UpstreamAnswer(
        drf_exceptions.AuthenticationFailed, upstream_text("User inactive or deleted.")
    ),
    # any class: no usable credentials is DRF's NotAuthenticated
    ("credentials_missing", None, None): UpstreamAnswer(drf_exceptions.NotAuthenticated),
    ("scheme_unsupported", None, None): UpstreamAnswer(drf_exceptions.NotAuthenticated),
    ("session_expired", None, None): UpstreamAnswer(drf_exceptions.NotAuthenticated),
    ("credentials_invalid", None, None): UpstreamAnswer(drf_exceptions.AuthenticationFailed),
    ("account_inactive", None, None): UpstreamAnswer(
        drf_exceptions.AuthenticationFailed, upstream_text("User inactive or deleted.")
    ),
    ("authorization_malformed", None, None): UpstreamAnswer(drf_exceptions.AuthenticationFailed),
    ("token_invalid", None, None): UpstreamAnswer(
        jwt_exceptions.InvalidToken, upstream_text("Token is invalid")
    ),
    **{
        (code, None, None): UpstreamAnswer(jwt_exceptions.InvalidToken, _GIVEN_TOKEN)
        for code in ("token_expired", "token_not_yet_valid", "token_wrong_type", "token_revoked")
    },
    ("permission_denied", None, None): UpstreamAnswer(drf_exceptions.PermissionDenied),
    ("csrf_failed", None, None): UpstreamAnswer(drf_exceptions.PermissionDenied),
}

#: the codes upstream has a counterpart for (every other code answers auth401's own text)
UPSTREAM_CODES = frozenset(
    code for code, site, problem in UPSTREAM_ANSWERS if site is None and problem is None
)
assert {code for code, _site, _problem in UPSTREAM_ANSWERS} == UPSTREAM_CODES


def upstream_status(code: str, status: int) -> int:
    """The status of upstream's exception for ``code`` (401, or 403 for a permission or CSRF
    refusal), before DRF's 403 where the view's first class gives no challenge; ``status``
    (auth401's) for a code upstream has no counterpart for."""
    row = UPSTREAM_ANSWERS.get((code, None, None))
    return int(row.raises.status_code) if row is not None else status


def _site(error: Auth401Error) -> str | None:
    """Where upstream would have raised: simplejwt's code, else the scheme that failed."""
    detail: Any = error.detail
    if isinstance(detail, dict):
        code = detail.get("code")
        return str(code) if code is not None else None
    return error.scheme


def _problem(error: Auth401Error) -> str | None:
    raw = error.params.get("problem")  # dict.get: the lazy text itself, untranslated
    return next((key for key, text in PROBLEMS.items() if text is raw), None)


def _upstream_cause(error: BaseException) -> APIException | None:
    """The DRF or simplejwt exception auth401 raised ``error`` from, if any."""
    seen: set[int] = set()
    cause = error.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, APIException) and not isinstance(cause, Auth401Error):
            return cause
        cause = cause.__cause__
    return None


def upstream_exception(failure: Auth401Error, raised: BaseException | None) -> APIException:
    """What DRF or simplejwt raises where auth401 refused with ``failure`` (``raised``: the
    exception the handler was given): the answer under ``RESPONSE_FORMAT = "upstream"``."""
    answered = effective(failure)
    if answered.code not in UPSTREAM_CODES:
        return answered  # nothing upstream answers so: auth401's text and status
    if isinstance(raised, django_exceptions.PermissionDenied):
        return drf_exceptions.PermissionDenied()  # what DRF's handler makes of it
    if isinstance(raised, APIException) and not isinstance(raised, Auth401Error):
        return raised  # upstream's own (its token views, a permission) or a third party's
    error = raised if isinstance(raised, Auth401Error) else failure
    cause = _upstream_cause(error)
    if cause is not None:
        return cause
    site, problem = _site(error), _problem(error)
    for key in ((answered.code, site, problem), (answered.code, site, None)):
        if key in UPSTREAM_ANSWERS:
            return UPSTREAM_ANSWERS[key].build(error)
    return UPSTREAM_ANSWERS[(answered.code, None, None)].build(error)


def _render_upstream(
    req: HttpRequest,
    failure: Auth401Error,
    answer: APIException,
    challenge: str | None,
    in_view: bool,
) -> Response:
    """DRF's default handler's answer for ``answer``, with DRF's choice of status (a 401
    becomes 403 when the view's first authentication class gives no challenge), plus
    auth401's headers."""
    status = answer.status_code
    headers: dict[str, str] = {}
    if status == 401:
        if challenge:
            headers["WWW-Authenticate"] = challenge
        else:
            status = 403
    detail = answer.detail
    data = detail if isinstance(detail, list | dict) else {"detail": detail}
    response = Response(data, status=status, headers=headers)
    _add_headers(req, effective(failure), status, response)
    if not in_view:  # outside a DRF view (the middleware): JSON, as DRF's default renderer
        response.accepted_renderer = JSONRenderer()
        response.accepted_media_type = JSONRenderer.media_type
        response.renderer_context = {}  # type: ignore[attr-defined]  # DRF documents it
        response.render()
    return response
