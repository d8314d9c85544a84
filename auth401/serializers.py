"""simplejwt serializers that respect the account state.

Set ``SIMPLE_JWT["TOKEN_REFRESH_SERIALIZER"] = "auth401.serializers.TokenRefreshSerializer"``:
refreshing then fails with the account's code for a locked, suspended or inactive account,
with ``token_revoked`` for a refresh token issued before a lock or password change (a token
without a usable ``iat`` counts as issued at the epoch), and with ``token_invalid`` (not a
500) when the token's user no longer exists, a time claim is absurd, or the token id is
missing or one no token table can hold (a NUL, a lone surrogate, longer than its column).
``TokenVerifySerializer`` (``SIMPLE_JWT["TOKEN_VERIFY_SERIALIZER"]``) reads the token the same
way before upstream's blacklist look-up.

It keeps upstream's behaviour otherwise: a token without the user-id claim skips the user
check, ``USER_AUTHENTICATION_RULE`` decides who may refresh (simplejwt's
``AuthenticationFailed`` when it refuses), rotation and blacklisting are upstream's.
"""

from __future__ import annotations

from typing import Any

import jwt
from rest_framework_simplejwt import serializers
from rest_framework_simplejwt import settings as simplejwt  # rebound on setting changes
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token, UntypedToken

from .accounts import failure_for
from .codes import PROBLEMS
from .exceptions import TokenAuthenticationFailed
from .upstream import UNREADABLE_CLAIMS, issued_at, storable_jti, unverified_claims
from .users import load_user

#: simplejwt's own words (a TokenError's message is not part of the answer)
_NO_ID = "Token has no id"
_BAD_ID = "the token id is not one a token table can hold"
_BAD_ISSUER = "Payload Issuer (iss) must be a string"


def read_token(token_class: type[Token], raw: Any) -> Token:
    """``token_class(raw)``, never a 500: a time claim that overflows simplejwt's checks, and
    a token id that is missing or that no token table can hold, are a ``TokenError`` (the
    view's ``InvalidToken``).  simplejwt looks a refresh token's id up in its blacklist before
    it checks that the id is there (a ``KeyError`` otherwise)."""
    jti_claim = simplejwt.api_settings.JTI_CLAIM
    claims = unverified_claims(raw)
    if (
        jti_claim is not None
        and claims
        and (jti_claim not in claims or not storable_jti(claims[jti_claim]))
    ):
        # The signature and times first, so a forged or expired token is told as such: an
        # UntypedToken checks them (and that the id is there) without any table.
        _read(UntypedToken, raw)
        raise TokenError(_NO_ID if jti_claim not in claims else _BAD_ID)
    return _read(token_class, raw)


def _read(token_class: type[Token], raw: Any) -> Token:
    try:
        return token_class(raw)
    except UNREADABLE_CLAIMS as exc:
        raise TokenError(str(exc)) from exc


class TokenRefreshSerializer(serializers.TokenRefreshSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        jwt_settings = simplejwt.api_settings
        refresh = read_token(self.token_class, attrs["refresh"])
        user_id = refresh.payload.get(jwt_settings.USER_ID_CLAIM)
        if user_id is not None:  # upstream skips the user check for a token without the claim
            # Unlike upstream, a present but empty id ("", 0, []) is checked too: no user has
            # it, and rotation's blacklisting would look it up (a 500 for "" or []).
            self._check_user(user_id, refresh)
        if not isinstance(refresh.payload.get("iss", ""), str):
            # The access token copies this claim, and PyJWT refuses to sign a non-string
            # issuer (a TypeError, a 500): the token is as unusable as one from another issuer.
            raise TokenError(_BAD_ISSUER) from jwt.InvalidIssuerError(_BAD_ISSUER)
        # Upstream's validate reads the token again: it is known to be readable now.
        return super().validate(attrs)

    def _check_user(self, user_id: Any, refresh: Token) -> None:
        jwt_settings = simplejwt.api_settings
        user = load_user(jwt_settings.USER_ID_FIELD, user_id)
        if user is None:
            # Upstream lets DoesNotExist escape (a 500 over HTTP): here it is a 401.
            raise TokenAuthenticationFailed(
                "token_invalid",
                scheme="Bearer",
                upstream_code="user_not_found",
                problem=PROBLEMS["no_user"],
            )
        if not jwt_settings.USER_AUTHENTICATION_RULE(user):
            code = "credentials_invalid" if user.is_active else "account_inactive"
            failure = TokenAuthenticationFailed(
                code, scheme="Bearer", upstream_code="no_active_account"
            )
            failure.user = user  # for the audit row
            raise failure
        refused = failure_for(
            user,
            scheme="Bearer",
            issued_at=issued_at(refresh.payload),
            password_bound=True,
            check_active=False,  # the rule above decided that
        )
        if refused is not None:
            refused.user = user
            raise refused


class TokenVerifySerializer(serializers.TokenVerifySerializer):
    """simplejwt's, with the token read as ``read_token`` reads it: with
    ``BLACKLIST_AFTER_ROTATION`` upstream looks the token id up in the blacklist, and an id no
    table can hold is ``token_invalid`` instead of a 500."""

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        read_token(UntypedToken, attrs["token"])
        return super().validate(attrs)
