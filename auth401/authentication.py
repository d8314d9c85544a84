"""DRF authentication classes that say precisely why they failed.

Each subclasses the DRF or simplejwt class it replaces and overrides only its seams: upstream
still parses the header and checks the credentials; auth401 turns upstream's one generic
error into the catalogue code, keeps the cause chain (``raise ... from``), checks the account
state with the AccountStatus joined into the query upstream already makes, and answers
``authenticate_header`` so DRF never turns a 401 into a 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import authentication
from rest_framework import exceptions as drf_exceptions
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt import settings as simplejwt  # rebound on changes
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from . import responses, state
from .accounts import failure_for
from .backends import Auth401Backend, stashed_failure
from .codes import PROBLEMS
from .exceptions import (
    Auth401Error,
    AuthenticationError,
    InvalidTokenError,
    TokenAuthenticationFailed,
)
from .signals import session_issued_at
from .upstream import (
    UNREADABLE_CLAIMS,
    classify_token_error,
    issued_at,
    token_error_messages,
)
from .users import STATUS_RELATION, load_user


def describe_malformed(header: bytes) -> Any:
    """What is wrong with an Authorization header its scheme's class could not parse."""
    parts = header.split()
    if len(parts) == 1:
        return PROBLEMS["no_credentials"]
    if len(parts) > 2:
        return PROBLEMS["spaces"]
    if not parts[1].isascii():
        return PROBLEMS["not_ascii"]
    return PROBLEMS["not_base64"]


if TYPE_CHECKING:
    _AuthenticationBase = authentication.BaseAuthentication
else:  # a mixin at run time: the upstream class it is mixed into comes after it in the MRO
    _AuthenticationBase = object


class _Auth401Mixin(_AuthenticationBase):
    """What every auth401 class shares: the scheme name and the mapping of parse errors."""

    auth401_scheme = ""
    www_authenticate_realm = "api"
    #: the exception type of an account-state refusal raised from ``authenticate()``
    refusal_type: type[Auth401Error] = AuthenticationError

    def auth401_schemes(self) -> tuple[str, ...]:
        return (self.auth401_scheme,)

    def auth401_challenge(self, request: Request, failure: Auth401Error | None) -> str | None:
        return self.authenticate_header(request)

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
                problem=describe_malformed(header),
            ) from exc

    def _check_account(self, user: Any, **kwargs: Any) -> None:
        """The account-state gate once credentials have proved who the caller is.  Raised
        from ``authenticate()``, a refusal is ``AuthenticationFailed``, the type DRF and
        simplejwt raise there (an inactive user's, a locked account's: auth401 answers 403
        over HTTP, ``exc.status_code`` says so)."""
        failure = failure_for(user, scheme=self.auth401_scheme, **kwargs)
        if failure is not None:
            failure = failure.as_type(self.refusal_type)
            failure.user = user  # for the audit row
            raise failure


class JWTAuthentication(_Auth401Mixin, jwt_authentication.JWTAuthentication):
    """simplejwt's JWT authentication with precise reasons and the account-state check.

    The seams raise what simplejwt raises there (``InvalidToken``, simplejwt's
    ``AuthenticationFailed``), with auth401's code on ``exc.code``; ``user_model`` is the user
    model, and ``get_user`` honours ``USER_ID_FIELD``, ``USER_ID_CLAIM``,
    ``CHECK_USER_IS_ACTIVE`` and ``CHECK_REVOKE_TOKEN``, joining the AccountStatus into its
    one query.
    """

    auth401_scheme = "Bearer"
    refusal_type = TokenAuthenticationFailed  # simplejwt's AuthenticationFailed, as get_user's

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
        self.check_account(user, validated_token)
        return user, validated_token

    def check_account(self, user: Any, validated_token: Token) -> None:
        """The last step of ``authenticate()``: the account state, and revocation of tokens
        issued before the last lock, suspension or password change (a token without a usable
        ``iat`` counts as issued at the epoch).  ``auth401_explain`` calls the same steps."""
        self._check_account(
            user,
            issued_at=issued_at(validated_token.payload),
            password_bound=True,
            check_active=simplejwt.api_settings.CHECK_USER_IS_ACTIVE,
        )

    # simplejwt annotates get_header() as returning bytes, but it returns None when the header
    # is missing (authenticate() checks for it), as this override does.
    def get_header(self, request: Request) -> bytes | None:  # type: ignore[override]
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
            problem = describe_malformed(header)
        elif not parts[1].isascii():
            problem = PROBLEMS["token_not_ascii"]
        else:
            return parts[1]
        raise TokenAuthenticationFailed(
            "authorization_malformed",
            scheme="Bearer",
            upstream_code="bad_authorization_header",
            problem=problem,
        )

    def get_validated_token(self, raw_token: bytes) -> Token:
        token_classes = simplejwt.api_settings.AUTH_TOKEN_CLASSES
        errors: list[tuple[Any, Exception]] = []
        for token_class in token_classes:
            try:
                return token_class(raw_token)
            except TokenError as exc:
                errors.append((token_class, exc))
            except UNREADABLE_CLAIMS as exc:
                # A signed token whose exp/nbf/iat no datetime can hold (1e300): simplejwt's
                # own check overflows.  Invalid, never a 500.
                errors.append((token_class, TokenError(str(exc))))
                errors[-1][1].__cause__ = exc
        first_class, first_error = errors[0]
        failure = classify_token_error(first_error, raw_token, first_class)
        raise failure.as_type(
            InvalidTokenError, messages=token_error_messages(errors)
        ) from first_error

    def get_user(self, validated_token: Token) -> Any:
        """simplejwt's seam, as upstream does it, with the AccountStatus joined."""
        jwt_settings = simplejwt.api_settings
        try:
            user_id = validated_token[jwt_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidTokenError(
                "token_invalid", scheme="Bearer", problem=PROBLEMS["no_user"]
            ) from exc
        user = load_user(jwt_settings.USER_ID_FIELD, user_id)
        if user is None:
            # Unknown, or an id that does not fit the field (another issuer sharing the key;
            # 1e400 reads as an infinite float).
            raise TokenAuthenticationFailed(
                "token_invalid",
                scheme="Bearer",
                upstream_code="user_not_found",
                problem=PROBLEMS["no_user"],
            )
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            failure = TokenAuthenticationFailed(
                "account_inactive", scheme="Bearer", upstream_code="user_inactive"
            )
            failure.user = user  # for the audit row
            raise failure
        if jwt_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            jwt_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            failure = TokenAuthenticationFailed(
                "token_revoked", scheme="Bearer", upstream_code="password_changed"
            )
            failure.user = user
            raise failure
        return user


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
        model: Any = self.get_model()
        try:
            if "\x00" in key:
                raise model.DoesNotExist  # PostgreSQL refuses NUL in text: not a 500
            token = model.objects.select_related("user", f"user__{STATUS_RELATION}").get(key=key)
        except (model.DoesNotExist, ValueError):
            raise AuthenticationError("credentials_invalid", scheme=self.keyword) from None
        if not token.user.is_active:
            # DRF raises AuthenticationFailed here; auth401's code answers 403 over HTTP.
            failure = AuthenticationError("account_inactive", scheme=self.keyword)
            failure.user = token.user  # for the audit row
            raise failure
        created = getattr(token, "created", None)
        self._check_account(token.user, issued_at=created)
        return token.user, token


class BasicAuthentication(_Auth401Mixin, authentication.BasicAuthentication):
    """HTTP Basic (RFC 7617) through ``authenticate()``, so ``Auth401Backend`` gates it."""

    auth401_scheme = "Basic"

    def authenticate_header(self, request: Request) -> str:
        return f'Basic realm="{self.www_authenticate_realm}", charset="UTF-8"'

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        # DRF's own decoding: UTF-8, else ISO-8859-1 (what ``requests`` and other clients send
        # for ``str`` credentials), so every client that logs in against DRF logs in here.
        return self._parse_guard(request, super().authenticate)

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[Any, None]:
        if request is not None:
            state.of(request).scheme = "Basic"  # read by Auth401Backend's decision
        try:
            user, _ = super().authenticate_credentials(userid, password, request)
        except drf_exceptions.AuthenticationFailed as exc:
            failure = stashed_failure(request) or Auth401Error(
                "credentials_invalid", scheme="Basic"
            )
            # DRF raises AuthenticationFailed for every refused login here (a locked or
            # inactive account's too); auth401's code and status ride on it.
            raise failure.as_type(AuthenticationError) from exc
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
            # A request may carry a user but no session (set by other middleware or a test's
            # request factory): nothing to revoke then, as DRF, which never reads it.
            session = getattr(request._request, "session", None)
            issued = session_issued_at(session) if session is not None else None
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
    user = load_user("pk", user_id)
    if user is None:
        return Auth401Error("session_expired", scheme="Session")
    return failure_for(user, scheme="Session") or Auth401Error("session_expired", scheme="Session")


__all__ = [
    "BasicAuthentication",
    "JWTAuthentication",
    "SessionAuthentication",
    "TokenAuthentication",
    "session_failure",
]
