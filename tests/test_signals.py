"""``auth401.signals``: the signals it declares, and its own receivers (a password change is
recorded, a login's time is kept in the session, a session from before is as old as the epoch,
ModelBackend logins are served by Auth401Backend afterwards)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import BACKEND_SESSION_KEY, login
from django.contrib.sessions.backends.db import SessionStore
from django.dispatch import Signal
from django.test import RequestFactory

from auth401 import signals
from auth401.models import AccountStatus

pytestmark = pytest.mark.django_db


def test_public_signals():
    for name in ("auth_failed", "account_locked", "account_unlocked", "account_status_changed"):
        assert isinstance(getattr(signals, name), Signal)


def test_a_password_change_is_recorded(user):
    with time_machine.travel("2026-12-01 12:00:00+00:00", tick=False):
        user.set_password("a-new-password-1")
        user.save()
    row = AccountStatus.objects.get(user=user)
    assert row.password_changed_at == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert row.state == "active"


def test_other_saves_and_new_users_record_no_password_change(user, user_factory):
    user.first_name = "Alice"
    user.save()
    user_factory("bob")
    assert not AccountStatus.objects.filter(password_changed_at__isnull=False).exists()


def _session_request():
    request = RequestFactory().get("/")
    request.session = SessionStore()
    return request


@pytest.mark.parametrize(
    ("backend", "stored"),
    [
        ("django.contrib.auth.backends.ModelBackend", "auth401.backends.Auth401Backend"),
        ("auth401.backends.Auth401Backend", "auth401.backends.Auth401Backend"),
    ],
)
def test_login_keeps_its_time_and_is_served_by_auth401s_backend(user, backend, stored):
    request = _session_request()
    with time_machine.travel("2026-12-01 12:00:00+00:00", tick=False):
        login(request, user, backend=backend)
    assert request.session[signals.SESSION_LOGIN_AT] == int(
        datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    )
    assert request.session[BACKEND_SESSION_KEY] == stored
    assert signals.session_issued_at(request.session) == datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "1700000000", True, 1.5])
def test_a_session_without_a_usable_login_time_is_as_old_as_the_epoch(value):
    session = {} if value is None else {signals.SESSION_LOGIN_AT: value}
    assert signals.session_issued_at(session) == datetime(1970, 1, 1, tzinfo=UTC)
    assert signals.session_issued_at(session) < datetime.now(UTC) - timedelta(days=365)
