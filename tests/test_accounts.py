from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from auth401 import accounts, signals
from auth401.models import AccountStatus, AuthEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(user_factory):
    return user_factory("root", is_staff=True, is_superuser=True)


@pytest.fixture
def received():
    calls = []

    def receiver(name, **kwargs):
        calls.append((name, {k: v for k, v in kwargs.items() if k not in ("sender", "signal")}))

    hooks = {
        "changed": signals.account_status_changed,
        "locked": signals.account_locked,
        "unlocked": signals.account_unlocked,
    }
    handlers = {}
    for name, signal in hooks.items():
        handlers[name] = lambda name=name, **kw: receiver(name, **kw)
        signal.connect(handlers[name], weak=False)
    yield calls
    for name, signal in hooks.items():
        signal.disconnect(handlers[name])


def test_no_row_means_active(user):
    assert not AccountStatus.objects.exists()
    report = accounts.status(user)
    assert (report.state, report.is_active, report.locked_until) == ("active", True, None)
    assert accounts.failure_for(user) is None


@time_machine.travel("2026-11-25 10:00:00+00:00", tick=False)
def test_lock_records_row_event_signals(user, admin_user, received):
    status = accounts.lock(user, until=timedelta(minutes=30), reason="Phished", by=admin_user)
    now = timezone.now()
    row = AccountStatus.objects.get(user=user)
    assert row.pk == status.pk
    assert (row.state, row.reason, row.changed_by, row.changed_at) == (
        "locked",
        "Phished",
        admin_user,
        now,
    )
    assert row.locked_until == now + timedelta(minutes=30)
    assert row.tokens_valid_after == now
    event = AuthEvent.objects.get()
    assert (event.code, event.user, event.username, event.actor, event.note) == (
        "admin_lock",
        user,
        "alice",
        admin_user,
        "Phished",
    )
    assert received == [
        ("changed", {"user": user, "state": "locked", "previous": "active", "by": admin_user}),
        ("locked", {"user": user, "until": now + timedelta(minutes=30), "by": admin_user}),
    ]
    failure = accounts.failure_for(user)
    assert (failure.code, failure.retry_after, failure.status_code) == ("account_locked", 1800, 403)


def test_lock_expires_by_itself(user):
    accounts.lock(user, until=timedelta(minutes=5))
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert accounts.failure_for(user) is None
        assert accounts.status("alice").state == "active"


def test_unlock_by_username_and_unknown_username(user, received):
    accounts.lock(user)
    received.clear()
    status = accounts.unlock("alice")
    assert (status.state, status.locked_until) == ("active", None)
    assert received[-1] == ("unlocked", {"user": user, "by": None})
    assert accounts.unlock("nobody", reason="support ticket 42") is None
    rows = list(AuthEvent.objects.values_list("code", "username", "user", "note").order_by("id"))
    assert rows == [
        ("admin_lock", "alice", user.pk, ""),
        ("admin_unlock", "alice", user.pk, ""),
        # an unknown username's counter is cleared too, and that is recorded
        ("admin_unlock", "nobody", None, "support ticket 42"),
    ]


def test_unlock_leaves_a_suspension(user):
    accounts.suspend(user, reason="Fraud review")
    status = accounts.unlock(user)
    assert status.state == "suspended"
    assert AuthEvent.objects.filter(code="admin_unlock").count() == 0
    assert accounts.failure_for(user).code == "account_suspended"


def test_reinstate_from_any_state(user, admin_user):
    accounts.suspend(user, by=admin_user)
    accounts.reinstate(user, by=admin_user)
    assert accounts.status(user).state == "active"
    assert accounts.failure_for(user) is None


def test_status_report(user, admin_user):
    accounts.lock(user, reason="Too many failures", by=admin_user)
    report = accounts.status("alice")
    assert report.username == "alice"
    assert report.state == "locked"
    assert report.reason == "Too many failures"
    assert report.changed_by == admin_user
    assert [e.code for e in report.last_events] == ["admin_lock"]


def test_inactive_user(user_factory):
    user = user_factory("dave", is_active=False)
    assert accounts.failure_for(user).code == "account_inactive"


def test_password_change_records_time(user):
    with time_machine.travel("2026-11-25 12:00:00+00:00", tick=False):
        user.set_password("new-password-2")
        user.save()
    row = AccountStatus.objects.get(user=user)
    assert row.tokens_valid_after is None  # sessions and API tokens are not password-bound
    assert row.password_changed_at.isoformat() == "2026-11-25T12:00:00+00:00"


def test_saving_without_password_change_writes_no_row(user):
    user.first_name = "Alice"
    user.save()
    assert not AccountStatus.objects.exists()


def test_password_max_age(user, auth401_settings):
    auth401_settings(PASSWORD_MAX_AGE=timedelta(days=90))
    AccountStatus.objects.create(user=user, password_changed_at=timezone.now() - timedelta(days=91))
    user.refresh_from_db()
    assert accounts.failure_for(user, password_login=True).code == "password_expired"
    # Only password logins are refused: issued tokens and sessions keep working.
    assert accounts.failure_for(user) is None


@pytest.mark.django_db(transaction=True)
def test_an_unlock_the_audit_table_refuses_changes_nothing(user, client, auth401_settings):
    """No half unlock: the status, the counters and the event go together or not at all."""
    from auth401 import lockout
    from tests.conftest import basic

    auth401_settings(FAILURE_LIMIT=2, IP_FAILURE_LIMIT=1000)
    for i in range(2):
        client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", f"wrong-{i}"))
    assert AccountStatus.objects.get(user=user).state == "locked"
    from django.db import connection

    table = AuthEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION auth401_refuse_unlock() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'audit table refuses writes'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER auth401_refuse_unlock BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION auth401_refuse_unlock()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER auth401_refuse_unlock BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'audit table refuses writes'); END"
            )
    try:
        with pytest.raises(accounts.AccountChangeError, match="was not applied"):
            accounts.unlock(user, reason="ticket 9")
        with pytest.raises(accounts.AccountChangeError):
            accounts.reinstate(user)
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS auth401_refuse_unlock ON {table}")
                cursor.execute("DROP FUNCTION IF EXISTS auth401_refuse_unlock()")
            else:
                cursor.execute("DROP TRIGGER IF EXISTS auth401_refuse_unlock")
    status = AccountStatus.objects.get(user=user)
    assert (status.state, status.automatic) == ("locked", True)
    assert lockout.peek("alice").locked_ms > 0  # the counter's lock stays too
    assert not AuthEvent.objects.filter(code="admin_unlock").exists()
    # and once the table takes writes again, the unlock applies whole
    accounts.unlock(user, reason="ticket 9")
    assert AccountStatus.objects.get(user=user).state == "active"
    assert lockout.peek("alice").locked_ms == 0
    assert AuthEvent.objects.get(code="admin_unlock").note == "ticket 9"


def test_unlock_and_reinstate_take_a_reason(user, admin_user):
    accounts.lock(user, reason="investigation", by=admin_user)
    status = accounts.unlock(user, by=admin_user, reason="resolved")
    assert (status.state, status.reason, status.changed_by) == ("active", "resolved", admin_user)
    accounts.suspend(user, reason="chargeback", by=admin_user)
    status = accounts.reinstate(user, by=admin_user, reason="refund cleared")
    assert (status.state, status.reason) == ("active", "refund cleared")
    notes = list(AuthEvent.objects.order_by("id").values_list("code", "note", "actor"))
    assert notes == [
        ("admin_lock", "investigation", admin_user.pk),
        ("admin_unlock", "resolved", admin_user.pk),
        ("admin_suspend", "chargeback", admin_user.pk),
        ("admin_reinstate", "refund cleared", admin_user.pk),
    ]
    assert set(AuthEvent.objects.values_list("username_normalised", flat=True)) == {"alice"}


def test_a_failing_signal_receiver_does_not_undo_or_hide_a_change(user, caplog):
    """The change is committed before the signals go out: a project's receiver that raises
    is logged, and the caller (the admin) is told the truth: the change was made."""
    from auth401 import signals as auth401_signals

    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    auth401_signals.account_locked.connect(broken)
    try:
        with caplog.at_level("ERROR", logger="auth401"):
            status = accounts.lock(user, reason="fraud check")
    finally:
        auth401_signals.account_locked.disconnect(broken)
    assert status.state == "locked"
    assert AccountStatus.objects.get(user=user).state == "locked"
    assert AuthEvent.objects.filter(code="admin_lock", user=user).count() == 1
    [record] = [r for r in caplog.records if "receiver of an account change" in r.getMessage()]
    assert record.exc_info[0] is RuntimeError
