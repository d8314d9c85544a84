"""auth401.serializers.TokenRefreshSerializer: simplejwt's refresh with the account state on
top, over HTTP (``/api/token/refresh/``) and in Python."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from auth401 import accounts
from auth401.models import AuthEvent
from auth401.serializers import TokenRefreshSerializer, read_token

REFRESH = "/api/token/refresh/"


def refresh(api_client: Any, token: Any) -> Any:
    return api_client.post(REFRESH, {"refresh": str(token)}, format="json")


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert set(body) >= {"status", "error", "code", "detail", "hint", "request_id"}
    assert response["X-Request-ID"] == body["request_id"]
    assert response["Cache-Control"] == "no-store"
    assert response.has_header("WWW-Authenticate") == (status == 401)
    return body


@pytest.mark.django_db
def test_a_good_refresh_token_gives_an_access_token_for_its_user(api_client, user):
    response = refresh(api_client, RefreshToken.for_user(user))
    assert response.status_code == 200
    assert set(response.json()) == {"access"}
    assert AccessToken(response.json()["access"])["user_id"] == str(user.pk)
    assert not AuthEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "status", "code"),
    [("locked", 403, "account_locked"), ("suspended", 403, "account_suspended")],
)
def test_an_account_that_may_not_be_used_cannot_refresh(
    api_client, account_factory, state, status, code
):
    user = account_factory("active", username=f"to-be-{state}")
    token = RefreshToken.for_user(user)
    getattr(accounts, "lock" if state == "locked" else "suspend")(user)
    assert_refused(refresh(api_client, token), status, code)
    row = AuthEvent.objects.filter(code=code).get()
    assert (row.user_id, row.status_code) == (user.pk, status)


@pytest.mark.django_db
def test_a_refresh_token_older_than_an_admin_lock_is_revoked_after_unlock(api_client, user):
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):
        token = RefreshToken.for_user(user)
    accounts.lock(user)
    accounts.unlock(user)
    assert_refused(refresh(api_client, token), 401, "token_revoked")
    fresh = refresh(api_client, RefreshToken.for_user(user))
    assert fresh.status_code == 200, fresh.content


@pytest.mark.django_db
def test_an_inactive_user_cannot_refresh(api_client, user_factory):
    inactive = user_factory("inactive", is_active=False)
    body = assert_refused(
        refresh(api_client, RefreshToken.for_user(inactive)), 403, "account_inactive"
    )
    assert body["detail"] == "This account is inactive."


@pytest.mark.django_db
@pytest.mark.parametrize("exp", [1e300, 10**40, 253402300800, "later", [1], True])
def test_absurd_exp_is_token_invalid_in_python_and_over_http(api_client, user, exp):
    now = int(timezone.now().timestamp())
    raw = jwt.encode(
        {"token_type": "refresh", "exp": exp, "iat": now, "jti": "x", "user_id": str(user.pk)},
        django_settings.SECRET_KEY,
        algorithm="HS256",
    )
    if not isinstance(exp, bool | str | list):
        with pytest.raises(TokenError):
            read_token(RefreshToken, raw)
    serializer = TokenRefreshSerializer(data={"refresh": raw})
    with pytest.raises(TokenError):
        serializer.is_valid()
    assert_refused(refresh(api_client, raw), 401, "token_invalid")


def signed(user: Any, token_type: str = "refresh", **claims: Any) -> str:
    """A token signed with the real key; a claim given as ``None`` is left out."""
    now = int(timezone.now().timestamp())
    payload = {"token_type": token_type, "exp": now + 300, "iat": now, "jti": "j1"}
    payload["user_id"] = str(user.pk)
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, django_settings.SECRET_KEY, algorithm="HS256")


@pytest.mark.django_db
def test_a_signed_refresh_token_without_jti_is_token_invalid(api_client, user):
    """simplejwt's blacklist look-up reads the id before checking it is there (KeyError 'jti',
    a 500): a token without one is token_invalid, and its row says what the client got."""
    response = refresh(api_client, signed(user, jti=None))
    body = assert_refused(response, 401, "token_invalid")
    assert body["detail"] == "The token is not valid: a required claim is missing."
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert list(AuthEvent.objects.values_list("code", "status_code")) == [("token_invalid", 401)]


@pytest.mark.django_db
def test_a_forged_token_without_jti_is_told_as_forged(api_client, user):
    raw = jwt.encode({"token_type": "refresh", "user_id": str(user.pk)}, "not-the-key" * 4)
    response = refresh(api_client, raw)
    body = assert_refused(response, 401, "token_invalid")
    assert "signature" in body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("jti", ["\ud800", "a\x00b", "x" * 256, ["a" * 300]], ids=repr)
@pytest.mark.parametrize("rotate", [False, True])
def test_a_token_id_no_table_holds_is_token_invalid(api_client, user, settings, jti, rotate):
    """Read by simplejwt's blacklist (a lone surrogate cannot be encoded, PostgreSQL refuses a
    NUL, the column takes 255 characters): token_invalid, never a 500."""
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "ROTATE_REFRESH_TOKENS": rotate,
        "BLACKLIST_AFTER_ROTATION": rotate,
    }
    assert_refused(refresh(api_client, signed(user, jti=jti)), 401, "token_invalid")


@pytest.mark.django_db
@pytest.mark.parametrize("user_id", ["", [], {}, 0, False], ids=repr)
def test_an_empty_user_id_is_token_invalid_with_rotation(api_client, user, settings, user_id):
    """Upstream skips the user check for an empty id, then rotation's blacklisting looks it up
    (``User.objects.get(id="")``: a 500); no user has it."""
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "ROTATE_REFRESH_TOKENS": True,
        "BLACKLIST_AFTER_ROTATION": True,
    }
    assert_refused(refresh(api_client, signed(user, user_id=user_id)), 401, "token_invalid")


@pytest.mark.django_db
@pytest.mark.parametrize("jti", ["\ud800", "a\x00b"], ids=repr)
def test_verify_reads_the_token_id_before_the_blacklist(api_client, user, settings, jti):
    """``TokenVerifySerializer``: with ``BLACKLIST_AFTER_ROTATION`` upstream looks the id up."""
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "BLACKLIST_AFTER_ROTATION": True}
    response = api_client.post(
        "/api/token/verify/", {"token": signed(user, "access", jti=jti)}, format="json"
    )
    assert_refused(response, 401, "token_invalid")
    good = api_client.post("/api/token/verify/", {"token": signed(user, "access")}, format="json")
    assert (good.status_code, good.json()) == (200, {})


@pytest.mark.django_db
@pytest.mark.parametrize("iss", [1, None, ["a"], {"a": 1}, True], ids=repr)
def test_a_refresh_token_with_a_non_string_issuer_is_token_invalid(api_client, user, iss):
    """The access token copies ``iss``, and PyJWT refuses to sign a non-string one (a 500)."""
    raw = signed(user)
    payload = jwt.decode(raw, options={"verify_signature": False})
    payload["iss"] = iss
    token = jwt.api_jws.encode(
        json.dumps(payload).encode(), django_settings.SECRET_KEY, algorithm="HS256"
    )
    body = assert_refused(refresh(api_client, token), 401, "token_invalid")
    assert body["detail"] == "The token is not valid: it is from another issuer."
