"""auth401 as a drop-in for simplejwt and DRF: upstream's exception types and seams, settings
honoured, and no crash where upstream does not crash.  One test per compatibility promise
(docs/compatibility.md lists what differs on purpose)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView
from rest_framework_simplejwt import exceptions as jwt_exceptions
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from auth401 import accounts
from auth401.authentication import (
    JWTAuthentication,
    SessionAuthentication,
    TokenAuthentication,
)
from auth401.exceptions import (
    Auth401Error,
    AuthenticationError,
    InvalidTokenError,
)
from auth401.handlers import exception_handler
from auth401.serializers import TokenRefreshSerializer
from tests.conftest import PASSWORD

factory = APIRequestFactory()


def signed(claims: dict[str, Any]) -> bytes:
    return jwt.encode(claims, django_settings.SECRET_KEY, algorithm="HS256").encode()


# 1. upstream's exception types, with upstream's detail structure, and auth401's code on top


@pytest.mark.django_db
def test_jwt_seams_raise_simplejwt_types_with_upstream_detail_and_auth401_code(user):
    auth = JWTAuthentication()
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as malformed:
        auth.get_raw_token(b"Bearer a b")
    assert isinstance(malformed.value, Auth401Error)
    assert malformed.value.code == "authorization_malformed"
    assert malformed.value.detail["code"] == "bad_authorization_header"

    with pytest.raises(jwt_exceptions.InvalidToken) as invalid:
        auth.get_validated_token(b"not.a.jwt")
    exc = invalid.value
    assert type(exc) is InvalidTokenError
    assert exc.code == "token_invalid"
    assert exc.status_code == 401
    assert exc.get_codes() == {
        "detail": "token_not_valid",
        "code": "token_not_valid",
        "messages": [
            {
                "token_class": "token_not_valid",
                "token_type": "token_not_valid",
                "message": "token_not_valid",
            }
        ],
    }
    assert str(exc.detail["detail"]) == exc.render_detail()
    assert [
        {key: str(value) for key, value in message.items()} for message in exc.detail["messages"]
    ] == [
        {
            "token_class": "AccessToken",
            "token_type": "access",
            "message": "Token is invalid",
        }
    ]

    token = AccessToken.for_user(user)
    del token["user_id"]
    with pytest.raises(jwt_exceptions.InvalidToken) as no_claim:
        auth.get_user(token)
    assert no_claim.value.code == "token_invalid"

    token = AccessToken.for_user(user)
    token["user_id"] = 987654
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as unknown:
        auth.get_user(token)
    assert not isinstance(unknown.value, jwt_exceptions.InvalidToken)
    assert (unknown.value.code, unknown.value.detail["code"]) == ("token_invalid", "user_not_found")


# 2. an inactive user is refused with AuthenticationFailed, as upstream refuses it


@pytest.mark.django_db
def test_inactive_user_is_authentication_failed_in_refresh_and_token_auth(user_factory):
    inactive = user_factory("inactive", is_active=False)
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as refreshed:
        TokenRefreshSerializer(data={"refresh": str(RefreshToken.for_user(inactive))}).is_valid()
    assert not isinstance(refreshed.value, drf_exceptions.PermissionDenied)
    assert refreshed.value.code == "account_inactive"
    assert refreshed.value.detail["code"] == "no_active_account"
    assert refreshed.value.status_code == 403  # auth401's answer over HTTP

    key = Token.objects.create(user=inactive).key
    with pytest.raises(drf_exceptions.AuthenticationFailed) as by_key:
        TokenAuthentication().authenticate_credentials(key)
    assert type(by_key.value) is AuthenticationError
    assert (by_key.value.code, by_key.value.status_code) == ("account_inactive", 403)

    token = AccessToken.for_user(inactive)
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as by_jwt:
        JWTAuthentication().get_user(token)
    assert (by_jwt.value.code, by_jwt.value.detail["code"]) == ("account_inactive", "user_inactive")


# 3. CHECK_USER_IS_ACTIVE and USER_AUTHENTICATION_RULE are honoured


@pytest.mark.django_db
def simple_jwt(settings: Any, monkeypatch: Any, **overrides: Any) -> None:
    """SIMPLE_JWT as a project would set it at start-up: simplejwt's own modules bound its
    settings object at import (simplejwt's tests reload them), auth401 reads it at call time."""
    from rest_framework_simplejwt import serializers as jwt_serializers
    from rest_framework_simplejwt import settings as jwt_settings

    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, **overrides}
    monkeypatch.setattr(jwt_serializers, "api_settings", jwt_settings.api_settings)


def test_check_user_is_active_off_and_a_permissive_rule_admit_inactive_users(
    user_factory, settings, monkeypatch, api_client
):
    inactive = user_factory("inactive", is_active=False)
    simple_jwt(
        settings,
        monkeypatch,
        CHECK_USER_IS_ACTIVE=False,
        USER_AUTHENTICATION_RULE="tests.test_upstream_compat.allow_everyone",
    )
    access, refresh = AccessToken.for_user(inactive), RefreshToken.for_user(inactive)
    user, token = JWTAuthentication().authenticate(
        factory.get("/", HTTP_AUTHORIZATION=f"Bearer {access}")
    )
    assert (user, token.payload) == (inactive, access.payload)

    response = api_client.post("/api/token/refresh/", {"refresh": str(refresh)}, format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"access"}

    # The account state still applies on top of the rule: a suspension refuses.
    accounts.suspend(inactive)
    response = api_client.post(
        "/api/token/refresh/", {"refresh": str(RefreshToken.for_user(inactive))}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "account_suspended")


def allow_everyone(user: Any) -> bool:
    return user is not None


@pytest.mark.django_db
def test_a_strict_rule_refuses_an_active_user_without_disclosing(user, settings, monkeypatch):
    simple_jwt(
        settings, monkeypatch, USER_AUTHENTICATION_RULE="tests.test_upstream_compat.allow_no_one"
    )
    serializer = TokenRefreshSerializer(data={"refresh": str(RefreshToken.for_user(user))})
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as refused:
        serializer.is_valid()
    assert (refused.value.code, refused.value.detail["code"]) == (
        "credentials_invalid",
        "no_active_account",
    )


def allow_no_one(user: Any) -> bool:
    return False


# 4. a refresh token without the user-id claim skips the user check, as upstream


@pytest.mark.django_db
def test_refresh_token_without_user_claim_refreshes_like_upstream(settings, monkeypatch):
    refresh = RefreshToken()  # no user: upstream's own tests build such tokens
    serializer = TokenRefreshSerializer(data={"refresh": str(refresh)})
    assert serializer.is_valid(), serializer.errors
    access = AccessToken(serializer.validated_data["access"])
    assert access["jti"] != refresh["jti"]
    assert "user_id" not in access.payload
    assert set(serializer.validated_data) == {"access"}

    simple_jwt(settings, monkeypatch, ROTATE_REFRESH_TOKENS=True)
    serializer = TokenRefreshSerializer(data={"refresh": str(RefreshToken())})
    assert serializer.is_valid(), serializer.errors
    assert set(serializer.validated_data) == {"access", "refresh"}


# 5. a refresh for a deleted user: auth401's 401 instead of upstream's escaping DoesNotExist


@pytest.mark.django_db
def test_refresh_for_deleted_user_is_token_invalid_not_does_not_exist(user, api_client):
    refresh = str(RefreshToken.for_user(user))
    user.delete()
    serializer = TokenRefreshSerializer(data={"refresh": refresh})
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as gone:
        serializer.is_valid()
    assert not isinstance(gone.value, get_user_model().DoesNotExist)
    assert (gone.value.code, gone.value.detail["code"]) == ("token_invalid", "user_not_found")

    response = api_client.post("/api/token/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"
    assert response.json()["detail"] == "The token is not valid: it names no user."


# 6. the handler answers with a DRF Response, rendered, whatever renderer was negotiated


@pytest.mark.django_db
def test_handler_returns_a_rendered_drf_response():
    request = factory.get("/api/me/")
    response = exception_handler(drf_exceptions.NotAuthenticated(), {"request": request})
    assert isinstance(response, Response)
    assert response.render() is response  # DRF's renderer tests call render() on it
    body = json.loads(response.content)
    assert response.data == body
    assert body["code"] == "credentials_missing"
    assert response["Content-Type"] == "application/json"
    assert response.status_code == 401

    class Browsable(APIView):
        permission_classes = [IsAuthenticated]

        def get(self, request: Any) -> Response:
            return Response({})

    html = factory.get("/api/me/", HTTP_ACCEPT="text/html")
    answered = Browsable.as_view()(html)
    answered.render()
    assert answered["Content-Type"] == "application/json"
    assert json.loads(answered.content)["code"] == "credentials_missing"


# 7. a request with a user but no session


@pytest.mark.django_db
def test_session_authentication_without_a_session_is_not_a_500(user):
    class Me(APIView):
        authentication_classes = [SessionAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request: Any) -> Response:
            return Response({"username": request.user.get_username()})

    request = factory.get("/api/me/")
    request.user = user  # upstream's own tests do this: no SessionMiddleware ran
    request._dont_enforce_csrf_checks = True
    response = Me.as_view()(request)
    response.render()
    assert (response.status_code, response.data) == (200, {"username": "alice"})


# 8. user_model is the model


def test_jwt_user_model_is_the_user_model():
    auth = JWTAuthentication()
    assert auth.user_model is get_user_model()
    assert auth.user_model.USERNAME_FIELD == "username"
    assert auth.user_model._meta.model_name == "user"


# 9. a MagicMock request in the serializer context (upstream's and many projects' tests)


@pytest.mark.django_db
@pytest.mark.parametrize("whole_context", [True, False], ids=["mock-context", "mock-request"])
def test_token_obtain_with_a_mock_request_context(user_factory, whole_context):
    user = user_factory()
    user_factory("inactive", is_active=False)

    def serializer(username: str, password: str) -> TokenObtainPairSerializer:
        context = mock.MagicMock() if whole_context else {"request": mock.MagicMock()}
        data = {"username": username, "password": password}
        return TokenObtainPairSerializer(context=context, data=data)

    good = serializer("alice", PASSWORD)
    assert good.is_valid(), good.errors
    assert AccessToken(good.validated_data["access"])["user_id"] == str(user.pk)

    for username, password, code in [
        ("alice", "wrong", "credentials_invalid"),
        ("missing", "pass", "credentials_invalid"),
        ("inactive", PASSWORD, "account_inactive"),
    ]:
        with pytest.raises(drf_exceptions.AuthenticationFailed) as refused:
            serializer(username, password).is_valid()
        assert (refused.value.status_code, refused.value.get_codes()) == (
            401,
            "no_active_account",
        ), code


# 10. a third-party authenticator keeps its message, and its 401 has a challenge


class ThirdPartyKeyAuthentication(BaseAuthentication):
    """An API-key class that gives no challenge (BaseAuthentication's authenticate_header
    returns None), raising DRF's AuthenticationFailed with its own message."""

    def authenticate(self, request: Any) -> None:
        if request.META.get("HTTP_X_API_KEY"):
            raise drf_exceptions.AuthenticationFailed("Bad credentials")
        return None


@pytest.mark.django_db
def test_third_party_authenticator_keeps_its_message_and_gets_a_challenge():
    class Keyed(APIView):
        authentication_classes = [ThirdPartyKeyAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request: Any) -> Response:
            return Response({})

    response = Keyed.as_view()(factory.get("/api/keyed/", HTTP_X_API_KEY="wrong"))
    body = json.loads(response.content)
    assert response.status_code == 401
    assert body == {
        "status": 401,
        "error": "Unauthorized",
        "code": "credentials_invalid",
        "detail": "Bad credentials",
        "hint": body["hint"],
        "request_id": response["X-Request-ID"],
    }
    assert body["hint"].startswith("Check the username and password")
    # no class of the view gives a challenge: the API's default classes' challenges
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", Token realm="api", Basic realm="api", charset="UTF-8"'
    )


@pytest.mark.django_db
def test_realm_only_challenge_named_after_the_class_when_nothing_else_answers(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_AUTHENTICATION_CLASSES": []}

    class Keyed(APIView):
        authentication_classes = [ThirdPartyKeyAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request: Any) -> Response:
            return Response({})

    response = Keyed.as_view()(factory.get("/api/keyed/", HTTP_X_API_KEY="wrong"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'ThirdPartyKey realm="api"'


# docs/compatibility.md lists exactly the expected differences of the upstream suites (their
# reasons; the keys and test ids stay in .ci/upstream_expected_failures.txt)

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / ".ci" / "upstream_expected_failures.txt"
COMPATIBILITY = ROOT / "docs" / "compatibility.md"


def differences() -> dict[str, list[str]]:
    """``key: reason`` -> the upstream tests it explains (``test | assertion``), from the CI
    list's ``## differences`` section (its other sections are not differences of auth401)."""
    found: dict[str, list[str]] = {}
    current = None
    section = ""
    for line in EXPECTED.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("## "):
            section = text[3:].strip()
        elif section != "differences":
            continue
        elif text.startswith("# ") and re.match(r"# [a-z0-9-]+: ", text):
            current = text[2:]
            found[current] = []
        elif text and not text.startswith("#"):
            assert current is not None, text
            test_id, separator, assertion = text.partition(" | ")
            assert separator and assertion.strip(), f"{text}: names no assertion"
            re.compile(assertion.strip())
            found[current].append(test_id)
    return found


@pytest.mark.skipif(not EXPECTED.exists(), reason="the CI list is not in this checkout")
def test_compatibility_page_lists_exactly_the_expected_differences():
    listed = differences()
    assert listed and all(listed.values()), "every difference explains at least one test"
    # the page shows each difference's reason; the keys stay in the CI list
    block = "\n".join(f"- {d.split(': ', 1)[1]}" for d in listed)
    text = COMPATIBILITY.read_text(encoding="utf-8")
    start = text.index("<!-- differences:start -->\n") + len("<!-- differences:start -->\n")
    end = text.index("<!-- differences:end -->")
    assert text[start:end] == block + "\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "code", "status"),
    [("locked", "account_locked", 403), ("suspended", "account_suspended", 403)],
)
def test_account_state_refusals_from_authenticate_are_upstream_types(
    account_factory, state, code, status
):
    user = account_factory(state)
    token = AccessToken.for_user(user)
    request = factory.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    with pytest.raises(jwt_exceptions.AuthenticationFailed) as by_jwt:
        JWTAuthentication().authenticate(request)
    assert (by_jwt.value.code, by_jwt.value.status_code) == (code, status)
    assert by_jwt.value.detail["code"] == "authentication_failed"

    key = Token.objects.create(user=user).key
    with pytest.raises(drf_exceptions.AuthenticationFailed) as by_key:
        TokenAuthentication().authenticate_credentials(key)
    assert (by_key.value.code, by_key.value.status_code) == (code, status)
