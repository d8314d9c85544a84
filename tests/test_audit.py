"""The audit trail: exact rows, log records, no secrets, CR/LF, broken writes."""

import logging
from datetime import UTC

import pytest
from django.db import DatabaseError

from auth401 import accounts, lockout, signals
from auth401.events import fingerprint
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db

SECRET = "s3cret-Pa55word"


def only_event():
    events = list(AuthEvent.objects.all())
    assert len(events) == 1, [(e.code, e.username) for e in events]
    return events[0]


def row(event):
    return {
        "code": event.code,
        "status_code": event.status_code,
        "username": event.username,
        "user": event.user.get_username() if event.user else None,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "method": event.method,
        "path": event.path,
        "scheme": event.scheme,
        "token_fingerprint": event.token_fingerprint,
        "actor": event.actor,
        "note": event.note,
    }


def test_wrong_password_row(user, api_client):
    response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", SECRET), HTTP_USER_AGENT="curl/8.5"
    )
    event = only_event()
    assert row(event) == {
        "code": "credentials_invalid",
        "status_code": 401,
        "username": "alice",
        "user": "alice",
        "ip": "127.0.0.1",
        "user_agent": "curl/8.5",
        "method": "GET",
        "path": "/api/me/",
        "scheme": "Basic",
        "token_fingerprint": "",
        "actor": None,
        "note": "",
    }
    assert event.request_id == response.json()["request_id"] == response["X-Request-ID"]
    assert event.created_at.tzinfo is not None
    assert event.created_at.utcoffset() == UTC.utcoffset(None)


def test_unknown_user_row_has_no_user(api_client):
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("Ghost", SECRET))
    assert row(only_event())["username"] == "Ghost"  # as typed
    assert row(only_event())["user"] is None


def test_expired_token_row_has_a_fingerprint_not_the_token(user, api_client, access_token):
    import time_machine

    token = access_token(user)
    with time_machine.travel("2035-01-01 00:00:00+00:00"):
        response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.json()["code"] == "token_expired"
    event = only_event()
    assert (event.code, event.status_code, event.scheme) == ("token_expired", 401, "Bearer")
    assert event.token_fingerprint == fingerprint(token)
    assert len(event.token_fingerprint) == 16


def test_account_state_row_links_the_user(account_factory, api_client):
    account_factory("suspended", username="carol")
    AuthEvent.objects.all().delete()
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("carol", PASSWORD))
    assert row(only_event())["code"] == "account_suspended"
    assert row(only_event())["user"] == "carol"


def test_undisclosed_state_is_noted_for_support(account_factory, api_client, auth401_settings):
    auth401_settings(DISCLOSE_ACCOUNT_STATE=False)
    account_factory("suspended", username="carol")
    AuthEvent.objects.all().delete()
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("carol", PASSWORD))
    assert response.json()["code"] == "credentials_invalid"
    event = only_event()
    assert (event.code, event.status_code) == ("credentials_invalid", 401)
    assert event.note == "answered credentials_invalid; reason account_suspended"


def test_no_secret_in_any_row_or_log_record(user, api_client, jwt_pair, caplog):
    access, refresh = jwt_pair(user)
    caplog.set_level(logging.INFO, logger="auth401")
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", SECRET))
    api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access}x")
    api_client.post("/api/token/refresh/", {"refresh": access})
    api_client.post("/api/token/", {"username": "alice", "password": SECRET})
    api_client.get("/api/me/", HTTP_COOKIE="sessionid=deadbeefdeadbeefdeadbeef")
    assert AuthEvent.objects.count() == 5
    secrets = [SECRET, access, refresh, access[-20:], "deadbeefdeadbeef"]
    for event in AuthEvent.objects.all():
        text = " ".join(str(getattr(event, f.attname)) for f in AuthEvent._meta.fields)
        assert not any(secret in text for secret in secrets), text
    records = [r for r in caplog.records if r.name == "auth401.events"]
    assert len(records) == 5
    for record in records:
        text = record.getMessage() + " " + " ".join(map(str, record.__dict__.values()))
        assert not any(secret in text for secret in secrets), text


def test_log_record_is_structured(user, api_client, caplog):
    caplog.set_level(logging.INFO, logger="auth401")
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", SECRET))
    (record,) = [r for r in caplog.records if r.name == "auth401.events"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"auth401 401 credentials_invalid user='alice' ip=127.0.0.1 path=/api/me/ "
        f"request_id={response['X-Request-ID']}"
    )
    assert (record.code, record.status_code, record.username, record.ip, record.scheme) == (
        "credentials_invalid",
        401,
        "alice",
        "127.0.0.1",
        "Basic",
    )
    assert record.request_id == response["X-Request-ID"]


def test_cr_lf_cannot_forge_rows_or_log_lines(api_client, caplog):
    caplog.set_level(logging.INFO, logger="auth401")
    evil = "mallory\r\nauth401 200 login_succeeded user='admin'"
    api_client.get(
        "/api/me/",
        HTTP_AUTHORIZATION=basic(evil, SECRET),
        HTTP_USER_AGENT="ua\r\nX-Forged: 1\x00",
    )
    event = only_event()
    assert event.username == "mallory??auth401 200 login_succeeded user='admin'"
    assert event.user_agent == "ua??X-Forged: 1?"
    message = next(r for r in caplog.records if r.name == "auth401.events").getMessage()
    assert "\n" not in message and "\r" not in message


def test_long_values_are_truncated(api_client):
    api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("u" * 5000, SECRET), HTTP_USER_AGENT="a" * 5000
    )
    event = only_event()
    assert (len(event.username), len(event.user_agent)) == (150, 255)


def test_broken_audit_write_still_answers(user, api_client, monkeypatch, caplog, auth401_settings):
    auth401_settings(COUNTER_STORE="database")  # the event's row is written with the count

    def broken(*args, **kwargs):
        raise DatabaseError("the audit database is down")

    from auth401.counters import database

    monkeypatch.setattr(database, "event_row", broken)
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", SECRET))
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("auth401")]
    assert "auth401: an audit event could not be recorded; the count stands" in messages
    assert any(m.startswith("auth401 401 credentials_invalid") for m in messages)
    assert lockout.peek("alice").failures == 1  # counted all the same


@pytest.mark.django_db(transaction=True)
def test_rows_survive_atomic_requests(user, settings):
    from rest_framework.test import APIClient

    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    try:
        client = APIClient()
        client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", SECRET))
        client.get("/api/staff/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    codes = sorted(AuthEvent.objects.values_list("code", flat=True))
    assert codes == ["credentials_invalid", "permission_denied"]


def test_success_is_recorded_only_when_asked(user, api_client, auth401_settings):
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert not AuthEvent.objects.exists()
    auth401_settings(AUDIT_SUCCESS=True)
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    event = only_event()
    assert (event.code, event.status_code, event.user, event.scheme) == (
        "login_succeeded",
        None,
        user,
        "Basic",
    )


def test_auth_failed_signal(user, api_client):
    seen = []

    def receiver(sender, request, failure, event, **kwargs):
        seen.append((failure.code, event.code, event.request_id))

    signals.auth_failed.connect(receiver)
    try:
        response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", SECRET))
    finally:
        signals.auth_failed.disconnect(receiver)
    assert seen == [("credentials_invalid", "credentials_invalid", response["X-Request-ID"])]


def test_admin_change_rows(user_factory):
    root, bob = user_factory("root"), user_factory("bob")
    accounts.suspend(bob, reason="fraud\r\nreview", by=root)
    event = only_event()
    assert (event.code, event.user, event.actor, event.username) == (
        "admin_suspend",
        bob,
        root,
        "bob",
    )


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
