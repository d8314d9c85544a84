"""Translation of DRF, simplejwt and PyJWT errors into catalogue reasons: tables, not if-chains.

Upstream merges many causes into one exception ("Token is invalid"); auth401 splits them by
exception type and untranslated code, and by walking the ``__cause__``/``__context__`` chain
down to PyJWT.  Message text is never looked at: it is translated and it changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import jwt
from django.apps import apps
from django.core import exceptions as django_exceptions
from django.utils import timezone
from rest_framework import exceptions as drf_exceptions
from rest_framework_simplejwt import exceptions as jwt_exceptions
from rest_framework_simplejwt import settings as simplejwt  # rebound on changes
from rest_framework_simplejwt.tokens import UntypedToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from .codes import PROBLEMS
from .exceptions import Auth401Error
from .responses import iso_utc

# PyJWT error -> (code, what went wrong).  The cause chain is walked; the first match wins,
# so subclasses come before their bases.
PYJWT_REASONS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", ""),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", ""),
    (jwt.InvalidAlgorithmError, "token_invalid", "algorithm"),
    (jwt.InvalidSignatureError, "token_invalid", "signature"),
    (jwt.InvalidAudienceError, "token_invalid", "audience"),
    (jwt.InvalidIssuerError, "token_invalid", "issuer"),
    (jwt.MissingRequiredClaimError, "token_invalid", "claim_missing"),
    (jwt.DecodeError, "token_invalid", "not_jwt"),
    (jwt.InvalidTokenError, "token_invalid", "unverifiable"),
)

# (exception type, untranslated upstream code or None for any) -> catalogue code.  Looked up
# along the exception's MRO, exact code before None.
UPSTREAM_REASONS: dict[tuple[type[Exception], str | None], str] = {
    (drf_exceptions.NotAuthenticated, None): "credentials_missing",
    (jwt_exceptions.AuthenticationFailed, "user_inactive"): "account_inactive",
    (jwt_exceptions.AuthenticationFailed, "user_not_found"): "token_invalid",
    (jwt_exceptions.AuthenticationFailed, "password_changed"): "token_revoked",
    (jwt_exceptions.AuthenticationFailed, "bad_authorization_header"): "authorization_malformed",
    (jwt_exceptions.AuthenticationFailed, "no_active_account"): "credentials_invalid",
    (jwt_exceptions.InvalidToken, None): "token_invalid",
    (drf_exceptions.AuthenticationFailed, None): "credentials_invalid",
    (drf_exceptions.PermissionDenied, None): "permission_denied",
    (django_exceptions.PermissionDenied, None): "permission_denied",
}


def upstream_code(exc: Exception) -> str | None:
    """The untranslated code upstream gave ``exc`` (simplejwt puts it inside a dict)."""
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict):
        code = detail.get("code")
        return str(code) if code is not None else None
    return getattr(detail, "code", None)


def reason_for_upstream(exc: Exception) -> str | None:
    code = upstream_code(exc)
    for cls in type(exc).__mro__:
        for key in ((cls, code), (cls, None)):
            if key in UPSTREAM_REASONS:
                return UPSTREAM_REASONS[key]
    return None


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything behind it (explicit cause first, then implicit context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def unverified_claims(raw_token: Any) -> dict[str, Any]:
    """The claims of a token *without* checking them: only for describing a failure, and
    only trusted where the signature is known to have verified (PyJWT checks it first)."""
    try:
        claims = jwt.decode(raw_token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, TypeError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


#: what simplejwt's and PyJWT's claim checks raise for a time claim no datetime can hold
#: (``exp`` of 1e300, a year past 9999): a token with such a claim is ``token_invalid``
UNREADABLE_CLAIMS: tuple[type[Exception], ...] = (OverflowError, OSError, ValueError)

#: when a token without a usable ``iat`` counts as issued, for revocation: any later lock,
#: suspension or password change revokes it
EPOCH = datetime.fromtimestamp(0, UTC)


def claim_time(claims: dict[str, Any], *names: str) -> datetime | None:
    """The first of ``names`` that is a number a datetime can hold; None otherwise."""
    for name in names:
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime_from_epoch(value)
            except (OverflowError, OSError, ValueError):
                return None
    return None


TIME_CLAIMS = ("exp", "nbf", "iat")


def unreadable_time(claims: dict[str, Any]) -> bool:
    """Whether a time claim is a number no datetime holds (1e300): what simplejwt's claim
    checks overflow on."""
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                datetime_from_epoch(value)
            except UNREADABLE_CLAIMS:
                return True
    return False


def issued_at(claims: dict[str, Any]) -> datetime:
    """When a token was issued, for revocation; the epoch when ``iat`` is absent or unusable
    (a string, a bool, 1e300), so such a token is never newer than a lock."""
    return claim_time(claims, "iat") or EPOCH


def token_error_messages(errors: Sequence[tuple[Any, BaseException]]) -> list[dict[str, Any]]:
    """simplejwt's ``InvalidToken.detail["messages"]``: one per token class tried."""
    return [
        {
            "token_class": token_class.__name__,
            "token_type": getattr(token_class, "token_type", None),
            "message": error.args[0] if error.args else str(error),
        }
        for token_class, error in errors
    ]


def _iso(moment: datetime | None) -> str:
    return iso_utc(moment) if moment is not None else "?"


#: the token id column of simplejwt's token tables (``OutstandingToken.jti``)
JTI_LENGTH = 255
#: what no token table can hold: a NUL (PostgreSQL refuses it) or a lone surrogate (no UTF-8
#: encodes it)
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable_jti(value: Any) -> bool:
    """Whether simplejwt's token tables can hold ``value`` as a token id (as text, as they
    store a number): it fits the column and holds no NUL and no lone surrogate."""
    try:
        text = value if isinstance(value, str) else str(value)
    except ValueError:  # an int past Python's digit limit for str()
        return False
    return len(text) <= JTI_LENGTH and not _UNSTORABLE.search(text)


def _is_blacklisted(claims: dict[str, Any]) -> bool:
    if not apps.is_installed("rest_framework_simplejwt.token_blacklist"):
        return False
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    jti = claims.get(simplejwt.api_settings.JTI_CLAIM)
    if not isinstance(jti, str) or not storable_jti(jti):  # no query could find it
        return False
    return BlacklistedToken.objects.filter(token__jti=jti).exists()


#: codes whose texts name the token's type and times (read from its unverified claims)
_TIMED = frozenset({"token_expired", "token_not_yet_valid"})


#: what a claim's text may not carry into an answer: control characters, lone surrogates (no
#: UTF-8 encodes them) and the line and paragraph separators
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def claim_text(value: Any, limit: int = 20) -> str:
    """A claim's value as short printable text for an answer's ``detail``: any JSON value (a
    lone surrogate, a NUL, a number of any size, a list) gives text that encodes as UTF-8."""
    try:
        text = value if isinstance(value, str) else str(value)
    except ValueError:  # an int past Python's digit limit for str()
        text = "?"
    return _UNPRINTABLE.sub("?", text[:limit])


def _token_type(claims: dict[str, Any]) -> str:
    return claim_text(claims.get(simplejwt.api_settings.TOKEN_TYPE_CLAIM, "access"))


def classify_token_error(error: BaseException, raw_token: Any, token_class: Any) -> Auth401Error:
    """The reason a simplejwt ``TokenError`` stands for, for a token meant as ``token_class``."""
    now = timezone.now()
    for cause in causes(error):
        for exc_type, code, problem in PYJWT_REASONS:
            if isinstance(cause, exc_type):
                if code not in _TIMED:
                    # A bad signature, algorithm, audience...: no claim is worth reading.
                    return Auth401Error(
                        code, scheme="Bearer", server_time=now, problem=PROBLEMS[problem]
                    )
                claims = unverified_claims(raw_token)
                expires = claim_time(claims, "exp")
                not_before = claim_time(claims, "nbf", "iat")
                if (expires if code == "token_expired" else not_before) is None:
                    # PyJWT read a claim no datetime holds as a time (exp: true is 1).
                    return Auth401Error(
                        "token_invalid", scheme="Bearer", problem=PROBLEMS["unverifiable"]
                    )
                return Auth401Error(
                    code,
                    scheme="Bearer",
                    server_time=now,
                    token_type=_token_type(claims),
                    expires_at=_iso(expires),
                    not_before=_iso(not_before),
                )
    if any(isinstance(cause, UNREADABLE_CLAIMS) for cause in causes(error)):
        return Auth401Error("token_invalid", scheme="Bearer", problem=PROBLEMS["unverifiable"])
    claims = unverified_claims(raw_token)
    token_type = _token_type(claims)
    # No PyJWT cause: decoding (signature, exp, nbf) succeeded and one of simplejwt's later
    # checks failed, so the claims read here are the verified ones.
    # An UntypedToken (the verify view's) takes any type.
    untyped = isinstance(token_class, type) and issubclass(token_class, UntypedToken)
    expected = None if untyped else getattr(token_class, "token_type", None)
    got = claims.get(simplejwt.api_settings.TOKEN_TYPE_CLAIM)
    if expected and got is not None and got != expected:
        return Auth401Error(
            "token_wrong_type", scheme="Bearer", got=claim_text(got), expected=expected
        )
    for claim in ("exp", "refresh_exp"):
        moment = claim_time(claims, claim)
        if moment is not None and moment <= now:
            return Auth401Error(
                "token_expired",
                scheme="Bearer",
                server_time=now,
                token_type=token_type,
                expires_at=_iso(moment),
            )
    if _is_blacklisted(claims):
        return Auth401Error("token_revoked", scheme="Bearer")
    return Auth401Error("token_invalid", scheme="Bearer", problem=PROBLEMS["claim_missing"])
