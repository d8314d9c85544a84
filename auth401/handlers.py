"""``exception_handler``: DRF's ``EXCEPTION_HANDLER`` for the auth401 contract.

It decides *which* reason applies to a 401/403 (``failure_for_exception``) and hands it to
``responses.render``; everything that is not an authentication or permission failure goes to
``AUTH401["FALLBACK_EXCEPTION_HANDLER"]`` untouched, so auth401 composes with DRF's default
handler or drf-standardized-errors.
"""

from __future__ import annotations

import re
from typing import Any, cast

from django.core import exceptions as django_exceptions
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.response import Response
from rest_framework.settings import api_settings as drf_settings
from rest_framework.views import APIView, set_rollback
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import UntypedToken
from rest_framework_simplejwt.views import TokenViewBase

from . import events, parsers, responses
from .authentication import session_failure
from .backends import stashed_failure
from .codes import COOKIE_SCHEMES, HEADER_NOTE, PROBLEMS, SCHEMES_OR, translated
from .conf import app_settings
from .exceptions import Auth401Error
from .request_id import posted_token
from .upstream import (
    UNREADABLE_CLAIMS,
    causes,
    classify_token_error,
    reason_for_upstream,
    unreadable_time,
    unverified_claims,
)

HANDLED = (
    drf_exceptions.NotAuthenticated,
    drf_exceptions.AuthenticationFailed,
    drf_exceptions.PermissionDenied,
    django_exceptions.PermissionDenied,
)

#: reasons that can come after view code ran, so the request's transaction is rolled back as
#: DRF does; every other reason is decided during authentication, before any view code, and
#: its failure counts and audit rows must survive ATOMIC_REQUESTS (django-axes #611).
ROLLBACK_CODES = frozenset({"permission_denied"})


def default_authenticators() -> list[BaseAuthentication]:
    """One instance of each of DRF's ``DEFAULT_AUTHENTICATION_CLASSES``."""
    # djangorestframework-stubs type the setting as it is written (dotted paths); DRF's
    # api_settings imports them, so each item is a class.
    classes = cast("list[type[BaseAuthentication]]", drf_settings.DEFAULT_AUTHENTICATION_CLASSES)
    return [cls() for cls in classes]


def view_authenticators(request: Any) -> list[Any]:
    """The view's authenticators; for views with none (simplejwt's token views), DRF's
    default classes, so that their 401s still carry the API's challenges."""
    found = list(getattr(request, "authenticators", None) or ())
    return found or default_authenticators()


def accepted_schemes(authenticators: list[Any], request: Any) -> list[str]:
    schemes: list[str] = []
    for authenticator in authenticators:
        own = getattr(authenticator, "auth401_schemes", None)
        if own is not None:
            schemes.extend(own())
        elif hasattr(authenticator, "authenticate_header"):
            challenge = authenticator.authenticate_header(request)
            if challenge:
                schemes.append(challenge.split()[0])
    return schemes


def unauthenticated(request: Any, authenticators: list[Any]) -> Auth401Error:
    """Why a request reached a protected view with no user: an unsupported scheme, a dead
    session, or no credentials at all."""
    schemes = accepted_schemes(authenticators, request)
    listed: Any = ", ".join(s for s in schemes if s not in COOKIE_SCHEMES)
    cookies = [COOKIE_SCHEMES[s] for s in schemes if s in COOKIE_SCHEMES]
    if cookies and listed:
        listed = translated(SCHEMES_OR).format(schemes=listed, cookie=translated(cookies[0]))
    elif cookies:
        listed = translated(cookies[0])
    header = request.META.get("HTTP_AUTHORIZATION", "").split()
    if header and header[0].lower() not in {s.lower() for s in schemes}:
        offered = responses.header_safe(header[0], limit=40)
        return Auth401Error("scheme_unsupported", offered=offered, schemes=listed)
    if "Session" in schemes:
        failure = session_failure(request)
        if failure is not None:
            return failure
    header_schemes = [s for s in schemes if s not in COOKIE_SCHEMES]
    note = HEADER_NOTE if header_schemes else ""
    return Auth401Error("credentials_missing", schemes=listed or "none", header_note=note)


def _token_failure(exc: Exception, context: dict[str, Any]) -> Auth401Error | None:
    """A token view's ``InvalidToken``: classify the ``TokenError`` behind it."""
    error = next((c for c in causes(exc) if isinstance(c, TokenError)), None)
    if error is None:
        return None
    request, view = context.get("request"), context.get("view")
    raw = posted_token(request)
    serializer = getattr(view, "get_serializer_class", lambda: None)()
    token_class = getattr(serializer, "token_class", None) or UntypedToken
    return classify_token_error(error, raw, token_class)


#: reasons under which a third-party class's or a view's own message is kept as ``detail``
GENERIC_CODES = frozenset({"credentials_invalid", "permission_denied"})


def _own_message(exc: Exception) -> str | None:
    """The message an exception was raised with, when it is not its class's default text
    (simplejwt's dict details name their own codes, which map to catalogue texts)."""
    detail = getattr(exc, "detail", None)
    if detail is None:
        detail = exc.args[0] if exc.args else None
    if not isinstance(detail, str) or not detail:
        return None
    defaults = {str(getattr(cls, "default_detail", "")) for cls in type(exc).__mro__}
    return None if detail in defaults else detail  # an ErrorDetail keeps its code


def failure_for_exception(exc: Exception, context: dict[str, Any]) -> Auth401Error | None:
    if isinstance(exc, Auth401Error):
        return exc
    if (
        isinstance(exc, UNREADABLE_CLAIMS)
        and isinstance(context.get("view"), TokenViewBase)
        and unreadable_time(unverified_claims(posted_token(context.get("request"))))
    ):
        # simplejwt's claim checks overflow on a signed token with exp/nbf/iat that no datetime
        # holds (1e300); its token views only catch TokenError.  Any other such error is a bug
        # and stays a 500, logged.
        return Auth401Error("token_invalid", scheme="Bearer", problem=PROBLEMS["unverifiable"])
    if not isinstance(exc, HANDLED):
        return None
    request = context.get("request")
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return unauthenticated(request, view_authenticators(request))
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        stashed = stashed_failure(request)
        if stashed is not None:
            return stashed
        token_failure = _token_failure(exc, context)
        if token_failure is not None:
            return token_failure
    code = reason_for_upstream(exc) or "permission_denied"
    # A third-party authenticator's or a view's own message is kept under the generic code.
    detail = _own_message(exc) if code in GENERIC_CODES else None
    return Auth401Error(code, detail=detail)


_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # RFC 9110 token


def realm_challenges(authenticators: list[Any]) -> list[str]:
    """Realm-only challenges for classes that give none (no ``authenticate_header``): their
    ``keyword`` (DRF's token classes and their subclasses), else their class name without
    ``Authentication``."""
    found = []
    for authenticator in authenticators:
        name = getattr(authenticator, "keyword", None) or type(authenticator).__name__
        name = str(name).removesuffix("Authentication") or str(name)
        if _TOKEN.match(name):
            challenge = f'{name} realm="api"'
            if challenge not in found:
                found.append(challenge)
    return found


def challenges_for(request: Any, failure: Auth401Error, authenticators: list[Any]) -> list[str]:
    """The 401's challenges: the view's classes' own; else the API's default classes'; else
    realm-only ones named after the view's classes.  A 401 always has one (RFC 9110)."""
    listed = responses.challenges(request, authenticators, failure)
    if not listed:
        defaults = default_authenticators()
        listed = responses.challenges(request, defaults, failure)
        listed = listed or realm_challenges(authenticators) or ['Bearer realm="api"']
    return listed


def upstream_authenticate_header(authenticator: Any, request: Any) -> str | None:
    """What the upstream class of an authentication class answers for ``authenticate_header``:
    the nearest definition in its MRO that is not auth401's (DRF's SessionAuthentication
    gives none; a project's own override of an auth401 class is its own)."""
    for cls in type(authenticator).__mro__:
        own = vars(cls).get("authenticate_header")
        if own is not None and not cls.__module__.startswith("auth401."):
            header: str | None = own.__get__(authenticator, type(authenticator))(request)
            return header
    return None


def upstream_challenge(request: Any, view: Any, authenticators: list[Any]) -> str | None:
    """The ``WWW-Authenticate`` DRF sends (``APIView.get_authenticate_header``): the view's own
    when it overrides it (simplejwt's token views), else its first authentication class's, as
    upstream's class answers; None, and DRF answers 403, when there is none."""
    if view is not None and type(view).get_authenticate_header is not (
        APIView.get_authenticate_header
    ):
        header: str | None = view.get_authenticate_header(request)
        return header
    if not authenticators:
        return None
    return upstream_authenticate_header(authenticators[0], request)


def render_failure(
    request: Any,
    failure: Auth401Error,
    authenticators: list[Any],
    *,
    raised: BaseException | None = None,
    view: Any = None,
) -> Response:
    """Record ``failure`` and answer it: a DRF ``Response`` (rendered, except under
    ``RESPONSE_FORMAT = "upstream"`` in a view, which renders it as it renders its own errors).
    ``authenticators``: the classes whose challenges a 401 lists.  Django logs the response as
    any 4xx ("Unauthorized: /path"); auth401's own record adds the code."""
    events.record_failure(request, failure)
    if app_settings.RESPONSE_FORMAT == responses.UPSTREAM:
        own = list(getattr(request, "authenticators", None) or ()) if view else authenticators
        return responses.render(
            request,
            failure,
            raised=raised,
            upstream_challenge=upstream_challenge(request, view, own),
            in_view=view is not None,
        )
    return responses.render(request, failure, challenges_for(request, failure, authenticators))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF ``EXCEPTION_HANDLER``: the contract body and headers for every 401 and 403."""
    failure = failure_for_exception(exc, context)
    if failure is None:
        if isinstance(exc, RecursionError) and parsers.raised_by_parser(exc):
            # A body nested deeper than DRF's own JSON parser takes (auth401.parsers.JSONParser
            # refuses it before): a 400 like any body the parser cannot read, not a 500.
            exc = parsers.too_deep()
        return app_settings.fallback_handler(exc, context)
    request = context.get("request")
    if failure.code in ROLLBACK_CODES:
        set_rollback()
    return render_failure(
        request, failure, view_authenticators(request), raised=exc, view=context.get("view")
    )
