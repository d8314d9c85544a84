"""auth401.responses: the answer to a failure in each RESPONSE_FORMAT, as a rendered DRF
Response; and drf-standardized-errors composition (auth401.contrib.standardized_errors)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from drf_standardized_errors.openapi import AutoSchema as DseAutoSchema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.views import TokenObtainPairView

from auth401 import accounts, responses
from auth401.contrib.standardized_errors import AutoSchema as StandardizedAutoSchema
from auth401.exceptions import Auth401Error
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic
from tests.test_openapi import validate_against

STANDARDIZED = {
    "RESPONSE_FORMAT": "standardized_errors",
    "FALLBACK_EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
}


@pytest.fixture
def standardized(auth401_settings):
    auth401_settings(**STANDARDIZED)


def _headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.items() if k not in {"Vary", "Allow", "Content-Length"}}


@pytest.mark.django_db
def test_standardized_errors_401_is_dse_shape_with_auth401_members(standardized, api_client):
    response = api_client.get("/api/me/")
    assert response.status_code == 401
    request_id = response["X-Request-ID"]
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "credentials_missing",
                "detail": "Authentication credentials were not provided.",
                "attr": None,
                "hint": response.json()["errors"][0]["hint"],
                "request_id": request_id,
            }
        ],
    }
    assert response.json()["errors"][0]["hint"].startswith("Authenticate with Bearer, Token")
    assert _headers(response) == {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "X-Request-ID": request_id,
        "X-Auth401-Code": "credentials_missing",
        "WWW-Authenticate": 'Bearer realm="api", Token realm="api", Basic realm="api", '
        'charset="UTF-8"',
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    row = AuthEvent.objects.get()
    assert (row.code, row.status_code, row.request_id) == ("credentials_missing", 401, request_id)


@pytest.mark.django_db
def test_standardized_errors_lock_carries_retry_after(standardized, api_client, user):
    accounts.lock(user, until=__import__("datetime").timedelta(minutes=10))
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert response.status_code == 403
    (error,) = response.json()["errors"]
    assert response.json()["type"] == "client_error"
    assert set(error) == {"code", "detail", "attr", "hint", "request_id", "retry_after"}
    assert error["code"] == "account_locked"
    assert 590 <= error["retry_after"] <= 600
    assert response["Retry-After"] == str(error["retry_after"])
    assert not response.has_header("WWW-Authenticate")


@pytest.mark.django_db
def test_one_shape_for_400_and_401_with_drf_standardized_errors(standardized, api_client):
    """The token view's 400 comes from drf-standardized-errors, its 401 from auth401: the
    same shape."""
    refused = api_client.post("/api/token/", {}, format="json")
    assert refused.status_code == 400
    assert refused.json()["type"] == "validation_error"
    assert {e["attr"] for e in refused.json()["errors"]} == {"username", "password"}
    wrong = api_client.post("/api/token/", {"username": "x", "password": "y"}, format="json")
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "client_error"
    assert [e["code"] for e in wrong.json()["errors"]] == ["credentials_invalid"]
    assert set(wrong.json()["errors"][0]) == set(refused.json()["errors"][0]) | {
        "hint",
        "request_id",
    }


@pytest.mark.parametrize(
    ("fmt", "content_type", "members"),
    [
        (
            "auth401",
            "application/json",
            {"status", "error", "code", "detail", "hint", "request_id"},
        ),
        (
            "problem",
            "application/problem+json",
            {"type", "title", "status", "detail", "instance", "code", "hint", "request_id"},
        ),
        ("standardized_errors", "application/json", {"type", "errors"}),
    ],
)
def test_render_is_a_rendered_drf_response_in_each_format(
    auth401_settings, fmt, content_type, members
):
    auth401_settings(RESPONSE_FORMAT=fmt)
    request = APIRequestFactory().get("/api/x/", HTTP_X_REQUEST_ID="req-1")
    response = responses.render(request, Auth401Error("token_revoked", scheme="Bearer"), ["X"])
    assert isinstance(response, Response)
    assert response.render() is response
    assert json.loads(response.content) == response.data
    assert set(response.data) == members
    assert response["Content-Type"] == content_type
    assert (response["X-Request-ID"], response["WWW-Authenticate"]) == ("req-1", "X")
    assert response["X-Auth401-Code"] == "token_revoked"
    assert response.data.get("detail", "The token has been revoked.") == (
        "The token has been revoked."
    )


def test_render_never_fails_on_text_utf8_cannot_encode():
    """A view's own message with a lone surrogate: a "?" in the body, never a 500 after the
    failure was recorded as answered."""
    request = APIRequestFactory().get("/api/x/")
    failure = Auth401Error("permission_denied", detail="no \ud800 here")
    response = responses.render(request, failure)
    assert json.loads(response.content)["detail"] == "no ? here"


def _signed(user: Any, token_type: Any) -> str:
    import time

    import jwt
    from django.conf import settings as django_settings

    now = int(time.time())
    payload = {"token_type": token_type, "exp": now + 300, "iat": now, "jti": "j1"}
    payload["user_id"] = str(user.pk)
    return jwt.encode(payload, django_settings.SECRET_KEY, algorithm="HS256")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token_type", "shown"),
    [
        ("\ud800", "?"),
        ("a\x00b\r\nc", "a?b??c"),
        ("\u2028x", "?x"),
        (10**300, "1" + "0" * 19),
        ([1, {"a": None}], "[1, {'a': None}]"),
        ("\u00e9t\u00e9", "\u00e9t\u00e9"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("where", ["me", "refresh"])
def test_any_token_type_claim_renders(api_client, user, token_type, shown, where):
    """A token signed with the real key whose token_type is a lone surrogate, controls, a huge
    number or a list: 401 token_wrong_type with printable text in the body and a
    quoted-string-safe challenge; the row says what the client got."""
    token = _signed(user, token_type)
    if where == "me":
        response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
        expected = "access"
    else:
        response = api_client.post("/api/token/refresh/", {"refresh": token}, format="json")
        expected = "refresh"
    assert response.status_code == 401, response.content
    body = json.loads(response.content.decode("utf-8"))  # strict UTF-8
    assert body["code"] == "token_wrong_type"
    assert body["detail"] == f"Wrong token type: got '{shown}', expected '{expected}'."
    challenge = response["WWW-Authenticate"]
    assert f'error_description="{responses.header_safe(body["detail"])}"' in challenge
    assert all(0x20 <= ord(c) < 0x7F for c in challenge), challenge
    assert list(AuthEvent.objects.values_list("code", "status_code")) == [("token_wrong_type", 401)]


# -- OpenAPI: drf-standardized-errors' responses and auth401's, together -------------------------


class Thing(serializers.Serializer):
    name = serializers.CharField()


class ThingView(GenericAPIView):
    serializer_class = Thing
    permission_classes = [IsAuthenticated]

    def post(self, request: Any) -> Response:
        return Response({})


def _schema(schema_class: type) -> dict[str, Any]:
    class Things(ThingView):
        schema = schema_class()

    class Token(TokenObtainPairView):
        schema = schema_class()

    patterns = [path("api/things/", Things.as_view()), path("api/token/", Token.as_view())]
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    validate_schema(schema)
    return schema


def test_schema_composes_with_drf_standardized_errors(standardized, settings):
    # what drf-standardized-errors documents when it is the project's handler
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    }
    own = _schema(DseAutoSchema)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "auth401.handlers.exception_handler",
    }
    schema = _schema(StandardizedAutoSchema)
    ref = {"$ref": "#/components/schemas/Auth401StandardizedError"}
    for url in ("/api/things/", "/api/token/"):
        theirs = own["paths"][url]["post"]["responses"]
        ours = schema["paths"][url]["post"]["responses"]
        assert {"400", "405", "415", "500"} <= set(theirs)
        # every response drf-standardized-errors documents stays, as it documents it, but
        # 401, 403, 429 (login_busy) and 503 (lockout_unavailable), which are auth401's
        assert set(ours) == set(theirs) | {"401", "403", "429", "503"}
        for status in set(theirs) - {"401", "403", "429", "503"}:
            assert ours[status] == theirs[status], (url, status)
        for status in ("401", "403"):
            assert ours[status]["content"] == {"application/json": {"schema": ref}}
            assert "`code` is one of" in ours[status]["description"]
    component = schema["components"]["schemas"]["Auth401StandardizedError"]
    item = component["properties"]["errors"]["items"]
    assert set(item["required"]) == {"code", "detail", "attr", "hint", "request_id"}
    assert item["properties"]["code"] == {"$ref": "#/components/schemas/Auth401Code"}


def test_schema_without_the_fallback_is_drf_standardized_errors_own_rule(auth401_settings):
    """With DRF's default fallback, drf-standardized-errors answers nothing here, so it
    documents nothing; auth401's 401/403 stay."""
    auth401_settings(RESPONSE_FORMAT="standardized_errors")
    things = _schema(StandardizedAutoSchema)["paths"]["/api/things/"]["post"]["responses"]
    assert set(things) == {"200", "401", "403", "429", "503"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "docs_url",
    ["https://e.com/errors/{code}#{section}", "https://e.com/{code}/{", "https://e.com/{code}/{0}"],
)
def test_docs_url_with_other_braces(api_client, auth401_settings, docs_url):
    auth401_settings(DOCS_URL=docs_url)
    body = api_client.get("/api/me/").json()
    assert body["docs"] == docs_url.replace("{code}", "credentials_missing")


@pytest.mark.django_db
def test_one_challenge_per_jwt_header_type(api_client, settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "AUTH_HEADER_TYPES": ("Bearer", "JWT")}
    response = api_client.get("/api/order/jwt-only/", HTTP_AUTHORIZATION="JWT abc")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The token is not valid: '
        'it is not a well-formed JWT.", JWT realm="api"'
    )


@pytest.mark.django_db
@pytest.mark.urls("example_project.urls")
def test_standardized_errors_throttled_429_is_documented_beside_login_busy(
    standardized, client, user
):
    """The example project's throttled view: its 429 is auth401's `login_busy` or
    drf-standardized-errors' `throttled`, and the real answer is valid for the schema."""
    from example_project.views import ThrottledView

    class Throttled(ThrottledView):
        schema = StandardizedAutoSchema()

    patterns = [path("api/throttled/", Throttled.as_view())]
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    validate_schema(schema)
    responses = schema["paths"]["/api/throttled/"]["get"]["responses"]
    throttled_item = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "enum": ["throttled"]},
            "detail": {"type": "string", "description": "Why, and for how long."},
            "attr": {"type": "string", "nullable": True, "enum": [None]},
        },
        "required": ["code", "detail", "attr"],
    }
    (ours, theirs) = responses["429"]["content"]["application/json"]["schema"]["anyOf"]
    assert ours == {"$ref": "#/components/schemas/Auth401StandardizedError"}
    assert theirs["properties"]["errors"]["items"] == throttled_item
    assert theirs["required"] == ["type", "errors"]
    assert "`login_busy`" in responses["429"]["description"]
    assert "DRF's `Throttled`, code `throttled`" in responses["429"]["description"]

    bearer = f"Bearer {AccessToken.for_user(user)}"
    answers = [client.get("/api/throttled/", HTTP_AUTHORIZATION=bearer) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    body = answers[-1].json()
    assert body == {
        "type": "client_error",
        "errors": [
            {
                "code": "throttled",
                "detail": "Request was throttled. Expected available in 60 seconds.",
                "attr": None,
            }
        ],
    }
    assert answers[-1]["Retry-After"] == "60"
    validate_against(schema, responses["429"]["content"]["application/json"]["schema"], body)
