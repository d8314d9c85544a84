"""The example project end to end: ``auth401_demo`` seeds the demo users, then
each one is tried over the Django test client against the example project's own URLs, with
the example project's AUTH401 and SIMPLE_JWT settings, and every answer is checked whole."""

from __future__ import annotations

import copy
import json
import os
import runpy
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils.html import escape
from rest_framework.authtoken.models import Token

from auth401 import accounts, checks
from auth401.conf import validate
from auth401.exceptions import Auth401Error
from auth401.forms import people_message
from auth401.models import AccountStatus, AuthEvent
from example_project import settings as example_settings
from example_project._env import database_from_env
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


def run_demo(*args: str) -> str:
    out = StringIO()
    call_command("auth401_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def example(settings):
    """The example project's settings over tests.settings (same apps and middleware), with
    DEBUG on, as ``manage.py auth401_demo`` runs it."""
    settings.DEBUG = True
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
    html = response.content.decode()
    detail, hint = people_message(Auth401Error(code))  # the wording for people (no end: bob)
    assert escape(detail) in html
    assert escape(hint) in html
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


def test_demo_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match=r"DEBUG is off.*DJANGO_DEBUG=1.*--yes"):
        run_demo()
    assert not get_user_model().objects.exists()


def test_demo_runs_with_debug_off_when_told_to(example):
    example.DEBUG = False
    out = run_demo("--yes")
    assert {u.username for u in get_user_model().objects.all()} == DEMO_USERNAMES
    assert f"curl -i -u alice:alice-password-1 {BASE_URL}/api/me/" in out


def test_demo_prints_the_blocked_address_case(demo, auth401_settings):
    loop = (
        "for i in $(seq 1 50); do curl -s -o /dev/null --interface 127.0.0.2 "
        f'-u "nobody$i:wrong-password" {BASE_URL}/api/me/; done'
    )
    lines = demo.splitlines()
    index = lines.index(loop)
    assert lines[index - 1] == (
        "# A blocked address: 50 wrong passwords from 127.0.0.2 (curl --interface picks the "
        "client address, on Linux), then alice's right password: 403 address_locked. Unlock it "
        "with: python manage.py auth401_unlock 127.0.0.2"
    )
    assert lines[index + 1] == (
        f"curl -i --interface 127.0.0.2 -u alice:alice-password-1 {BASE_URL}/api/me/"
    )
    auth401_settings(IP_FAILURE_LIMIT=7, LOCKOUT_STATUS_CODE=429)
    again = run_demo()
    assert "# A blocked address: 7 wrong passwords from 127.0.0.2" in again
    assert "then alice's right password: 429 address_locked." in again
    assert "for i in $(seq 1 7); do curl" in again


# -- settings ---------------------------------------------------------------------------------


def _load_example_settings(**environ: str) -> dict[str, Any]:
    """Run example_project/settings.py afresh with exactly these environment variables."""
    path = Path(example_settings.__file__)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    with mock.patch.dict(os.environ, {**keep, **environ}, clear=True):
        return runpy.run_path(str(path))


def test_example_project_refuses_debug_off_on_its_development_key():
    with pytest.raises(ImproperlyConfigured) as caught:
        _load_example_settings()
    message = str(caught.value)
    assert "refuses to run with DEBUG off on its development signing key" in message
    assert "Set the environment variable DJANGO_SECRET_KEY" in message
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        _load_example_settings(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="")


def test_example_project_debug_is_off_by_default():
    key = "a-production-key-that-is-long-and-random-enough-0123456789"
    loaded = _load_example_settings(DJANGO_SECRET_KEY=key)
    assert (loaded["DEBUG"], loaded["SECRET_KEY"]) == (False, key)
    loaded = _load_example_settings(DJANGO_DEBUG="1")
    assert loaded["DEBUG"] is True
    assert loaded["SECRET_KEY"] == loaded["DEVELOPMENT_SECRET_KEY"]


def test_manage_py_turns_debug_on_for_the_demo_only(tmp_path):
    root = Path(example_settings.__file__).resolve().parent.parent
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    check = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "DJANGO_SECRET_KEY" in check.stderr
    demo = subprocess.run(
        [sys.executable, "manage.py", "auth401_demo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert demo.returncode == 0, demo.stderr
    assert "curl -i -u alice:alice-password-1 http://127.0.0.1:8000/api/me/" in demo.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://app:s%40cret@db.example.com:6432/shop?sslmode=require",
            {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "shop",
                "USER": "app",
                "PASSWORD": "s@cret",
                "HOST": "db.example.com",
                "PORT": 6432,
                "OPTIONS": {"sslmode": "require"},
            },
        ),
        (
            "sqlite:////var/lib/demo/db.sqlite3",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "/var/lib/demo/db.sqlite3",
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            },
        ),
        (
            "sqlite://:memory:",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": ":memory:",
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            },
        ),
    ],
    ids=["postgres", "sqlite-file", "sqlite-memory"],
)
def test_database_url(url, expected):
    config = database_from_env("/unused.sqlite3", environ={"DATABASE_URL": url})
    assert {key: config[key] for key in expected} == expected


def test_no_database_url_is_sqlite_next_to_the_project():
    assert database_from_env("/srv/app/db.sqlite3", environ={}) == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path("/srv/app/db.sqlite3"),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }


@pytest.mark.parametrize("url", ["mysqlx://host/db", "postgres://host"])
def test_bad_database_url_is_a_clear_error(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_env("/unused.sqlite3", environ={"DATABASE_URL": url})


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


def test_demo_against_a_database_url_keeps_its_guard(tmp_path):
    """``manage.py auth401_demo`` turns DEBUG on only for a local SQLite file; pointed at a
    database server (which may be a real one) it still refuses to create the demo superuser
    unless DJANGO_DEBUG=1 or --yes says so (before connecting to it)."""
    root = Path(__file__).resolve().parent.parent
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE", "REDIS_URL"}
    }
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:9/production"
    env["DJANGO_SECRET_KEY"] = "a-real-looking-secret-key-for-this-test-only-0123456789"
    done = subprocess.run(
        [sys.executable, "manage.py", "auth401_demo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "DEBUG is off" in done.stderr
    assert "--yes" in done.stderr
    assert "admin-password-1" not in done.stdout
