"""Trusted devices: the cookie a password login sets, the device's own failure budget while
the username is locked for everyone else, and revocation."""

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from auth401 import accounts, devices, lockout
from auth401.models import AccountStatus, Device
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db

COOKIE = "auth401_device"
HOME = "10.0.0.1"
ATTACKER = "10.6.6.6"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


def form_login(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def token_login(client, username, password, **extra):
    return client.post("/api/token/", {"username": username, "password": password}, **extra)


def device_client(username="alice", password=PASSWORD):
    """A browser that has logged in once (its cookie jar holds the device cookie)."""
    client = Client(REMOTE_ADDR=HOME, HTTP_USER_AGENT=BROWSER)
    assert form_login(client, username, password).status_code == 302
    return client


def lock_from_elsewhere(username="alice"):
    """An attacker at another address locks the username (FAILURE_LIMIT 5)."""
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    answers = [token_login(attacker, username, f"guess-{i}") for i in range(5)]
    assert [a.json()["code"] for a in answers] == ["credentials_invalid"] * 4 + ["account_locked"]
    return attacker


def assert_refused(response, code, status=403):
    assert response.status_code == status
    assert response.json()["code"] == code
    assert COOKIE not in response.cookies


def test_a_login_sets_a_signed_httponly_lax_cookie_and_a_device_row(user):
    client = Client(REMOTE_ADDR=HOME, HTTP_USER_AGENT=BROWSER)
    response = form_login(client, "alice", PASSWORD)

    assert response.status_code == 302
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["secure"] == ""
    assert cookie["path"] == "/"
    assert cookie["max-age"] == 365 * 24 * 3600
    [device] = Device.objects.all()
    assert (device.user, str(device.ip), device.user_agent, device.revoked_at) == (
        user,
        HOME,
        BROWSER,
        None,
    )
    assert device.first_seen == device.last_seen
    payload = signing.loads(cookie.value, salt=devices.SALT)
    assert payload == {"d": device.pk.hex, "u": str(user.pk), "h": devices.stamp(user)}
    assert PASSWORD not in cookie.value


def test_a_login_over_https_sets_a_secure_cookie(user):
    response = form_login(Client(), "alice", PASSWORD, secure=True)
    assert response.cookies[COOKIE]["secure"] is True


@pytest.mark.parametrize("where", ["admin", "token"])
def test_the_admin_login_and_the_token_view_set_the_cookie(user_factory, where):
    user_factory("staff", is_staff=True)
    client = Client(REMOTE_ADDR=HOME)
    if where == "admin":
        data = {"username": "staff", "password": PASSWORD, "next": "/admin/"}
        response = client.post("/admin/login/", data)
        assert response.status_code == 302
    else:
        response = token_login(client, "staff", PASSWORD)
        assert response.status_code == 200
    assert COOKIE in response.cookies
    assert Device.objects.get().user.get_username() == "staff"


def test_a_second_login_renews_the_cookie_of_the_same_device(user, time_machine):
    time_machine.move_to("2026-12-01 10:00:00Z", tick=False)
    client = device_client()
    first = Device.objects.get()
    time_machine.move_to("2026-12-02 10:00:00Z", tick=False)
    response = form_login(client, "alice", PASSWORD, REMOTE_ADDR="10.0.0.2")

    assert COOKIE in response.cookies
    device = Device.objects.get()
    assert device.pk == first.pk
    assert device.first_seen == first.first_seen
    assert device.last_seen == timezone.now()
    assert str(device.ip) == "10.0.0.2"


def test_basic_failed_and_disabled_logins_set_no_cookie(user, auth401_settings):
    basic_answer = APIClient().get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert basic_answer.status_code == 200
    wrong = form_login(Client(), "alice", "wrong")
    assert wrong.status_code == 200
    auth401_settings(DEVICES_ENABLED=False)
    disabled = form_login(Client(), "alice", PASSWORD)
    assert disabled.status_code == 302
    for response in (basic_answer, wrong, disabled):
        assert COOKIE not in response.cookies
    assert not Device.objects.exists()


def test_a_known_device_logs_in_while_another_address_locked_the_username(counting_hasher, user):
    client = device_client()
    attacker = lock_from_elsewhere()

    # The attacker's address is refused, even with the right password (no password check).
    calls = counting_hasher.calls
    assert_refused(token_login(attacker, "alice", PASSWORD), "account_locked")
    assert_refused(
        token_login(APIClient(REMOTE_ADDR="10.7.7.7"), "alice", PASSWORD), "account_locked"
    )
    assert counting_hasher.calls == calls

    # The device logs in, through the login form and the token view alike.
    assert form_login(client, "alice", PASSWORD).status_code == 302
    token = token_login(client, "alice", PASSWORD)
    assert token.status_code == 200
    assert set(token.json()) == {"access", "refresh"}
    with_token = APIClient().get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    assert (with_token.status_code, with_token.json()["username"]) == (200, "alice")
    # The username stays locked for everyone else.
    status = AccountStatus.objects.get(user=user)
    assert (status.state, status.automatic) == ("locked", True)
    assert lockout.peek("alice").locked_ms > 0


def test_a_devices_failures_count_on_its_own_key(user, auth401_settings):
    auth401_settings(DEVICE_FAILURE_LIMIT=2)
    client = device_client()
    [device] = Device.objects.all()

    first = token_login(client, "alice", "wrong-1")
    second = token_login(client, "alice", "wrong-2")
    assert (first.status_code, first.json()["code"]) == (401, "credentials_invalid")
    assert (second.status_code, second.json()["code"]) == (403, "account_locked")
    assert_refused(token_login(client, "alice", PASSWORD), "account_locked")
    # The username counted nothing: another client logs in.
    assert lockout.peek("alice").failures == 0
    assert token_login(APIClient(REMOTE_ADDR="10.7.7.7"), "alice", PASSWORD).status_code == 200
    assert lockout.get_store().peek(lockout.device_key(device.pk)).locked_ms > 0
    assert not AccountStatus.objects.filter(user=user, state="locked").exists()


def test_an_admin_lock_or_suspension_refuses_the_device_and_revokes_it(user_factory, admin_user):
    alice = user_factory("alice")
    carol = user_factory("carol")
    alice_client, carol_client = device_client("alice"), device_client("carol")
    accounts.lock(alice, reason="review", by=admin_user)
    accounts.suspend(carol, reason="abuse", by=admin_user)

    assert_refused(token_login(alice_client, "alice", PASSWORD), "account_locked")
    assert_refused(token_login(carol_client, "carol", PASSWORD), "account_suspended")
    assert Device.objects.filter(revoked_at__isnull=True).count() == 0
    assert Device.objects.filter(revoked_at__isnull=False).count() == 2

    # Unlocked, the old cookie no longer passes the username's automatic lock.
    accounts.unlock(alice, by=admin_user)
    lock_from_elsewhere("alice")
    assert_refused(token_login(alice_client, "alice", PASSWORD), "account_locked")


def test_a_password_change_revokes_the_devices(user):
    client = device_client()
    user.set_password("a-new-password-2")
    user.save()

    assert Device.objects.get().revoked_at is not None
    lock_from_elsewhere()
    assert_refused(token_login(client, "alice", "a-new-password-2"), "account_locked")


def test_a_password_changed_without_save_ends_the_device_too(user):
    client = device_client()
    get_user_model().objects.filter(pk=user.pk).update(password=make_password("changed-3"))

    assert Device.objects.get().revoked_at is None  # no signal: the cookie's stamp tells
    lock_from_elsewhere()
    assert_refused(token_login(client, "alice", "changed-3"), "account_locked")


def test_a_cookie_of_another_user_or_a_forged_one_is_not_trusted(user_factory, client):
    user_factory("alice")
    user_factory("bob")
    bob_client = device_client("bob")
    lock_from_elsewhere("alice")
    assert_refused(token_login(bob_client, "alice", PASSWORD), "account_locked")

    [device] = Device.objects.all()
    forged = {"d": device.pk.hex, "u": str(device.user_id), "h": "0" * 16}
    for value in (
        signing.dumps(forged, salt=devices.SALT),  # a wrong stamp
        signing.dumps({"d": device.pk.hex}, salt="another.salt"),
        bob_client.cookies[COOKIE].value + "x",
        "not-even-signed",
    ):
        client.cookies[COOKIE] = value
        assert_refused(token_login(client, "alice", PASSWORD, REMOTE_ADDR=HOME), "account_locked")
        assert token_login(client, "bob", PASSWORD, REMOTE_ADDR=HOME).status_code == 200


def test_an_expired_cookie_is_not_trusted(user, time_machine):
    time_machine.move_to("2026-01-01 10:00:00Z", tick=False)
    client = device_client()
    time_machine.move_to(timezone.now() + timedelta(days=366), tick=False)
    lock_from_elsewhere()
    assert_refused(token_login(client, "alice", PASSWORD), "account_locked")


def test_devices_off_ignores_the_cookie(user, auth401_settings):
    client = device_client()
    auth401_settings(DEVICES_ENABLED=False)
    lock_from_elsewhere()
    assert_refused(token_login(client, "alice", PASSWORD), "account_locked")


def test_a_login_without_a_cookie_costs_no_device_query(user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = APIClient(REMOTE_ADDR=HOME)
    with CaptureQueriesContext(connection) as captured:
        token_login(client, "alice", "wrong")
    assert captured.captured_queries
    assert not [q for q in captured.captured_queries if "auth401_device" in q["sql"]]


def test_each_user_keeps_the_most_recent_devices(user, monkeypatch):
    monkeypatch.setattr(devices, "DEVICES_PER_USER", 2)
    for _ in range(3):
        form_login(Client(), "alice", PASSWORD)
    assert Device.objects.filter(user=user).count() == 2


def test_the_explain_trace_names_a_trusted_device(user, rf):
    from auth401 import decision, state

    client = device_client()
    request = rf.post("/api/token/")
    request.COOKIES[COOKIE] = client.cookies[COOKIE].value
    state.start(request)
    verdict = decision.decide(request, "alice", PASSWORD, scheme="Password")
    assert verdict.user == user
    assert ("device", "trusted: counted on the device's own key") in verdict.trace


# --- over real HTTP ---------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 is the answer


class Browser:
    """A real HTTP client with its own cookie jar, at a given address (X-Forwarded-For from the
    trusted proxy 127.0.0.1)."""

    def __init__(self, base: str, address: str) -> None:
        self.base, self.address = base, address
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(self, path: str, data: dict | None = None) -> tuple[int, dict, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body)
        request.add_header("X-Forwarded-For", self.address)
        request.add_header("User-Agent", f"browser-at-{self.address}")
        if data is not None:
            request.add_header("Referer", self.base + path)  # Django's CSRF check over HTTP
        try:
            with self.opener.open(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read().decode()
        except urllib.error.HTTPError as answer:
            with answer:
                return answer.code, dict(answer.headers), answer.read().decode()

    def form(self, path: str, fields: dict) -> tuple[int, dict, str]:
        """GET the page, then POST its form with the CSRF token."""
        status, _headers, page = self.request(path)
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        return self.request(path, {**fields, "csrfmiddlewaretoken": token})

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)


@pytest.mark.django_db(transaction=True)
def test_over_http_a_known_browser_logs_in_while_another_address_locked_the_username(
    live_server, settings, auth401_settings, user_factory, mailoutbox
):
    # The example project's default hasher, and a proxy in front that names the client.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    auth401_settings(TRUSTED_PROXIES=["127.0.0.1/32"], NOTIFY_OWNER=True)
    user_factory("alice", email="alice@example.com")
    owner = Browser(live_server.url, HOME)
    status, _headers, _page = owner.form(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert status == 302
    assert owner.cookie(COOKIE)

    attacker = Browser(live_server.url, ATTACKER)
    codes = []
    for i in range(6):
        status, headers, body = attacker.request(
            "/api/token/", {"username": "alice", "password": f"guess-{i}"}
        )
        codes.append((status, json.loads(body)["code"]))
    assert codes == [(401, "credentials_invalid")] * 4 + [(403, "account_locked")] * 2
    status, headers, body = attacker.request(
        "/api/token/", {"username": "alice", "password": PASSWORD}
    )
    assert (status, json.loads(body)["code"]) == (403, "account_locked")
    assert int(headers["Retry-After"]) > 0

    # The owner's browser still logs in, through the token view and the login form.
    status, _headers, body = owner.request(
        "/api/token/", {"username": "alice", "password": PASSWORD}
    )
    assert status == 200 and set(json.loads(body)) == {"access", "refresh"}
    status, _headers, _page = owner.form(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert status == 302
    # A new browser at the owner's address is refused: the lock is the username's.
    stranger = Browser(live_server.url, HOME)
    status, _headers, body = stranger.request(
        "/api/token/", {"username": "alice", "password": PASSWORD}
    )
    assert (status, json.loads(body)["code"]) == (403, "account_locked")

    # The owner was told once, and the link unlocks once.
    [message] = mailoutbox
    link = next(line for line in message.body.split() if "/auth401/unlock/" in line)
    assert link.startswith(live_server.url)
    path = link[len(live_server.url) :]
    status, _headers, page = stranger.form(path, {})
    assert status == 200 and "is unlocked" in page
    status, _headers, page = stranger.request(path)
    assert status == 400
    status, _headers, body = stranger.request(
        "/api/token/", {"username": "alice", "password": PASSWORD}
    )
    assert status == 200


def test_an_unlock_also_clears_the_devices_own_locks(user, auth401_settings, admin_user):
    auth401_settings(DEVICE_FAILURE_LIMIT=1)
    client = device_client()
    assert_refused(token_login(client, "alice", "wrong"), "account_locked")
    assert_refused(token_login(client, "alice", PASSWORD), "account_locked")
    accounts.unlock(user, by=admin_user)
    assert token_login(client, "alice", PASSWORD).status_code == 200
