"""Regressions found in review: each was a 500 or a lost audit row."""

import base64

import pytest

from auth401.models import AuthEvent
from tests.conftest import basic

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", "x"),
        ("application/json", "{not json"),
        ("multipart/form-data", "garbage"),
    ],
)
def test_unparsable_body_on_a_failure_is_not_read(api_client, content_type, body):
    response = api_client.generic("POST", "/api/me/", body, content_type=content_type)
    assert (response.status_code, response.json()["code"]) == (401, "credentials_missing")
    assert AuthEvent.objects.get().code == "credentials_missing"


def test_wrong_password_with_a_malformed_body_is_still_audited(user, api_client):
    response = api_client.generic(
        "POST",
        "/api/order/basic-only/",
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic("alice", "wrong"),
    )
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
    event = AuthEvent.objects.get()
    assert (event.code, event.username, event.request_id) == (
        "credentials_invalid",
        "alice",
        response["X-Request-ID"],
    )


def test_nul_in_basic_username_and_token(user, api_client):
    header = "Basic " + base64.b64encode(b"ali\x00ce:wrong").decode()
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=header)
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Token abc\x00def")
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")


@pytest.mark.parametrize(
    "docs_url",
    ["https://e.com/errors/{code}#{section}", "https://e.com/{code}/{", "https://e.com/{code}/{0}"],
)
def test_docs_url_with_other_braces(api_client, auth401_settings, docs_url):
    auth401_settings(DOCS_URL=docs_url)
    body = api_client.get("/api/me/").json()
    assert body["docs"] == docs_url.replace("{code}", "credentials_missing")


def test_ipv6_clients_share_their_64(api_client, auth401_settings):
    from auth401 import lockout

    auth401_settings(IP_FAILURE_LIMIT=2)
    for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(f"u{host}", "x"), REMOTE_ADDR=host)
    assert lockout.peek("2001:db8:1:2::77", ip=True).locked_ms > 0
    assert lockout.peek("2001:db8:1:3::1", ip=True).locked_ms == 0


def test_one_challenge_per_jwt_header_type(api_client, settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "AUTH_HEADER_TYPES": ("Bearer", "JWT")}
    response = api_client.get("/api/order/jwt-only/", HTTP_AUTHORIZATION="JWT abc")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The token is not valid: '
        'it is not a well-formed JWT.", JWT realm="api"'
    )
