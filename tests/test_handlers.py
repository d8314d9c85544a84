"""auth401.handlers.exception_handler: the contract answer for 401/403, everything else handed to
FALLBACK_EXCEPTION_HANDLER unchanged."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import connection, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from rest_framework import exceptions
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from auth401 import accounts, signals
from auth401.handlers import exception_handler
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

BODY_KEYS = {"status", "error", "code", "detail", "hint", "request_id"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "hint", "request_id"}
DRF_DEFAULT = "rest_framework.views.exception_handler"

factory = APIRequestFactory()


def assert_failure(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json() if hasattr(response, "json") else response.data
    assert set(body) == BODY_KEYS
    assert body["status"] == status
    assert body["error"] == HTTPStatus(status).phrase
    assert body["code"] == code
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == body["request_id"]
    assert response.has_header("WWW-Authenticate") == (status == 401)
    return body


# --- views that only these tests need ------------------------------------------------------


class MissingObject(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        get_object_or_404(get_user_model(), pk=987654321)


class AlwaysThrottled(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 30


class ThrottledView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [AlwaysThrottled]

    def get(self, request):
        return Response({"ok": True})


class OnlyOnTuesdays(BasePermission):
    message = "Only on Tuesdays."

    def has_permission(self, request, view):
        return False


class TuesdayView(APIView):
    permission_classes = [IsAuthenticated, OnlyOnTuesdays]

    def get(self, request):
        return Response({"ok": True})


class VaultView(APIView):
    """Raises Django's own PermissionDenied, with or without a message."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        message = request.query_params.get("message")
        raise DjangoPermissionDenied(*([message] if message else []))


class WritesThenRefuses(APIView):
    """Writes a row, then refuses: DRF rolls such a request back under ATOMIC_REQUESTS."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        AuthEvent.objects.create(code="view_wrote_this")
        raise exceptions.PermissionDenied("Not after all.")


def call(view: type[APIView], *, user: Any = None, path: str = "/api/test/", **extra: Any) -> Any:
    """Run ``view`` on a factory request; ``user`` logs in with Basic and the fixture password
    (not ``force_authenticate``: see test_forced_authentication_403_is_permission_denied)."""
    if user is not None:
        extra["HTTP_AUTHORIZATION"] = basic(user.get_username(), PASSWORD)
    request = factory.get(path, **extra)
    response = view.as_view()(request)
    if hasattr(response, "render"):
        response.render()
    return response


def context_for(request_path: str = "/api/test/", **extra: Any) -> dict[str, Any]:
    view = APIView()
    request = Request(factory.get(request_path, **extra))
    view.request = request
    return {"view": view, "args": (), "kwargs": {}, "request": request}


def same_answer(ours: Any, theirs: Any) -> None:
    """Same status, same body, same headers (auth401 must add nothing to them)."""
    assert ours.status_code == theirs.status_code
    assert ours.data == theirs.data
    assert dict(ours.items()) == dict(theirs.items())


@pytest.fixture
def drf_default_handler(settings):
    """Switch REST_FRAMEWORK's EXCEPTION_HANDLER to DRF's own, for comparison runs."""

    def switch() -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": DRF_DEFAULT}

    return switch


# --- everything that is not 401/403 goes to the fallback unchanged --------------------------


@pytest.mark.django_db
def test_404_for_a_missing_object_is_drfs_answer(drf_default_handler):
    ours = call(MissingObject)
    drf_default_handler()
    theirs = call(MissingObject)

    assert ours.status_code == 404
    assert ours.data == {"detail": "No User matches the given query."}
    same_answer(ours, theirs)
    assert not ours.has_header("Cache-Control")


def test_http404_passed_directly_is_drfs_answer():
    ours = exception_handler(Http404("gone"), context_for())
    theirs = drf_exception_handler(Http404("gone"), context_for())

    assert ours.status_code == 404
    same_answer(ours, theirs)


@pytest.mark.django_db
def test_validation_error_from_token_view_is_drfs_answer(api_client, drf_default_handler):
    ours = api_client.post("/api/token/", {}, format="json")
    drf_default_handler()
    theirs = api_client.post("/api/token/", {}, format="json")

    assert ours.status_code == 400, ours.content
    assert ours.json() == {
        "username": ["This field is required."],
        "password": ["This field is required."],
    }
    assert ours.json() == theirs.json()
    assert ours["Content-Type"] == theirs["Content-Type"] == "application/json"
    assert not ours.has_header("WWW-Authenticate")
    assert ours.get("Cache-Control") == theirs.get("Cache-Control")


@pytest.mark.django_db
def test_throttled_is_drfs_answer(drf_default_handler):
    ours = call(ThrottledView)
    drf_default_handler()
    theirs = call(ThrottledView)

    assert ours.status_code == 429
    assert ours.data == {"detail": "Request was throttled. Expected available in 30 seconds."}
    assert ours["Retry-After"] == "30"
    same_answer(ours, theirs)


CUSTOM_CALLS: list[tuple[type[Exception], Any]] = []


def custom_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """A FALLBACK_EXCEPTION_HANDLER of the project's own."""
    CUSTOM_CALLS.append((type(exc), context.get("view")))
    return Response({"handled_by": "custom", "exception": type(exc).__name__}, status=418)


@pytest.fixture
def custom_fallback(auth401_settings):
    CUSTOM_CALLS.clear()
    auth401_settings(FALLBACK_EXCEPTION_HANDLER="tests.test_handlers.custom_handler")
    yield CUSTOM_CALLS
    CUSTOM_CALLS.clear()


@pytest.mark.django_db
def test_custom_fallback_handler_gets_non_auth_errors(custom_fallback):
    response = call(MissingObject)

    assert response.status_code == 418
    assert response.data == {"handled_by": "custom", "exception": "Http404"}
    assert [exc_type for exc_type, _ in custom_fallback] == [Http404]
    assert isinstance(custom_fallback[0][1], MissingObject)


@pytest.mark.django_db
def test_custom_fallback_handler_is_not_asked_about_401_and_403(api_client, user, custom_fallback):
    unauthenticated = api_client.get("/api/me/")
    forbidden = api_client.get("/api/staff/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))

    assert_failure(unauthenticated, 401, "credentials_missing")
    assert_failure(forbidden, 403, "permission_denied")
    assert custom_fallback == []


# --- 403 permission_denied ---------------------------------------------------------------------


@pytest.mark.django_db
def test_views_own_permission_message_is_kept(user):
    response = call(TuesdayView, user=user)

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "Only on Tuesdays."
    assert body["hint"] == (
        "Use an account that has the required permission, or ask an administrator for it."
    )


@pytest.mark.django_db
def test_forced_authentication_403_is_permission_denied(user):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    request = factory.get("/api/test/")
    force_authenticate(request, user=user)

    through_client = client.get("/api/staff/")
    through_factory = TuesdayView.as_view()(request)

    assert_failure(through_client, 403, "permission_denied")
    body = assert_failure(through_factory, 403, "permission_denied")
    assert body["detail"] == "Only on Tuesdays."


@pytest.mark.django_db  # failures are audited: one AuthEvent row each
def test_permission_message_kept_when_handler_is_called_directly():
    exc = exceptions.PermissionDenied(OnlyOnTuesdays.message)

    response = exception_handler(exc, context_for())

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "Only on Tuesdays."


@pytest.mark.django_db  # failures are audited: one AuthEvent row each
def test_drf_default_permission_message_gives_the_catalogue_detail():
    response = exception_handler(exceptions.PermissionDenied(), context_for())

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "You do not have permission to perform this action."


@pytest.mark.django_db
def test_staff_view_gives_permission_denied(api_client, user):
    response = api_client.get("/api/staff/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "You do not have permission to perform this action."


@pytest.mark.django_db
def test_django_permission_denied_in_a_drf_view(user):
    bare = call(VaultView, user=user)
    with_message = call(VaultView, user=user, path="/api/test/?message=No+access+to+the+vault.")

    body = assert_failure(bare, 403, "permission_denied")
    assert body["detail"] == "You do not have permission to perform this action."
    body = assert_failure(with_message, 403, "permission_denied")
    assert body["detail"] == "No access to the vault."


@pytest.mark.django_db  # failures are audited: one AuthEvent row each
def test_not_authenticated_passed_directly_gives_credentials_missing():
    response = exception_handler(exceptions.NotAuthenticated(), context_for())

    body = assert_failure(response, 401, "credentials_missing")
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", Token realm="api", Basic realm="api", charset="UTF-8"'
    )
    assert "Bearer" in body["hint"] and "Basic" in body["hint"]


@pytest.mark.django_db  # failures are audited: one AuthEvent row each
def test_request_id_is_the_callers_when_handler_is_called_directly():
    context = context_for(HTTP_X_REQUEST_ID="caller-id-1")

    response = exception_handler(exceptions.NotAuthenticated(), context)

    assert_failure(response, 401, "credentials_missing")
    assert response["X-Request-ID"] == "caller-id-1"


# --- the problem format --------------------------------------------------------------------------


def assert_problem(response: Any, status: int, code: str, path: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json() if hasattr(response, "json") else response.data
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert body["title"] == HTTPStatus(status).phrase
    assert body["code"] == code
    assert body["instance"] == path
    assert body["detail"] and body["hint"]
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == body["request_id"]
    assert response.has_header("WWW-Authenticate") == (status == 401)
    return body


@pytest.mark.django_db
def test_problem_format_401(api_client, auth401_settings):
    auth401_settings(RESPONSE_FORMAT="problem")

    response = api_client.get("/api/me/")

    body = assert_problem(response, 401, "credentials_missing", "/api/me/")
    assert body["type"] == "about:blank"
    assert body["detail"] == "Authentication credentials were not provided."


@pytest.mark.django_db
def test_problem_format_403_with_docs_url(api_client, user, auth401_settings):
    auth401_settings(RESPONSE_FORMAT="problem", DOCS_URL="https://example.com/errors/{code}")

    response = api_client.get("/api/staff/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))

    body = assert_problem(response, 403, "permission_denied", "/api/staff/")
    assert body["type"] == "https://example.com/errors/permission_denied"


@pytest.mark.django_db
def test_problem_format_keeps_fallback_errors_unchanged(api_client, auth401_settings):
    auth401_settings(RESPONSE_FORMAT="problem")

    response = api_client.post("/api/token/", {}, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"username", "password"}


@pytest.mark.django_db
def test_auth401_format_with_docs_url_adds_docs(api_client, auth401_settings):
    auth401_settings(DOCS_URL="https://example.com/errors/{code}")

    response = api_client.get("/api/me/")

    assert response.status_code == 401
    body = response.json()
    assert set(body) == BODY_KEYS | {"docs"}
    assert body["docs"] == "https://example.com/errors/credentials_missing"


# --- ATOMIC_REQUESTS ---------------------------------------------------------------------------


@pytest.fixture
def atomic_requests(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)


@pytest.mark.django_db(transaction=True)
def test_401_under_atomic_requests_answers_normally(api_client, user_factory, atomic_requests):
    user_factory()

    failed = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong-password"))
    missing = api_client.get("/api/me/")
    ok = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))

    assert_failure(failed, 401, "credentials_invalid")
    assert_failure(missing, 401, "credentials_missing")
    assert ok.status_code == 200, ok.content
    assert not connection.in_atomic_block


@pytest.mark.django_db(transaction=True)
def test_failure_count_survives_atomic_requests(api_client, user_factory, atomic_requests):
    user_factory()

    for _ in range(2):
        response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong-password"))
        assert_failure(response, 401, "credentials_invalid")

    assert accounts.status("alice").failures_in_window == 2
    assert AuthEvent.objects.filter(code="credentials_invalid", username="alice").count() == 2


@pytest.mark.django_db(transaction=True)
def test_audit_rows_survive_atomic_requests(api_client, user_factory, atomic_requests):
    """A 403 rolls the view's transaction back (as DRF does); its audit row is written by the
    middleware after that transaction, so it stays, like the 401's."""
    user_factory()

    forbidden = api_client.get("/api/staff/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    missing = api_client.get("/api/me/")

    assert_failure(forbidden, 403, "permission_denied")
    assert_failure(missing, 401, "credentials_missing")
    events = {e.code: e for e in AuthEvent.objects.filter(status_code__in=[401, 403])}
    assert set(events) == {"permission_denied", "credentials_missing"}
    assert events["permission_denied"].request_id == forbidden["X-Request-ID"]
    assert events["credentials_missing"].request_id == missing["X-Request-ID"]


@pytest.mark.django_db(transaction=True)
def test_permission_denied_after_view_code_rolls_back_under_atomic_requests(
    user_factory, atomic_requests
):
    user = user_factory()

    with transaction.atomic():
        response = call(WritesThenRefuses, user=user)

    body = assert_failure(response, 403, "permission_denied")
    assert body["detail"] == "Not after all."
    assert not AuthEvent.objects.filter(code="view_wrote_this").exists()


# --- the auth_failed signal ----------------------------------------------------------------------


@pytest.fixture
def failures() -> Any:
    received: list[tuple[Any, Any]] = []

    def receiver(sender: Any, request: Any, failure: Any, **kwargs: Any) -> None:
        received.append((request, failure))

    signals.auth_failed.connect(receiver)
    yield received
    signals.auth_failed.disconnect(receiver)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "header", "status", "code"),
    [
        ("/api/me/", None, 401, "credentials_missing"),
        ("/api/me/", "Bearer abc.def.ghi", 401, "token_invalid"),
        ("/api/me/", basic("alice", "wrong-password"), 401, "credentials_invalid"),
        ("/api/me/", "Digest x", 401, "scheme_unsupported"),
        ("/api/staff/", basic("alice", PASSWORD), 403, "permission_denied"),
        ("/api/legacy/", None, 401, "credentials_missing"),
        ("/api/legacy-forbidden/", None, 403, "permission_denied"),
    ],
)
def test_auth_failed_is_sent_once_per_failure(
    api_client, user, failures, path, header, status, code
):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = api_client.get(path, **extra)

    body = assert_failure(response, status, code)
    assert len(failures) == 1
    request, failure = failures[0]
    assert failure.code == code
    assert getattr(request, "path", None) == path
    assert body["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_auth_failed_is_not_sent_on_success(api_client, user, failures):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    fallback = api_client.post("/api/token/", {}, format="json")

    assert response.status_code == 200
    assert fallback.status_code == 400
    assert failures == []


# -- plain Django views under API_PATH_PREFIXES: what the view accepts -----------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "offered"),
    [("Bearer abc.def.ghi", "Bearer"), ("Basic YWxpY2U6eA==", "Basic"), ("Token k", "Token")],
)
def test_plain_view_with_credentials_it_cannot_use_is_scheme_unsupported(client, header, offered):
    """A ``login_required`` view accepts a session only: credentials sent in a header were not
    "missing", they are a scheme this view does not take (``scheme_unsupported``), and the
    answer names the session, not DRF's schemes."""
    response = client.get("/api/legacy/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    body = response.json()
    assert body == {
        "status": 401,
        "error": "Unauthorized",
        "code": "scheme_unsupported",
        "detail": f"The authentication scheme '{offered}' is not accepted here.",
        "hint": "Authenticate with one of the accepted schemes: a session cookie from logging in.",
        "request_id": response["X-Request-ID"],
    }
    assert response["WWW-Authenticate"] == 'Session realm="api"'
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Type"] == "application/json"
    assert not response.has_header("Location")
    row = AuthEvent.objects.get()
    assert (row.code, row.status_code, row.path) == ("scheme_unsupported", 401, "/api/legacy/")


# -- simplejwt's token views: a time claim that overflows simplejwt's checks --------------------


def _token_view_request(token: str) -> Request:
    """A DRF request to simplejwt's verify view whose body has been parsed, as the view does."""
    from rest_framework.parsers import JSONParser

    factory = APIRequestFactory()
    request = Request(
        factory.post("/api/token/verify/", {"token": token}, format="json"),
        parsers=[JSONParser()],
    )
    assert request.data == {"token": token}
    return request


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OverflowError("timestamp out of range"), ValueError("year")])
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_token_view_claim_overflow_is_token_invalid_not_a_500(error, claim):
    """simplejwt's verify and blacklist views catch TokenError only; the overflow of a signed
    token's exp/nbf/iat reaches the handler, which answers token_invalid."""
    import jwt
    from django.conf import settings as django_settings
    from rest_framework_simplejwt.views import TokenVerifyView

    token = jwt.encode({claim: 1e300}, django_settings.SECRET_KEY, algorithm="HS256")
    request = _token_view_request(token)
    response = exception_handler(error, {"request": request, "view": TokenVerifyView()})
    assert response.status_code == 401
    assert response.data["code"] == "token_invalid"
    assert response.data["detail"] == "The token is not valid: it could not be verified."
    assert response["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_token"')


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OverflowError("x"), ValueError("bug"), OSError("disk")])
def test_other_errors_in_a_token_view_are_not_token_failures(error):
    """An OverflowError, ValueError or OSError in a token view whose token has readable times
    is a bug: not answered as a bad token (it reaches Django as a 500, logged)."""
    from rest_framework_simplejwt.views import TokenVerifyView

    request = _token_view_request("aaa.bbb.ccc")
    assert exception_handler(error, {"request": request, "view": TokenVerifyView()}) is None


def test_the_same_error_elsewhere_is_not_an_authentication_failure():
    class Other(APIView):
        pass

    request = APIRequestFactory().get("/api/other/")
    assert exception_handler(OverflowError("x"), {"request": request, "view": Other()}) is None


# --- a failure never reads an unparsable body ------------------------------------------------


@pytest.mark.django_db
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
