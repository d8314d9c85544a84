"""auth401.middleware.Auth401Middleware: request ids on every response, the contract body for
plain Django views under API_PATH_PREFIXES (sync and async), HTML everywhere else, and no
start with a bad AUTH401 setting."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.core.exceptions import (
    BadRequest,
    ImproperlyConfigured,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.test import AsyncClient, Client, RequestFactory
from rest_framework.exceptions import ParseError

from auth401.middleware import Auth401Middleware
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

BODY_KEYS = {"status", "error", "code", "detail", "hint", "request_id"}
#: CONTRACT §3: a sane id is up to 128 letters, digits and -_.:
SANE = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")
#: the default classes' challenges (the session is not an HTTP scheme: no challenge of its own)
DEFAULT_CHALLENGES = 'Bearer realm="api", Token realm="api", Basic realm="api", charset="UTF-8"'


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def assert_failure(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == BODY_KEYS
    assert body["status"] == status
    assert body["error"] == HTTPStatus(status).phrase
    assert body["code"] == code
    assert body["detail"] and body["hint"]
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == body["request_id"]
    assert response.has_header("WWW-Authenticate") == (status == 401)
    return body


# --- X-Request-ID ------------------------------------------------------------------------------

SANE_IDS = ["abc", "A-b_c.d:e", "9f0c1d4e2b7a4c55", "x" * 128, "1"]
INSANE_IDS = [
    pytest.param("x" * 129, id="129-chars"),
    pytest.param("has space", id="space"),
    pytest.param("caf\xe9", id="non-ascii"),
    pytest.param("ab\r\nX-Evil: 1", id="crlf"),
    pytest.param("a/b", id="slash"),
    pytest.param('a"b', id="quote"),
    pytest.param("", id="empty"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("offered", SANE_IDS)
@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/me/", 401), ("/api/legacy/", 401), ("/api/legacy-forbidden/", 403)],
)
def test_sane_request_id_is_echoed_in_header_and_body(client, offered, path, status):
    response = client.get(path, HTTP_X_REQUEST_ID=offered)

    body = assert_failure(response, status, response.json()["code"])
    assert body["request_id"] == offered
    assert response["X-Request-ID"] == offered


@pytest.mark.django_db
@pytest.mark.parametrize("offered", SANE_IDS)
def test_sane_request_id_is_echoed_on_200(client, offered):
    response = client.get("/api/public/", HTTP_X_REQUEST_ID=offered)

    assert response.status_code == 200
    assert response["X-Request-ID"] == offered


@pytest.mark.django_db
@pytest.mark.parametrize("offered", INSANE_IDS)
@pytest.mark.parametrize("path", ["/api/me/", "/api/legacy-forbidden/", "/api/public/"])
def test_insane_request_id_is_replaced(client, offered, path):
    response = client.get(path, HTTP_X_REQUEST_ID=offered)

    request_id = response["X-Request-ID"]
    assert request_id != offered
    assert SANE.fullmatch(request_id)
    assert not response.has_header("X-Evil")
    if response.status_code != 200:
        assert response.json()["request_id"] == request_id


@pytest.mark.django_db
def test_request_id_present_on_every_response(client, user):
    client.force_login(user)
    responses = [
        client.get("/api/public/"),
        client.get("/api/me/"),
        client.get("/api/legacy/"),
        Client().get("/admin/"),
        Client(raise_request_exception=False).get("/no-such-page/"),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 302, 404]
    for response in responses:
        assert SANE.fullmatch(response["X-Request-ID"])


@pytest.mark.django_db
def test_new_request_ids_differ_between_requests(client):
    ids = {client.get("/api/me/")["X-Request-ID"] for _ in range(5)}

    assert len(ids) == 5


# --- plain Django views under API_PATH_PREFIXES -------------------------------------------------


@pytest.mark.django_db
def test_login_required_view_under_api_gives_json_401(client):
    response = client.get("/api/legacy/")

    body = assert_failure(response, 401, "credentials_missing")
    assert response["WWW-Authenticate"] == 'Session realm="api"'  # what the view accepts
    assert body["detail"] == "Authentication credentials were not provided."
    assert body["hint"] == "Authenticate with a session cookie from logging in."
    assert not response.has_header("Location")


@pytest.mark.django_db
def test_login_required_view_under_api_lets_a_session_through(client, user):
    client.force_login(user)

    response = client.get("/api/legacy/")

    assert response.status_code == 200
    assert response.json() == {"ok": True}


@pytest.mark.django_db
def test_permission_denied_view_under_api_gives_json_403(client):
    response = client.get("/api/legacy-forbidden/")

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "You do not have permission to perform this action."


@pytest.mark.django_db
def test_admin_outside_api_prefixes_stays_an_html_redirect(client):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"
    assert response["Content-Type"].startswith("text/html")
    assert not response.has_header("WWW-Authenticate")


@pytest.mark.django_db
def test_api_path_prefixes_override_moves_views_back_to_html(client, auth401_settings):
    auth401_settings(API_PATH_PREFIXES=["/v2/"])

    redirect = client.get("/api/legacy/")
    forbidden = client.get("/api/legacy-forbidden/")

    assert redirect.status_code == 302
    assert redirect["Location"] == "/accounts/login/?next=/api/legacy/"
    assert forbidden.status_code == 403
    assert forbidden["Content-Type"].startswith("text/html")
    assert not forbidden.has_header("Cache-Control")
    assert SANE.fullmatch(forbidden["X-Request-ID"])


@pytest.mark.django_db
def test_api_path_prefixes_override_picks_exact_views(client, auth401_settings):
    auth401_settings(API_PATH_PREFIXES=["/api/legacy-forbidden/"])

    redirect = client.get("/api/legacy/")
    forbidden = client.get("/api/legacy-forbidden/")

    assert redirect.status_code == 302
    assert_failure(forbidden, 403, "permission_denied")


@pytest.mark.django_db
def test_drf_views_answer_json_whatever_the_prefixes(client, auth401_settings):
    auth401_settings(API_PATH_PREFIXES=["/v2/"])

    response = client.get("/api/me/")

    assert_failure(response, 401, "credentials_missing")


@pytest.mark.django_db
def test_middleware_answers_in_the_problem_format_too(client, auth401_settings):
    auth401_settings(RESPONSE_FORMAT="problem")

    response = client.get("/api/legacy-forbidden/")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "code",
        "hint",
        "request_id",
    }
    assert body["instance"] == "/api/legacy-forbidden/"
    assert body["code"] == "permission_denied"
    assert response["X-Request-ID"] == body["request_id"]


@pytest.mark.django_db
def test_permission_denied_message_of_a_plain_view_is_kept():
    request = RequestFactory().get("/api/anything/")
    middleware = Auth401Middleware(lambda request: HttpResponse())

    response = middleware.process_exception(request, PermissionDenied("Read-only on Sundays."))

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "Read-only on Sundays."


@pytest.mark.django_db
def test_other_exceptions_are_left_to_django():
    request = RequestFactory().get("/api/anything/")
    middleware = Auth401Middleware(lambda request: HttpResponse())

    assert middleware.process_exception(request, ValueError("boom")) is None
    outside = RequestFactory().get("/elsewhere/")
    assert middleware.process_exception(outside, PermissionDenied()) is None


# --- bad settings refuse to start -------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"FAILURE_LIMIT": -1}, "FAILURE_LIMIT"),
        ({"FAILURE_LIMT": 5}, "FAILURE_LIMT"),
        ({"RESPONSE_FORMAT": "xml"}, "RESPONSE_FORMAT"),
        ({"API_PATH_PREFIXES": ["api/"]}, "API_PATH_PREFIXES"),
        ({"LOCKOUT_STATUS_CODE": 401}, "LOCKOUT_STATUS_CODE"),
        ({"FALLBACK_EXCEPTION_HANDLER": "no.such.handler"}, "FALLBACK_EXCEPTION_HANDLER"),
    ],
)
def test_bad_setting_stops_the_middleware_from_starting(auth401_settings, overrides, key):
    auth401_settings(**overrides)

    with pytest.raises(ImproperlyConfigured) as raised:
        Auth401Middleware(lambda request: HttpResponse())

    assert key in str(raised.value)


def test_good_settings_start(auth401_settings):
    auth401_settings(FAILURE_LIMIT=3, RESPONSE_FORMAT="problem", API_PATH_PREFIXES=["/v2/"])

    middleware = Auth401Middleware(lambda request: HttpResponse())

    assert not iscoroutinefunction(middleware)


# --- the async path ------------------------------------------------------------------------------


def _async_get(path: str, **extra: Any) -> Any:
    async def fetch() -> Any:
        return await AsyncClient(raise_request_exception=False).get(path, **extra)

    return async_to_sync(fetch)()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/legacy-forbidden/", 403, "permission_denied"),
        ("/api/legacy/", 401, "credentials_missing"),
        ("/api/me/", 401, "credentials_missing"),
    ],
)
def test_async_client_gets_the_same_answer(client, path, status, code):
    sync_body = assert_failure(client.get(path), status, code)

    response = _async_get(path)

    async_body = assert_failure(response, status, code)
    assert set(async_body) == set(sync_body)
    assert {k: v for k, v in async_body.items() if k != "request_id"} == {
        k: v for k, v in sync_body.items() if k != "request_id"
    }
    if status == 401:
        plain = path == "/api/legacy/"  # a login_required view: a session, nothing else
        assert response["WWW-Authenticate"] == (
            'Session realm="api"' if plain else DEFAULT_CHALLENGES
        )


@pytest.mark.django_db
def test_async_client_echoes_request_id_and_lets_credentials_through(user):
    failure = _async_get("/api/me/", headers={"X-Request-ID": "async-1"})
    success = _async_get(
        "/api/me/", headers={"Authorization": basic("alice", PASSWORD), "X-Request-ID": "async-2"}
    )

    assert_failure(failure, 401, "credentials_missing")
    assert failure["X-Request-ID"] == "async-1"
    assert success.status_code == 200, success.content
    assert success["X-Request-ID"] == "async-2"
    assert success.json()["username"] == "alice"


@pytest.mark.django_db
def test_async_get_response_makes_an_async_middleware():
    async def login_redirect(request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect("/accounts/login/?next=" + request.path)

    middleware = Auth401Middleware(login_redirect)
    request = RequestFactory().get("/api/anything/", HTTP_X_REQUEST_ID="async-direct")

    assert iscoroutinefunction(middleware)
    response = async_to_sync(middleware)(request)

    body = assert_failure(response, 401, "credentials_missing")
    assert body["request_id"] == "async-direct"


@pytest.mark.django_db
def test_async_path_leaves_other_redirects_alone():
    async def elsewhere(request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect("/somewhere-else/")

    response = async_to_sync(Auth401Middleware(elsewhere))(RequestFactory().get("/api/x/"))

    assert response.status_code == 302
    assert response["Location"] == "/somewhere-else/"
    assert SANE.fullmatch(response["X-Request-ID"])


@pytest.mark.django_db
def test_the_site_wide_cache_stores_and_serves_answers(user, client, settings, auth401_settings):
    """Django's per-site cache (UpdateCacheMiddleware first, FetchFromCacheMiddleware last)
    pickles the response: auth401 attaches nothing to it, and still runs its after-response
    work (here the failure's held row, written once the window has passed)."""
    from django.core.cache import cache

    from auth401 import events

    settings.MIDDLEWARE = [
        "django.middleware.cache.UpdateCacheMiddleware",
        *settings.MIDDLEWARE,
        "django.middleware.cache.FetchFromCacheMiddleware",
    ]
    settings.CACHE_MIDDLEWARE_SECONDS = 60
    settings.CACHE_MIDDLEWARE_KEY_PREFIX = "site-cache-test"
    cache.clear()
    first = client.get("/api/public/")
    second = client.get("/api/public/")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json() == {"user": None}
    assert "Expires" in first and first["X-Request-ID"] == second["X-Request-ID"]  # cached
    plain = client.get("/admin/login/")
    assert plain.status_code == 200
    auth401_settings(AUDIT_BATCH_DELAY=timedelta(0))
    refused = client.get("/api/me/")
    assert (refused.status_code, refused.json()["code"]) == (401, "credentials_missing")
    assert events.held.pending() == 0
    assert AuthEvent.objects.filter(code="credentials_missing").count() == 1
    cache.clear()


@pytest.mark.django_db(transaction=True)  # close() ends the request: Django closes connections
def test_after_response_work_waits_for_the_response_to_be_closed(rf):
    """The work runs when the server closes the response (request_finished), in the thread
    that answered; nothing is attached to the response."""
    import pickle

    from auth401 import state

    ran = []

    def view(request):
        state.of(request).after_response(lambda: ran.append("work"))
        return HttpResponse("ok")

    request = rf.get("/api/public/")
    response = Auth401Middleware(view)(request)
    pickle.dumps(response)  # what the site-wide cache does
    assert ran == []
    response.close()
    assert ran == ["work"]
    response.close()
    assert ran == ["work"]  # once


@pytest.mark.parametrize(
    "exception",
    [
        DisallowedModelAdminLookup("Filtering by user__password not allowed"),
        RequestDataTooBig("too big"),
        SuspiciousOperation("odd"),
        BadRequest("bad"),
        ParseError("JSON parse error"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_expected_client_errors_are_logged_at_info_without_a_traceback(caplog, exception):
    """Django answers them 400: the client's input, not an "unexpected" error; a CR/LF in the
    path cannot start a forged log line."""
    caplog.set_level(logging.INFO, logger="auth401")
    request = RequestFactory().get("/admin/x/%0D%0Aforged", HTTP_X_REQUEST_ID="req-7")
    middleware = Auth401Middleware(lambda r: HttpResponse())
    assert middleware.process_exception(request, exception) is None
    [record] = [r for r in caplog.records if r.name == "auth401"]
    assert (record.levelno, record.exc_info, record.request_id) == (logging.INFO, None, "req-7")
    name = type(exception).__name__
    assert record.getMessage() == (
        f"auth401: client error {name} on GET /admin/x/??forged ({str(exception)!r}) "
        "request_id=req-7"
    )
