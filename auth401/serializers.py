"""simplejwt serializers that respect the account state.

Set ``SIMPLE_JWT["TOKEN_REFRESH_SERIALIZER"] = "auth401.serializers.TokenRefreshSerializer"``:
refreshing then fails with the account's code for a locked, suspended or inactive account,
with ``token_revoked`` for a refresh token issued before a lock or password change (a token
without a usable ``iat`` counts as issued at the epoch), and with ``token_invalid`` (not a
500) when the token's user no longer exists or a time claim is absurd.

It keeps upstream's behaviour otherwise: a token without the user-id claim skips the user
check, ``USER_AUTHENTICATION_RULE`` decides who may refresh (simplejwt's
``AuthenticationFailed`` when it refuses), rotation and blacklisting are upstream's.
"""

from __future__ import annotations

from typing import Any

from rest_framework_simplejwt import serializers
from rest_framework_simplejwt import settings as simplejwt  # rebound on setting changes
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token

from .accounts import failure_for
from .codes import PROBLEMS
from .exceptions import TokenAuthenticationFailed
from .upstream import UNREADABLE_CLAIMS, issued_at, unverified_claims
from .users import load_user


def read_token(token_class: type[Token], raw: Any) -> Token:
    """``token_class(raw)``; a time claim that overflows simplejwt's checks is a
    ``TokenError`` (the view's ``InvalidToken``), not a 500."""
    jti = unverified_claims(raw).get(simplejwt.api_settings.JTI_CLAIM)
    if isinstance(jti, str) and "\x00" in jti:
        # No stored token id holds a NUL, and PostgreSQL refuses one in the blacklist query.
        raise TokenError("the token id holds a NUL character")
    try:
        return token_class(raw)
    except UNREADABLE_CLAIMS as exc:
        raise TokenError(str(exc)) from exc


class TokenRefreshSerializer(serializers.TokenRefreshSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        jwt_settings = simplejwt.api_settings
        refresh = read_token(self.token_class, attrs["refresh"])
        user_id = refresh.payload.get(jwt_settings.USER_ID_CLAIM)
        if user_id:  # upstream skips the user check for a token without the claim
            self._check_user(user_id, refresh)
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
