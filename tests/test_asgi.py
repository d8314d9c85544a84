"""The async path: the same contract through Django's ASGI handler (``AsyncClient``), with
``Auth401Middleware`` running as async middleware."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from auth401.codes import HEADER_NOTE
from auth401.exceptions import Auth401Error
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db

CHALLENGES = 'Bearer realm="api", Token realm="api", Basic realm="api", charset="UTF-8"'
LISTED = "Bearer, Token, Basic, or a session cookie from logging in"


def get(path: str, **headers: str) -> Any:
    """GET through the ASGI handler, from this synchronous test."""
    client = AsyncClient(raise_request_exception=False)
    return async_to_sync(client.get)(path, headers=headers)


def body(code: str, request_id: str, **params: Any) -> dict[str, Any]:
    """The contract body of ``code`` as the catalogue words it."""
    failure = Auth401Error(code, **params)
    return {
        "status": failure.reason.status_code(),
        "error": failure.reason.title(),
        "code": code,
        "detail": failure.render_detail(),
        "hint": failure.render_hint(),
        "request_id": request_id,
    }


def assert_contract(response: Any, status: int, expected: dict[str, Any], challenge: str | None):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == expected
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == expected["request_id"]
    assert response.get("WWW-Authenticate") == challenge
    assert "Retry-After" not in response


def test_the_asgi_application_is_async():
    from django.core.handlers.asgi import ASGIHandler

    from example_project.asgi import application

    handler = getattr(application, "application", application)  # static files wrapper
    assert isinstance(handler, ASGIHandler)


def test_no_credentials(user):
    response = get("/api/me/", **{"X-Request-ID": "asgi-missing"})
    assert_contract(
        response,
        401,
        body("credentials_missing", "asgi-missing", schemes=LISTED, header_note=HEADER_NOTE),
        CHALLENGES,
    )


def test_wrong_basic_password(user):
    response = get(
        "/api/me/", Authorization=basic("alice", "wrong"), **{"X-Request-ID": "asgi-wrong"}
    )
    assert_contract(response, 401, body("credentials_invalid", "asgi-wrong"), CHALLENGES)


def test_right_password(user):
    response = get("/api/me/", Authorization=basic("alice", PASSWORD))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert len(response["X-Request-ID"]) >= 16


def test_permission_denied_on_staff(user):
    response = get(
        "/api/staff/", Authorization=basic("alice", PASSWORD), **{"X-Request-ID": "asgi-staff"}
    )
    assert_contract(response, 403, body("permission_denied", "asgi-staff"), None)


def test_legacy_view_gets_json(db):
    response = get("/api/legacy-forbidden/", **{"X-Request-ID": "asgi-legacy"})
    assert_contract(response, 403, body("permission_denied", "asgi-legacy"), None)


def test_failures_are_audited_on_the_async_path(user):
    from auth401.models import AuthEvent

    get("/api/me/", Authorization=basic("alice", "wrong"), **{"X-Request-ID": "asgi-audit"})
    event = AuthEvent.objects.get(request_id="asgi-audit")
    assert (event.code, event.status_code, event.username, event.path) == (
        "credentials_invalid",
        401,
        "alice",
        "/api/me/",
    )
