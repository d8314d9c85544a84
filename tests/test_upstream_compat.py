"""auth401 as a drop-in for simplejwt and DRF: upstream's exception types and seams, settings
honoured, and no crash where upstream does not crash.  One test per compatibility promise
(docs/compatibility.md lists what differs on purpose)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.utils import translation
from rest_framework import authentication as drf_authentication
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt import exceptions as jwt_exceptions
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from auth401 import accounts
from auth401.authentication import (
    BasicAuthentication,
    JWTAuthentication,
    SessionAuthentication,
    TokenAuthentication,
)
from auth401.codes import CATALOGUE
from auth401.exceptions import (
    Auth401Error,
    AuthenticationError,
    InvalidTokenError,
)
from auth401.handlers import exception_handler, upstream_authenticate_header
from auth401.models import AuthEvent
from auth401.serializers import TokenRefreshSerializer
from tests.conftest import PASSWORD, basic

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


# 11. RESPONSE_FORMAT = "upstream": for each of upstream's failures, the answer plain DRF and
# simplejwt give (compared with upstream's own classes, handler and backend in the same test),
# while auth401 still decides, records and exposes its code in X-Auth401-Code


class Protected(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})

    def post(self, request: Any) -> Response:
        return Response({"ok": True})


class NeverOnSundays(BasePermission):
    message = "Never on Sundays."

    def has_permission(self, request: Any, view: Any) -> bool:
        return False


#: auth401's classes and the upstream classes they replace, by name
CLASSES = {
    "ours": {
        "jwt": JWTAuthentication,
        "token": TokenAuthentication,
        "basic": BasicAuthentication,
        "session": SessionAuthentication,
        "third-party": ThirdPartyKeyAuthentication,
    },
    "theirs": {
        "jwt": jwt_authentication.JWTAuthentication,
        "token": drf_authentication.TokenAuthentication,
        "basic": drf_authentication.BasicAuthentication,
        "session": drf_authentication.SessionAuthentication,
        "third-party": ThirdPartyKeyAuthentication,
    },
}
DEFAULT_ORDER = ("jwt", "token", "basic", "session")
REFRESH_SERIALIZERS = {
    "ours": TokenRefreshSerializer,
    "theirs": jwt_serializers.TokenRefreshSerializer,
}


@dataclass
class Side:
    """One side of a comparison: "ours" (auth401's classes, handler and backend, under
    RESPONSE_FORMAT = "upstream") or "theirs" (plain DRF and simplejwt)."""

    name: str
    users: dict[str, Any]

    def get(
        self,
        authorization: str | None = None,
        *,
        order: tuple[str, ...] = DEFAULT_ORDER,
        permission: Any = IsAuthenticated,
        session_user: Any = None,
        **extra: Any,
    ) -> Any:
        if authorization is not None:
            extra["HTTP_AUTHORIZATION"] = authorization
        if session_user is not None:
            request = APIRequestFactory(enforce_csrf_checks=True).post("/api/x/", **extra)
            request.user = session_user  # a logged-in session, as AuthenticationMiddleware sets
        else:
            request = factory.get("/api/x/", **extra)
        classes = [CLASSES[self.name][name] for name in order]
        view = Protected.as_view(authentication_classes=classes, permission_classes=[permission])
        return view(request)

    def token_view(self, view_class: Any, data: dict[str, Any]) -> Any:
        kwargs = {}
        if view_class is TokenRefreshView:
            kwargs["serializer_class"] = REFRESH_SERIALIZERS[self.name]
        request = factory.post("/api/token/", data, format="json")
        return view_class.as_view(**kwargs)(request)


def _expired(token: Any) -> str:
    token.set_exp(lifetime=-timedelta(seconds=1))
    return str(token)


def _blacklisted(user: Any) -> str:
    refresh = RefreshToken.for_user(user)
    refresh.blacklist()
    return str(refresh)


def _no_user_claim() -> str:
    token = AccessToken()
    return str(token)


def _unknown_user(user: Any) -> str:
    token = AccessToken.for_user(user)
    token["user_id"] = 987654
    return str(token)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


#: id -> (auth401's code, the request, as each side makes it)
UPSTREAM_KINDS: dict[str, tuple[str, Callable[[Side], Any]]] = {
    "no-credentials": ("credentials_missing", lambda s: s.get()),
    "no-credentials-basic-only": ("credentials_missing", lambda s: s.get(order=("basic",))),
    "no-credentials-token-first": (
        "credentials_missing",
        lambda s: s.get(order=("token", "jwt")),
    ),
    "session-first-anonymous": (
        "credentials_missing",
        lambda s: s.get(order=("session", "basic", "jwt")),
    ),
    "unknown-scheme": ("scheme_unsupported", lambda s: s.get("Wrong abc")),
    "jwt-expired": (
        "token_expired",
        lambda s: s.get("Bearer " + _expired(AccessToken.for_user(s.users["alice"]))),
    ),
    "jwt-not-a-jwt": ("token_invalid", lambda s: s.get("Bearer not.a.jwt")),
    "jwt-bad-signature": (
        "token_invalid",
        lambda s: s.get(
            "Bearer " + jwt.encode({"token_type": "access", "user_id": "1", "exp": 2**33}, "x" * 40)
        ),
    ),
    "jwt-refresh-as-access": (
        "token_wrong_type",
        lambda s: s.get("Bearer " + str(RefreshToken.for_user(s.users["alice"]))),
    ),
    "jwt-two-values": ("authorization_malformed", lambda s: s.get("Bearer a b")),
    "jwt-no-user-claim": ("token_invalid", lambda s: s.get("Bearer " + _no_user_claim())),
    "jwt-unknown-user": (
        "token_invalid",
        lambda s: s.get("Bearer " + _unknown_user(s.users["alice"])),
    ),
    "jwt-inactive-user": (
        "account_inactive",
        lambda s: s.get("Bearer " + str(AccessToken.for_user(s.users["dave"]))),
    ),
    "token-unknown-key": ("credentials_invalid", lambda s: s.get("Token not-a-key")),
    "token-no-key": ("authorization_malformed", lambda s: s.get("Token")),
    "token-spaces": ("authorization_malformed", lambda s: s.get("Token a b")),
    "token-inactive-user": (
        "account_inactive",
        lambda s: s.get("Token " + s.users["dave-key"], order=("token", "jwt")),
    ),
    "basic-wrong-password": ("credentials_invalid", lambda s: s.get(basic("alice", "wrong"))),
    "basic-unknown-user": ("credentials_invalid", lambda s: s.get(basic("nobody", "wrong"))),
    "basic-latin-1-wrong-password": (
        "credentials_invalid",
        lambda s: s.get("Basic " + b64("alice:pässwort".encode("latin-1"))),
    ),
    "basic-inactive-right-password": (
        "account_inactive",
        lambda s: s.get(basic("dave", PASSWORD), order=("basic",)),
    ),
    "basic-not-base64": ("authorization_malformed", lambda s: s.get("Basic !!!")),
    "basic-no-colon": ("authorization_malformed", lambda s: s.get("Basic " + b64(b"alice"))),
    "basic-no-credentials": ("authorization_malformed", lambda s: s.get("Basic")),
    "basic-spaces": ("authorization_malformed", lambda s: s.get("Basic a b")),
    "session-csrf": ("csrf_failed", lambda s: s.get(session_user=s.users["alice"])),
    "not-staff": (
        "permission_denied",
        lambda s: s.get(basic("alice", PASSWORD), permission=IsAdminUser),
    ),
    "permission-message": (
        "permission_denied",
        lambda s: s.get(basic("alice", PASSWORD), permission=NeverOnSundays),
    ),
    "third-party-first-without-challenge": (
        "credentials_invalid",
        lambda s: s.get(order=("third-party", "jwt"), HTTP_X_API_KEY="wrong"),
    ),
    "obtain-wrong-password": (
        "credentials_invalid",
        lambda s: s.token_view(TokenObtainPairView, {"username": "alice", "password": "x"}),
    ),
    "obtain-unknown-user": (
        "credentials_invalid",
        lambda s: s.token_view(TokenObtainPairView, {"username": "nobody", "password": "x"}),
    ),
    "obtain-inactive-user": (
        "account_inactive",
        lambda s: s.token_view(TokenObtainPairView, {"username": "dave", "password": PASSWORD}),
    ),
    "refresh-expired": (
        "token_expired",
        lambda s: s.token_view(
            TokenRefreshView, {"refresh": _expired(RefreshToken.for_user(s.users["alice"]))}
        ),
    ),
    "refresh-with-an-access-token": (
        "token_wrong_type",
        lambda s: s.token_view(
            TokenRefreshView, {"refresh": str(AccessToken.for_user(s.users["alice"]))}
        ),
    ),
    "refresh-blacklisted": (
        "token_revoked",
        lambda s: s.token_view(TokenRefreshView, {"refresh": s.users["blacklisted"]}),
    ),
    "refresh-inactive-user": (
        "account_inactive",
        lambda s: s.token_view(
            TokenRefreshView, {"refresh": str(RefreshToken.for_user(s.users["dave"]))}
        ),
    ),
    "verify-not-a-jwt": (
        "token_invalid",
        lambda s: s.token_view(TokenVerifyView, {"token": "not.a.jwt"}),
    ),
}


@pytest.fixture
def upstream_users(user_factory) -> dict[str, Any]:
    alice = user_factory("alice")
    dave = user_factory("dave", is_active=False)
    return {
        "alice": alice,
        "dave": dave,
        "dave-key": Token.objects.create(user=dave).key,
        "blacklisted": _blacklisted(alice),
    }


def recorded_events() -> list[tuple[str, int]]:
    """The AuthEvent rows, once every recorded event has landed (no middleware ran after
    these factory requests: the held rows are flushed and the Redis stream drained here)."""
    from auth401 import drain, events

    events.flush()
    drain.drain()
    return list(AuthEvent.objects.values_list("code", "status_code"))


def _answered(response: Any) -> Any:
    response.render()
    return response


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(UPSTREAM_KINDS))
def test_upstream_format_answers_as_drf_and_simplejwt(
    kind, upstream_users, settings, auth401_settings
):
    code, act = UPSTREAM_KINDS[kind]
    auth401_settings(RESPONSE_FORMAT="upstream")
    ours = _answered(act(Side("ours", upstream_users)))
    recorded = recorded_events()

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
    }
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    theirs = _answered(act(Side("theirs", upstream_users)))

    assert theirs.status_code in (401, 403), theirs.content  # a failure upstream too
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)
    assert ours.data == theirs.data
    assert ours["Content-Type"] == theirs["Content-Type"] == "application/json"
    assert ours.get("WWW-Authenticate") == theirs.get("WWW-Authenticate")
    # auth401's own: its code, and the row that records it (with auth401's status for it)
    assert ours["X-Auth401-Code"] == code
    assert ours["Cache-Control"] == "no-store"
    assert ours["X-Request-ID"]
    assert not ours.has_header("Retry-After")
    assert recorded == [(code, CATALOGUE[code].status_code())]


def test_every_upstream_kind_checks_a_code_upstream_has():
    """The kinds above cover every code with an upstream counterpart (the others answer
    auth401's own text: see the lockout test below)."""
    from auth401.responses import UPSTREAM_CODES

    assert {code for code, _act in UPSTREAM_KINDS.values()} == UPSTREAM_CODES - {
        "token_not_yet_valid",  # as token_expired, from PyJWT's nbf check
        "session_expired",  # upstream has no sessions that end: NotAuthenticated
    }
    assert set(CATALOGUE) >= UPSTREAM_CODES


UPSTREAM = {"RESPONSE_FORMAT": "upstream"}


@pytest.mark.django_db
def test_upstream_expired_token_is_simplejwts_body(api_client, user, auth401_settings, caplog):
    """A refresh interceptor's ``code == "token_not_valid"`` keeps working."""
    auth401_settings(**UPSTREAM)
    token = _expired(AccessToken.for_user(user))
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [
            {"token_class": "AccessToken", "token_type": "access", "message": "Token is expired"}
        ],
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response["X-Auth401-Code"] == "token_expired"
    row = AuthEvent.objects.get()
    assert (row.code, row.status_code, row.user_id, row.request_id) == (
        "token_expired",
        401,
        None,
        response["X-Request-ID"],
    )
    (record,) = [r for r in caplog.records if r.name.startswith("auth401")]
    assert (record.code, record.request_id) == ("token_expired", response["X-Request-ID"])


@pytest.mark.django_db
def test_upstream_lockout_still_locks_and_says_so(api_client, user, auth401_settings):
    """The lock is auth401's own outcome: upstream has none, so its answer is auth401's text
    and status in DRF's shape, with Retry-After; the wrong passwords before it are DRF's."""
    auth401_settings(**UPSTREAM, FAILURE_LIMIT=2, LOCKOUT_DURATION=timedelta(minutes=15))
    wrong = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"))
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid username/password."})
    assert wrong["X-Auth401-Code"] == "credentials_invalid"
    for attempt in (
        lambda: api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong")),
        lambda: api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD)),
        lambda: api_client.post(
            "/api/token/", {"username": "alice", "password": PASSWORD}, format="json"
        ),
    ):
        locked = attempt()
        assert (locked.status_code, locked.json()) == (403, {"detail": "This account is locked."})
        assert locked["X-Auth401-Code"] == "account_locked"
        assert 890 <= int(locked["Retry-After"]) <= 900
        assert not locked.has_header("WWW-Authenticate")
    assert accounts.status(user).lockout_seconds > 0
    codes = sorted(AuthEvent.objects.values_list("code", flat=True))
    assert codes == [
        "account_locked",
        "account_locked",
        "account_locked",
        "auto_lock",  # the lock itself, as in every format
        "credentials_invalid",
    ]


@pytest.mark.django_db
def test_upstream_answers_do_not_disclose_account_state(api_client, user_factory, auth401_settings):
    auth401_settings(**UPSTREAM, DISCLOSE_ACCOUNT_STATE=False)
    user_factory("alice")
    accounts.suspend(user_factory("carol"))
    user_factory("dave", is_active=False)
    accounts.lock(user_factory("bob"))
    answers = {}
    for name, authorization in {
        "wrong-password": basic("alice", "wrong"),
        "suspended": basic("carol", PASSWORD),
        "inactive": basic("dave", PASSWORD),
        "locked": basic("bob", PASSWORD),
        "unknown": basic("nobody", PASSWORD),
    }.items():
        response = api_client.get("/api/me/", HTTP_AUTHORIZATION=authorization)
        headers = {k: v for k, v in response.items() if k != "X-Request-ID"}
        answers[name] = (response.status_code, response.content, headers)
    reference = answers.pop("wrong-password")
    assert reference[:2] == (401, b'{"detail":"Invalid username/password."}')
    assert reference[2]["X-Auth401-Code"] == "credentials_invalid"
    for name, answer in answers.items():
        assert answer == reference, name


@pytest.mark.django_db
def test_upstream_session_first_view_and_plain_views(api_client, auth401_settings):
    """DRF's status choice: 403 where the first class (the session) gives no challenge; plain
    Django views under API_PATH_PREFIXES answer as a session-only DRF view would."""
    auth401_settings(**UPSTREAM)
    for path in ("/api/order/session-first/", "/api/legacy/"):
        response = api_client.get(path)
        assert response.status_code == 403, path
        assert response.json() == {"detail": "Authentication credentials were not provided."}
        assert response["Content-Type"] == "application/json"
        assert response["X-Auth401-Code"] == "credentials_missing"
        assert not response.has_header("WWW-Authenticate")
    forbidden = api_client.get("/api/legacy-forbidden/")
    assert (forbidden.status_code, forbidden.json()) == (
        403,
        {"detail": "You do not have permission to perform this action."},
    )
    assert forbidden["X-Auth401-Code"] == "permission_denied"


@pytest.mark.django_db
def test_upstream_errors_use_the_views_renderer(auth401_settings):
    """As DRF renders its own errors: a view's negotiated renderer renders the failure."""
    from rest_framework.renderers import BaseRenderer

    class PlainText(BaseRenderer):
        media_type = "text/plain"
        format = "txt"

        def render(self, data: Any, media_type: Any = None, renderer_context: Any = None) -> bytes:
            return f"refused: {data['detail']}".encode()

    auth401_settings(**UPSTREAM)
    view = Protected.as_view(renderer_classes=[PlainText])
    response = view(factory.get("/api/x/", HTTP_AUTHORIZATION="Bearer not.a.jwt"))
    response.render()
    assert response.status_code == 401
    assert response.content == b"refused: Given token not valid for any token type"
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Auth401-Code"] == "token_invalid"


@pytest.mark.django_db
def test_upstream_token_ended_by_an_admin_lock_is_not_valid(api_client, user, auth401_settings):
    """A token ended by an admin lock answers as simplejwt answers a token it does not accept,
    so a refresh interceptor tries a refresh (which fails the same way: log in again)."""
    auth401_settings(**UPSTREAM)
    with time_machine.travel(datetime.now(UTC) - timedelta(minutes=2)):
        token = str(AccessToken.for_user(user))
    accounts.lock(user, reason="stolen laptop")
    accounts.unlock(user)
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "Given token not valid for any token type", "code": "token_not_valid"},
    )
    assert response["X-Auth401-Code"] == "token_revoked"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind", ["token-unknown-key", "token-inactive-user", "basic-wrong-password", "no-credentials"]
)
def test_upstream_texts_are_translated_as_upstream_translates_them(
    kind, upstream_users, settings, auth401_settings
):
    """The table holds upstream's own message ids: DRF's catalogue translates them."""
    code, act = UPSTREAM_KINDS[kind]
    auth401_settings(RESPONSE_FORMAT="upstream")
    with translation.override("de"):
        ours = _answered(act(Side("ours", upstream_users)))
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
        }
        settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
        theirs = _answered(act(Side("theirs", upstream_users)))
    assert ours.data == theirs.data
    with translation.override("en"):
        english = _answered(act(Side("theirs", upstream_users))).data
    assert ours.data["detail"] != english["detail"]  # German indeed
    assert ours["X-Auth401-Code"] == code


def test_upstream_authenticate_header_is_the_upstream_classes():
    request = factory.get("/")
    for name, ours in CLASSES["ours"].items():
        theirs = CLASSES["theirs"][name]
        assert upstream_authenticate_header(ours(), request) == theirs().authenticate_header(
            request
        ), name
    assert upstream_authenticate_header(SessionAuthentication(), request) is None

    class ProjectBasic(BasicAuthentication):
        def authenticate_header(self, request: Any) -> str:
            return 'Basic realm="project"'

    class PlainSubclass(BasicAuthentication):
        pass

    assert upstream_authenticate_header(ProjectBasic(), request) == 'Basic realm="project"'
    assert upstream_authenticate_header(PlainSubclass(), request) == 'Basic realm="api"'
