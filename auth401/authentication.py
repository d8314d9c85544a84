"""DRF authentication classes that say precisely why they failed.

Each subclasses the DRF or simplejwt class it replaces and overrides only its seams: upstream
still parses the header and checks the credentials; auth401 turns upstream's one generic
error into the catalogue code, keeps the cause chain (``raise ... from``), checks the account
state with the AccountStatus joined into the query upstream already makes, and answers
``authenticate_header`` so DRF never turns a 401 into a 403.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import authentication
from rest_framework import exceptions as drf_exceptions
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt import settings as simplejwt  # rebound on changes
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token

from . import responses
from .accounts import failure_for
from .backends import STATUS_RELATION, Auth401Backend, stashed_failure
from .codes import PROBLEMS
from .exceptions import Auth401Error
from .signals import session_issued_at
from .upstream import claim_time, classify_token_error, reason_for_upstream


def _describe_malformed(header: bytes) -> Any:
    """What is wrong with an Authorization header its scheme's class could not parse."""
    parts = header.split()
    if len(parts) == 1:
        return PROBLEMS["no_credentials"]
    if len(parts) > 2:
        return PROBLEMS["spaces"]
    if not parts[1].isascii():
        return PROBLEMS["not_ascii"]
    return PROBLEMS["not_base64"]


class _Auth401Mixin:
    """What every auth401 class shares: the scheme name and the mapping of parse errors."""

    auth401_scheme = ""
    www_authenticate_realm = "api"

    def auth401_schemes(self) -> tuple[str, ...]:
        return (self.auth401_scheme,)

    def auth401_challenge(self, request: Request, failure: Auth401Error | None) -> str | None:
        return self.authenticate_header(request)  # type: ignore[attr-defined]

    def _header(self, request: Request) -> bytes:
        """The Authorization header as bytes, as upstream reads it; a header upstream cannot
        encode (characters beyond ISO-8859-1, which only in-process callers can send) is
        malformed when it names this class's scheme, and no business of it otherwise."""
        value = request.META.get("HTTP_AUTHORIZATION", b"")
        if isinstance(value, bytes):
            return value
        try:
            return value.encode("iso-8859-1")
        except UnicodeEncodeError as exc:
            offered = value.split(None, 1)[0].lower() if value.split() else ""
            if offered in {s.lower() for s in self.auth401_schemes()}:
                raise Auth401Error(
                    "authorization_malformed",
                    scheme=self.auth401_scheme,
                    problem=PROBLEMS["not_latin1"],
                ) from exc
            return b""

    def _parse_guard(self, request: Request, call: Any) -> Any:
        """Run upstream's authenticate(); an upstream error is a malformed header."""
        header = self._header(request)
        if not header.strip():
            return None
        try:
            return call(request)
        except Auth401Error:
            raise
        except (drf_exceptions.AuthenticationFailed, UnicodeError) as exc:
            raise Auth401Error(
                "authorization_malformed",
                scheme=self.auth401_scheme,
                problem=_describe_malformed(header),
            ) from exc

    def _check_account(self, user: Any, **kwargs: Any) -> None:
        failure = failure_for(user, scheme=self.auth401_scheme, **kwargs)
        if failure is not None:
            failure.user = user  # for the audit row
            raise failure


class _PrefetchingUserModel:
    """Stands in for the user model inside simplejwt's ``get_user`` so that its one query
    also joins the AccountStatus: ``objects.get(...)`` is the compiled-once
    ``select_related`` query of ``auth401._lookup``; anything else is the select_related
    QuerySet's."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.DoesNotExist = model.DoesNotExist

    @property
    def objects(self) -> Any:
        return self.model.objects.select_related(STATUS_RELATION)


class JWTAuthentication(_Auth401Mixin, jwt_authentication.JWTAuthentication):
    """simplejwt's JWT authentication with precise reasons and the account-state check."""

    auth401_scheme = "Bearer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_model = _PrefetchingUserModel(get_user_model())

    def auth401_schemes(self) -> tuple[str, ...]:
        types = simplejwt.api_settings.AUTH_HEADER_TYPES
        return tuple(types) if isinstance(types, list | tuple) else (types,)

    def authenticate_header(self, request: Request) -> str:
        return self.auth401_challenge(request, None)

    def auth401_challenge(self, request: Request, failure: Auth401Error | None) -> str:
        """One challenge per accepted header type (``AUTH_HEADER_TYPES``); the RFC 6750 error
        parameters go on the first, the Bearer one."""
        first, *others = self.auth401_schemes()
        realm = self.www_authenticate_realm
        challenges = [responses.bearer_challenge(first, realm, failure)]
        challenges += [f'{scheme} realm="{realm}"' for scheme in others]
        return ", ".join(challenges)

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        validated_token = self.get_validated_token(raw_token)
        user = self.get_user(validated_token)
        issued = claim_time(validated_token.payload, "iat")
        self._check_account(user, issued_at=issued, password_bound=True)
        return user, validated_token

    def get_header(self, request: Request) -> bytes | None:
        if simplejwt.api_settings.AUTH_HEADER_NAME != "HTTP_AUTHORIZATION":
            return super().get_header(request)
        return self._header(request) or None

    def get_raw_token(self, header: bytes) -> bytes | None:
        # Not super(): simplejwt matches against AUTH_HEADER_TYPES as frozen at its import
        # (a module constant), and compares bytes exactly where schemes are case-insensitive
        # (RFC 9110 §11.1).  The same three rules, read at call time.
        parts = header.split()
        accepted = {scheme.lower().encode() for scheme in self.auth401_schemes()}
        if not parts or parts[0].lower() not in accepted:
            return None  # not this class's scheme
        if len(parts) != 2:
            raise Auth401Error(
                "authorization_malformed", scheme="Bearer", problem=_describe_malformed(header)
            )
        if not parts[1].isascii():
            raise Auth401Error(
                "authorization_malformed", scheme="Bearer", problem=PROBLEMS["token_not_ascii"]
            )
        return parts[1]

    def get_validated_token(self, raw_token: bytes) -> Token:
        token_classes = simplejwt.api_settings.AUTH_TOKEN_CLASSES
        first_error: TokenError | None = None
        for token_class in token_classes:
            try:
                return token_class(raw_token)
            except TokenError as exc:
                first_error = first_error or exc
        assert first_error is not None
        failure = classify_token_error(first_error, raw_token, token_classes[0])
        raise failure from first_error

    def get_user(self, validated_token: Token) -> Any:
        try:
            return super().get_user(validated_token)
        except Auth401Error:
            raise
        except (ValueError, TypeError) as exc:
            # A signed token whose user id does not fit the primary key (another issuer
            # sharing the key): not a 500.
            raise Auth401Error(
                "token_invalid", scheme="Bearer", problem=PROBLEMS["no_user"]
            ) from exc
        except drf_exceptions.AuthenticationFailed as exc:
            code = reason_for_upstream(exc)
            raise Auth401Error(code, scheme="Bearer", problem=PROBLEMS["no_user"]) from exc


class TokenAuthentication(_Auth401Mixin, authentication.TokenAuthentication):
    """DRF's API-token authentication (``rest_framework.authtoken``) with precise reasons."""

    auth401_scheme = "Token"

    def auth401_schemes(self) -> tuple[str, ...]:
        return (self.keyword,)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="{self.www_authenticate_realm}"'

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        return self._parse_guard(request, super().authenticate)

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        model = self.get_model()
        try:
            if "\x00" in key:
                raise model.DoesNotExist  # PostgreSQL refuses NUL in text: not a 500
            token = model.objects.select_related("user", f"user__{STATUS_RELATION}").get(key=key)
        except (model.DoesNotExist, ValueError):
            raise Auth401Error("credentials_invalid", scheme=self.keyword) from None
        created = getattr(token, "created", None)
        self._check_account(token.user, issued_at=created)
        return token.user, token


class BasicAuthentication(_Auth401Mixin, authentication.BasicAuthentication):
    """HTTP Basic (RFC 7617) through ``authenticate()``, so ``Auth401Backend`` gates it."""

    auth401_scheme = "Basic"

    def authenticate_header(self, request: Request) -> str:
        return f'Basic realm="{self.www_authenticate_realm}", charset="UTF-8"'

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        parts = self._header(request).split()
        if len(parts) == 2 and parts[0].lower() == b"basic":
            # DRF falls back to latin-1; the challenge says charset="UTF-8" (RFC 7617), so a
            # client that sends anything else is told so instead of getting a wrong password.
            try:
                base64.b64decode(parts[1]).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Auth401Error(
                    "authorization_malformed",
                    scheme="Basic",
                    problem=PROBLEMS["not_utf8"],
                ) from exc
            except (binascii.Error, ValueError):
                pass  # DRF's own parsing reports it
        return self._parse_guard(request, super().authenticate)

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[Any, None]:
        if request is not None:
            request.auth401_scheme = "Basic"  # read by Auth401Backend for its answers
        try:
            user, _ = super().authenticate_credentials(userid, password, request)
        except drf_exceptions.AuthenticationFailed as exc:
            failure = stashed_failure(request) or Auth401Error(
                "credentials_invalid", scheme="Basic"
            )
            raise failure from exc
        if not isinstance(getattr(user, "backend", None), str) or not user.backend.endswith(
            Auth401Backend.__name__
        ):
            # Authenticated by a backend other than auth401's: apply the state check here.
            self._check_account(user, password_login=True)
        return user, None


class SessionAuthentication(_Auth401Mixin, authentication.SessionAuthentication):
    """Django sessions, with ``csrf_failed`` and revocation of sessions older than a lock."""

    auth401_scheme = "Session"

    def authenticate_header(self, request: Request) -> str:
        # Not an HTTP scheme, but answering here stops DRF turning the 401 into a 403 when
        # this class comes first; responses.challenges() lists it only when nothing else is.
        return f'Session realm="{self.www_authenticate_realm}"'

    def auth401_challenge(self, request: Request, failure: Auth401Error | None) -> str | None:
        return None

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is not None:
            issued = session_issued_at(request._request.session)
            self._check_account(result[0], issued_at=issued, revoked_code="session_expired")
        return result

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except drf_exceptions.PermissionDenied as exc:
            reason = str(exc.detail).removeprefix("CSRF Failed: ")
            raise Auth401Error("csrf_failed", scheme="Session", reason=reason) from exc


def session_failure(request: Request) -> Auth401Error | None:
    """Why a request that carries a session cookie is not authenticated, if it is the
    session's fault: the session is gone (``session_expired``), or its user may not log in
    (the account code).  Called on the failure path only; at most one query."""
    req = request._request if isinstance(request, Request) else request
    if settings.SESSION_COOKIE_NAME not in req.COOKIES or not hasattr(req, "session"):
        return None
    session = req.session
    if session.session_key is None:
        return Auth401Error("session_expired", scheme="Session")
    from django.contrib.auth import SESSION_KEY

    user_id = session.get(SESSION_KEY)
    if user_id is None:
        return None
    model = get_user_model()
    try:
        user = model._default_manager.select_related(STATUS_RELATION).get(pk=user_id)
    except (model.DoesNotExist, ValueError, TypeError):
        return Auth401Error("session_expired", scheme="Session")
    return failure_for(user, scheme="Session") or Auth401Error("session_expired", scheme="Session")


__all__ = [
    "BasicAuthentication",
    "JWTAuthentication",
    "SessionAuthentication",
    "TokenAuthentication",
    "session_failure",
]
