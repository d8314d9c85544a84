"""The example project end to end (CONTRACT §7): ``auth401_demo`` seeds the demo users, then
each one is tried over the Django test client against the example project's own URLs, with
the example project's AUTH401 and SIMPLE_JWT settings, and every answer is checked whole."""

from __future__ import annotations

import copy
import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils.html import escape
from rest_framework.authtoken.models import Token

from auth401 import accounts, checks
from auth401.codes import CATALOGUE
from auth401.conf import validate
from auth401.models import AccountStatus, AuthEvent
from example_project import settings as example_settings
from tests.conftest import basic
from tests.test_catalogue import FORMATS, assert_answer

pytestmark = [pytest.mark.django_db, pytest.mark.urls("example_project.urls")]

ME = "/api/me/"
STAFF = "/api/staff/"
TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"
BASE_URL = "http://127.0.0.1:8000"
DEMO_USERNAMES = {"admin", "alice", "bob", "carol", "dave", "erin"}


def password(username: str) -> str:
    return f"{username}-password-1"


def as_user(username: str) -> str:
    return basic(username, password(username))


def run_demo() -> str:
    out = StringIO()
    call_command("auth401_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def example(settings):
    """The example project's settings over tests.settings (same apps and middleware)."""
    settings.AUTH401 = {**settings.AUTH401, **example_settings.AUTH401}
    settings.SIMPLE_JWT = dict(example_settings.SIMPLE_JWT)
    settings.REST_FRAMEWORK = dict(example_settings.REST_FRAMEWORK)
    settings.LOGIN_URL = example_settings.LOGIN_URL
    settings.TEMPLATES = copy.deepcopy(example_settings.TEMPLATES)
    return settings


@pytest.fixture
def demo(example) -> str:
    return run_demo()


def assert_ok(response: Any, **expected: Any) -> dict[str, Any]:
    """A 200 JSON answer whose members include ``expected``."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.has_header("X-Request-ID")
    assert not response.has_header("WWW-Authenticate")
    body = json.loads(response.content)
    for key, value in expected.items():
        assert body[key] == value, (key, body)
    return body


# -- the demo users ---------------------------------------------------------------------------


def test_alice_basic(demo, api_client):
    response = api_client.get(ME, HTTP_AUTHORIZATION=as_user("alice"))
    assert_ok(response, username="alice", is_staff=False, auth="BasicAuthentication")


def test_alice_bearer_from_token_endpoint(demo, api_client):
    response = api_client.post(
        TOKEN, {"username": "alice", "password": password("alice")}, format="json"
    )
    pair = assert_ok(response)
    assert set(pair) == {"access", "refresh"}
    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    assert_ok(response, username="alice", auth="JWTAuthentication")

    refreshed = assert_ok(api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json"))
    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {refreshed['access']}")
    assert_ok(response, username="alice", auth="JWTAuthentication")


def test_alice_api_token(demo, api_client):
    key = Token.objects.get(user__username="alice").key
    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Token {key}")
    assert_ok(response, username="alice", auth="TokenAuthentication")


def test_alice_session(demo, api_client):
    assert api_client.login(username="alice", password=password("alice"))
    response = api_client.get(ME)
    assert_ok(response, username="alice", auth="SessionAuthentication")


def test_admin_on_staff_view(demo, api_client):
    response = api_client.get(STAFF, HTTP_AUTHORIZATION=as_user("admin"))
    assert_ok(response, ok=True, username="admin")


@pytest.mark.parametrize(
    ("path", "authorization", "code", "extras"),
    [
        (ME, basic("alice", "wrong-password"), "credentials_invalid", None),
        # an admin lock has no end: no retry_after, no Retry-After
        (ME, as_user("bob"), "account_locked", frozenset()),
        (ME, as_user("carol"), "account_suspended", None),
        (ME, as_user("dave"), "account_inactive", None),
        (ME, as_user("erin"), "password_expired", None),
        (ME, None, "credentials_missing", None),
        (STAFF, as_user("alice"), "permission_denied", None),
    ],
    ids=[
        "alice-wrong-password",
        "bob-locked",
        "carol-suspended",
        "dave-inactive",
        "erin-password-expired",
        "no-credentials",
        "alice-on-staff",
    ],
)
def test_demo_failures(demo, api_client, path, authorization, code, extras):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = api_client.get(path, **headers)
    assert_answer(response, code, extras=extras)


@pytest.mark.parametrize(
    ("username", "typed_password", "code", "extras"),
    [
        ("alice", "wrong-password", "credentials_invalid", None),
        ("nobody", "wrong-password", "credentials_invalid", None),
        ("bob", password("bob"), "account_locked", frozenset()),
        ("carol", password("carol"), "account_suspended", None),
        ("dave", password("dave"), "account_inactive", None),
        ("erin", password("erin"), "password_expired", None),
    ],
    ids=[
        "alice-wrong-password",
        "unknown-user",
        "bob-locked",
        "carol-suspended",
        "dave-inactive",
        "erin-expired",
    ],
)
def test_token_endpoint_failures(demo, api_client, username, typed_password, code, extras):
    response = api_client.post(
        TOKEN, {"username": username, "password": typed_password}, format="json"
    )
    assert_answer(response, code, extras=extras)


# -- plain Django views under /api/ and browser paths -----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_legacy_view_without_login_is_json_401(fmt, demo, api_client, auth401_settings):
    auth401_settings(RESPONSE_FORMAT=fmt)
    response = api_client.get("/api/legacy/")
    # a plain login_required view accepts a session only, and its answer says so
    assert_answer(
        response,
        "credentials_missing",
        fmt=fmt,
        schemes=("Session",),
        exact={"hint": "Authenticate with a session cookie from logging in."},
    )


def test_legacy_view_with_session_login(demo, api_client):
    assert api_client.login(username="alice", password=password("alice"))
    response = api_client.get("/api/legacy/")
    assert_ok(response, ok=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_legacy_forbidden_view_is_json_403(fmt, demo, api_client, auth401_settings):
    auth401_settings(RESPONSE_FORMAT=fmt)
    response = api_client.get("/api/legacy-forbidden/")
    assert_answer(
        response,
        "permission_denied",
        fmt=fmt,
        exact={"detail": "You do not have permission to perform this action."},
    )


@pytest.mark.parametrize("login_path", ["/accounts/login/", "/admin/login/"])
@pytest.mark.parametrize(
    ("username", "typed_password", "code"),
    [
        ("alice", "wrong-password", "credentials_invalid"),
        ("bob", password("bob"), "account_locked"),
        ("carol", password("carol"), "account_suspended"),
        ("dave", password("dave"), "account_inactive"),
        ("erin", password("erin"), "password_expired"),
    ],
    ids=["alice-wrong-password", "bob-locked", "carol-suspended", "dave-inactive", "erin-expired"],
)
def test_browser_login_shows_detail_and_hint_as_html(
    demo, client, login_path, username, typed_password, code
):
    response = client.post(login_path, {"username": username, "password": typed_password})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert not response.has_header("WWW-Authenticate")
    reason = CATALOGUE[code]
    html = response.content.decode()
    assert escape(str(reason.detail)) in html
    assert escape(str(reason.hint)) in html
    assert "_auth_user_id" not in client.session


def test_admin_still_redirects_to_html_login(demo, client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"
    assert not response["Content-Type"].startswith("application/json")
    assert not response.has_header("WWW-Authenticate")

    login_page = client.get(response["Location"])
    assert login_page.status_code == 200
    assert login_page["Content-Type"].startswith("text/html")


def test_login_page_is_html(demo, client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


# -- the command ------------------------------------------------------------------------------


def test_demo_prints_curl_examples(demo):
    key = Token.objects.get(user__username="alice").key
    for line in (
        f"curl -i -u alice:alice-password-1 {BASE_URL}/api/me/",
        f"curl -i -u bob:bob-password-1 {BASE_URL}/api/me/",
        f"curl -i -u carol:carol-password-1 {BASE_URL}/api/me/",
        f"curl -i -u dave:dave-password-1 {BASE_URL}/api/me/",
        f"curl -i -u erin:erin-password-1 {BASE_URL}/api/me/",
        f"curl -i -u alice:alice-password-1 {BASE_URL}/api/staff/",
        f"curl -i -H 'Authorization: Token {key}' {BASE_URL}/api/me/",
        f"curl -i {BASE_URL}/api/legacy/",
    ):
        assert line in demo, line
    assert f"{BASE_URL}/api/token/" in demo
    assert "curl -i -H 'Authorization: Bearer " in demo
    for username in DEMO_USERNAMES:
        assert password(username) in demo


def test_demo_is_idempotent(example, api_client):
    first = run_demo()
    user_model = get_user_model()
    users = {u.username: u for u in user_model.objects.all()}
    assert set(users) == DEMO_USERNAMES
    token_key = Token.objects.get(user=users["alice"]).key
    response = api_client.post(
        TOKEN, {"username": "alice", "password": password("alice")}, format="json"
    )
    access = assert_ok(response)["access"]
    events = AuthEvent.objects.count()

    second = run_demo()

    assert {u.username: u.pk for u in user_model.objects.all()} == {
        name: user.pk for name, user in users.items()
    }
    assert Token.objects.get(user=users["alice"]).key == token_key
    assert AuthEvent.objects.count() == events, "a re-run recorded new status changes"
    states = {row.user.username: row.effective_state() for row in AccountStatus.objects.all()}
    assert states["bob"] == "locked"
    assert states["carol"] == "suspended"
    # Nothing was reset: the token minted between the runs still works, and every demo
    # user still gets the demo's answer.
    assert_ok(api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {access}"), username="alice")
    assert_ok(api_client.get(ME, HTTP_AUTHORIZATION=as_user("alice")), username="alice")
    assert_answer(
        api_client.get(ME, HTTP_AUTHORIZATION=as_user("bob")), "account_locked", extras=frozenset()
    )
    assert_answer(api_client.get(ME, HTTP_AUTHORIZATION=as_user("erin")), "password_expired")
    assert "curl" in first
    assert "curl" in second


def test_demo_repairs_a_changed_demo(example, api_client):
    run_demo()
    user_model = get_user_model()
    accounts.reinstate(user_model.objects.get(username="bob"))
    alice = user_model.objects.get(username="alice")
    alice.set_password("something-else-1")
    alice.save()

    run_demo()

    assert_ok(api_client.get(ME, HTTP_AUTHORIZATION=as_user("alice")), username="alice")
    assert_answer(
        api_client.get(ME, HTTP_AUTHORIZATION=as_user("bob")), "account_locked", extras=frozenset()
    )


# -- settings ---------------------------------------------------------------------------------


def test_tests_settings_pass_the_checks():
    assert checks.check_settings() == []
    assert checks.check_wiring() == []


def test_example_project_auth401_setting_is_valid():
    assert validate(example_settings.AUTH401) == []


def test_tests_settings_run_the_example_projects_wiring(settings):
    """The ``example`` overlay is faithful only while the apps, backends and auth401's place
    in the middleware are the example project's."""
    assert settings.INSTALLED_APPS == example_settings.INSTALLED_APPS
    assert settings.AUTHENTICATION_BACKENDS == example_settings.AUTHENTICATION_BACKENDS
    assert [m for m in example_settings.MIDDLEWARE if m in settings.MIDDLEWARE] == list(
        settings.MIDDLEWARE
    )
