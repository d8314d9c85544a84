"""``auth401.models``: the account state in force, the rows' text, the audit trail's order and
indexes, and FKs that outlive their users."""

from datetime import timedelta

import pytest
from django.utils import timezone

from auth401.models import AccountStatus, AuthEvent

pytestmark = pytest.mark.django_db


def status(user, **fields):
    return AccountStatus.objects.create(user=user, **fields)


def test_an_active_account_is_active(user):
    assert status(user).effective_state() == "active"


def test_a_lock_with_an_end_in_the_future_is_in_force(user):
    row = status(user, state="locked", locked_until=timezone.now() + timedelta(minutes=5))
    assert row.effective_state() == "locked"


def test_a_lock_whose_end_has_passed_counts_as_active(user):
    end = timezone.now() + timedelta(minutes=5)
    row = status(user, state="locked", locked_until=end)
    assert row.effective_state(now=end) == "active"
    assert row.effective_state(now=end - timedelta(microseconds=1)) == "locked"
    assert row.state == "locked"  # nothing is written: the end is read, not swept


def test_a_lock_without_an_end_and_a_suspension_hold(user):
    far = timezone.now() + timedelta(days=3650)
    assert status(user, state="locked").effective_state(now=far) == "locked"
    user.auth401_status.delete()
    assert status(user, state="suspended").effective_state(now=far) == "suspended"


def test_status_text(user):
    assert str(status(user, state="suspended")) == "alice: suspended"


def test_event_text_and_defaults(user):
    event = AuthEvent.objects.create(code="credentials_invalid", username="alice", user=user)
    assert str(event) == f"{event.created_at:%Y-%m-%d %H:%M:%S} credentials_invalid alice"
    assert abs(timezone.now() - event.created_at) < timedelta(minutes=1)
    assert (event.ip, event.status_code, event.token_fingerprint, event.actor) == (
        None,
        None,
        "",
        None,
    )


def test_events_newest_first(user):
    old = AuthEvent.objects.create(code="a", created_at=timezone.now() - timedelta(hours=1))
    new = AuthEvent.objects.create(code="b")
    assert list(AuthEvent.objects.all()) == [new, old]


def test_event_indexes_follow_the_queries():
    indexes = {index.name: tuple(index.fields) for index in AuthEvent._meta.indexes}
    assert indexes["auth401_event_created"] == ("-created_at",)
    assert indexes["auth401_event_username"] == ("username", "-created_at")
    assert indexes["auth401_event_ip"] == ("ip", "-created_at")
    assert indexes["auth401_event_code"] == ("code", "-created_at")


def test_events_outlive_their_user_and_actor(user_factory):
    alice, root = user_factory("alice"), user_factory("root", is_staff=True)
    event = AuthEvent.objects.create(code="admin_lock", user=alice, actor=root, username="alice")
    alice.delete()
    root.delete()
    event.refresh_from_db()
    assert (event.user, event.actor, event.username) == (None, None, "alice")
