"""The owner is told: one email per automatic lock of a real account (NOTIFY_OWNER) with a
single-use, expiring self-service unlock link, and an email for a new device
(NOTIFY_NEW_DEVICE)."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from auth401 import accounts, lockout, notify
from auth401.models import AccountStatus, AuthEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ATTACKER = "10.6.6.6"
LINK = re.compile(r"http://testserver(/auth401/unlock/[^/\s]+/)")


def token_login(client, username, password):
    return client.post("/api/token/", {"username": username, "password": password})


def guess_until_locked(username, count=5):
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    return [token_login(attacker, username, f"guess-{i}") for i in range(count)]


@pytest.fixture
def owner(user_factory, auth401_settings):
    auth401_settings(NOTIFY_OWNER=True)
    return user_factory("alice", email="alice@example.com")


def unlock_path(message):
    [path] = LINK.findall(message.body)
    return path


def test_an_automatic_lock_sends_its_owner_one_email(owner, mailoutbox, time_machine):
    time_machine.move_to("2026-12-07 10:00:00Z", tick=False)
    answers = guess_until_locked("alice", 8)  # three more refused while locked

    assert [a.json()["code"] for a in answers] == ["credentials_invalid"] * 4 + [
        "account_locked"
    ] * 4
    [message] = mailoutbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "Your account alice was locked after failed logins"
    assert "locked at 2026-12-07 10:00 UTC" in message.body
    assert f"from the address {ATTACKER}" in message.body
    assert "The lock ends at 2026-12-07 10:15 UTC." in message.body
    assert unlock_path(message)
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert f'href="http://testserver{unlock_path(message)}"' in html
    assert PASSWORD not in message.body
    event = AuthEvent.objects.get(code="auto_lock", user=owner)
    assert event.ip == ATTACKER


def test_no_email_for_unknown_names_and_the_answers_are_the_same(owner, mailoutbox):
    unknown = guess_until_locked("nobody")
    real = guess_until_locked("alice")
    assert len(mailoutbox) == 1
    for left, right in zip(unknown, real, strict=True):
        assert left.status_code == right.status_code
        body_left, body_right = left.json(), right.json()
        for body in (body_left, body_right):
            body.pop("request_id")
        assert body_left == body_right
        assert set(left.headers) == set(right.headers)


def test_no_email_by_default_without_an_address_or_for_an_admin_lock(
    user_factory, auth401_settings, mailoutbox, admin_user
):
    alice = user_factory("alice", email="alice@example.com")
    guess_until_locked("alice")
    assert mailoutbox == []  # NOTIFY_OWNER is off by default
    auth401_settings(NOTIFY_OWNER=True)
    user_factory("bob")  # no email address
    guess_until_locked("bob")
    accounts.unlock(alice, by=admin_user)
    accounts.lock(alice, by=admin_user, reason="review")
    assert mailoutbox == []


def test_each_lock_sends_one_email(owner, mailoutbox, admin_user):
    guess_until_locked("alice")
    accounts.unlock(owner, by=admin_user)
    guess_until_locked("alice")
    assert len(mailoutbox) == 2
    assert unlock_path(mailoutbox[0]) != unlock_path(mailoutbox[1])


def test_the_unlock_link_works_once(owner, mailoutbox):
    guess_until_locked("alice")
    path = unlock_path(mailoutbox[0])
    client = Client()

    page = client.get(path)
    assert page.status_code == 200
    assert page["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page["Cache-Control"]
    assert b"Unlock my account" in page.content
    assert AccountStatus.objects.get(user=owner).state == "locked"  # GET changes nothing

    done = client.post(path)
    assert done.status_code == 200
    assert b"Your account alice is unlocked" in done.content
    status = AccountStatus.objects.get(user=owner)
    assert status.effective_state() == "active"
    assert lockout.peek("alice").locked_ms == 0
    event = AuthEvent.objects.get(code="self_service_unlock")
    assert (event.user, event.actor, event.note) == (owner, None, "self-service unlock link")
    assert token_login(APIClient(), "alice", PASSWORD).status_code == 200

    for again in (client.post(path), client.get(path)):
        assert again.status_code == 400
        assert b"This link cannot be used" in again.content
    assert AuthEvent.objects.filter(code="self_service_unlock").count() == 1


def test_an_old_link_does_not_end_a_newer_lock(owner, mailoutbox, admin_user):
    guess_until_locked("alice")
    first = unlock_path(mailoutbox[0])
    accounts.unlock(owner, by=admin_user)
    guess_until_locked("alice")
    assert Client().post(first).status_code == 400
    assert AccountStatus.objects.get(user=owner).effective_state() == "locked"
    assert Client().post(unlock_path(mailoutbox[1])).status_code == 200


def test_the_unlock_link_expires(owner, mailoutbox, time_machine):
    time_machine.move_to("2026-12-07 10:00:00Z", tick=False)
    guess_until_locked("alice")
    path = unlock_path(mailoutbox[0])
    time_machine.move_to("2026-12-07 10:16:00Z", tick=False)  # the lock ended
    assert Client().post(path).status_code == 400
    assert not AuthEvent.objects.filter(code="self_service_unlock").exists()


def test_the_unlock_token_expires_by_itself(owner, mailoutbox, time_machine):
    status = accounts.auto_lock(owner, seconds=10**6, failures=5)  # a lock beyond the maximum
    token = notify.unlock_token(owner, status.changed_at)
    assert notify.read_unlock_token(token) == (owner, status.changed_at)
    time_machine.move_to(timezone.now() + timedelta(hours=24, seconds=1))
    assert notify.read_unlock_token(token) is None


@pytest.mark.parametrize("change", ["lock", "suspend"])
def test_the_unlock_link_is_refused_after_an_admin_lock_or_suspension(
    owner, mailoutbox, admin_user, change
):
    guess_until_locked("alice")
    path = unlock_path(mailoutbox[0])
    getattr(accounts, change)(owner, by=admin_user, reason="review")
    assert Client().get(path).status_code == 400
    assert Client().post(path).status_code == 400
    assert AccountStatus.objects.get(user=owner).state == (
        "locked" if change == "lock" else change + "ed"
    )


@pytest.mark.parametrize(
    "token",
    ["garbage", "a:b:c", notify.signing.dumps({"u": "1", "c": "x"}, salt="other")],
)
def test_bad_links_are_refused_without_a_500(owner, token):
    for response in (
        Client().get(f"/auth401/unlock/{token}/"),
        Client().post(f"/auth401/unlock/{token}/"),
    ):
        assert response.status_code == 400


def test_the_base_url_setting_names_the_links_host(owner, mailoutbox, auth401_settings):
    auth401_settings(NOTIFY_BASE_URL="https://accounts.example.com/")
    guess_until_locked("alice")
    assert "https://accounts.example.com/auth401/unlock/" in mailoutbox[0].body


def test_a_failing_mail_server_changes_no_answer(owner, settings, caplog):
    settings.EMAIL_BACKEND = "tests.test_notify.BrokenBackend"
    answers = guess_until_locked("alice")
    assert answers[-1].status_code == 403
    assert AccountStatus.objects.get(user=owner).state == "locked"
    assert "the account_locked email to user" in caplog.text


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("mail server down")


def test_a_new_device_sends_one_email(user_factory, auth401_settings, mailoutbox):
    auth401_settings(NOTIFY_NEW_DEVICE=True)
    user_factory("alice", email="alice@example.com")
    client = Client(REMOTE_ADDR="10.0.0.1", HTTP_USER_AGENT="Firefox/140.0")
    for _ in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    [message] = mailoutbox
    assert message.subject == "New login to your account alice"
    assert "Address: 10.0.0.1" in message.body
    assert "Browser or client: Firefox/140.0" in message.body
