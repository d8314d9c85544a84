"""Fixes from the review of the hot-path work (issue 6): the async authentication API goes
through the lockout, a failed INSERT chunk is not written twice, batching defaults to off
under Django's test environment, and a compiled lookup that cannot build its row falls back
to the ORM instead of answering "wrong password"."""

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import aauthenticate
from django.test import RequestFactory

from auth401 import backends, drain, lockout
from auth401.backends import Auth401Backend
from auth401.models import AuthEvent
from tests.conftest import PASSWORD


def _request():
    return RequestFactory().post("/accounts/login/")  # no middleware: rows written at once


@pytest.mark.django_db(transaction=True)
def test_aauthenticate_counts_and_locks_like_authenticate(user, auth401_settings):
    auth401_settings(FAILURE_LIMIT=2, IP_FAILURE_LIMIT=1000)
    requests = [_request() for _ in range(3)]
    for request in requests[:2]:
        assert async_to_sync(aauthenticate)(request, username="alice", password="nope") is None
    # locked: even the right password is refused, through the async API too
    assert async_to_sync(aauthenticate)(requests[2], username="alice", password=PASSWORD) is None
    answers = [backends.stashed_failure(r).code for r in requests]
    assert answers == ["credentials_invalid", "account_locked", "account_locked"]
    assert lockout.peek("alice").locked_ms > 0
    drain.drain()  # no middleware: nobody drained the Redis stream after a response
    codes = sorted(AuthEvent.objects.values_list("code", flat=True))
    assert codes == ["account_locked", "account_locked", "auto_lock", "credentials_invalid"]


@pytest.mark.django_db(transaction=True)
def test_aget_user_refuses_a_suspended_account(user):
    from auth401 import accounts

    backend = Auth401Backend()
    assert async_to_sync(backend.aget_user)(user.pk) == user
    accounts.suspend(user, reason="review")
    assert async_to_sync(backend.aget_user)(user.pk) is None
