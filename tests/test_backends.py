"""``Auth401Backend`` through ``decision.decide``: right passwords in parallel never lock
(threads against a live server, on both counter stores), and real and unknown usernames cost
the same work at every step of an attack (queries, hasher calls, counter calls)."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from auth401 import drain, lockout, state
from auth401.models import AccountStatus, AuthEvent
from tests.conftest import PASSWORD, basic

STORES = [
    pytest.param("auto", id="redis" if os.environ.get("REDIS_URL") else "auto-is-database"),
    pytest.param("database", id="database"),
]


def fetch(url: str, username: str, password: str) -> tuple[int, dict[str, Any], Any]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def in_parallel(calls: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def failure_rows() -> list[str]:
    drain.drain()
    return list(AuthEvent.objects.exclude(code="login_busy").values_list("code", flat=True))


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db(transaction=True)
def test_parallel_right_passwords_never_lock(
    store, live_server, user_factory, counting_hasher, auth401_settings
):
    auth401_settings(COUNTER_STORE=store, FAILURE_LIMIT=5, IP_FAILURE_LIMIT=1000)
    user = user_factory("fresh")
    counting_hasher.reset(delay=0.02)  # checks overlap
    url = f"{live_server.url}/api/me/"
    answers = in_parallel([lambda: fetch(url, "fresh", PASSWORD)] * 20)

    statuses = sorted({status for status, _, _ in answers})
    assert set(statuses) <= {200, 429}, answers
    for status, body, headers in answers:
        if status == 429:
            assert (body["code"], body["retry_after"], headers["Retry-After"]) == (
                "login_busy",
                1,
                "1",
            )
        else:
            assert body["username"] == "fresh"
    assert sum(status == 200 for status, _, _ in answers) >= 5
    peeked = lockout.peek("fresh")
    assert (peeked.failures, peeked.locked_ms, peeked.in_flight) == (0, 0, 0)
    assert not AccountStatus.objects.filter(user=user, state="locked").exists()
    assert failure_rows() == []
    # and the account still logs in
    assert fetch(url, "fresh", PASSWORD)[0] == 200


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db(transaction=True)
def test_an_office_behind_one_address_never_locks_it(
    store, live_server, user_factory, counting_hasher, auth401_settings
):
    auth401_settings(COUNTER_STORE=store, IP_FAILURE_LIMIT=10)
    names = [f"staff{i:02}" for i in range(24)]
    for name in names:
        user_factory(name)
    counting_hasher.reset(delay=0.01)
    url = f"{live_server.url}/api/me/"
    answers = in_parallel([lambda name=name: fetch(url, name, PASSWORD) for name in names])

    assert {status for status, _, _ in answers} <= {200, 429}, answers
    assert all(body["code"] == "login_busy" for status, body, _ in answers if status == 429)
    address = lockout.peek("127.0.0.1", ip=True)
    assert (address.failures, address.locked_ms, address.in_flight) == (0, 0, 0)
    assert lockout.locked_addresses() == []
    assert failure_rows() == []
    assert fetch(url, "staff00", PASSWORD)[0] == 200


class CountingStore:
    """The counter store, with a count of each call (what crosses to Redis/the database)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.store, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return target(*args, **kwargs)

        return call


def work_of(client: Any, username: str, password: str, address: str, counted: CountingStore):
    """The work one login does *before its answer*: queries, hasher calls, counter calls.
    Work after the answer (lock mirrors, the drain) is cut off where it starts."""
    from tests.hashers import CountingHasher

    CountingHasher.reset()
    counted.calls.clear()
    cut: dict[str, Any] = {}
    real_run = state.run

    def run(work: list[Any]) -> None:
        cut.setdefault("queries", len(captured.captured_queries))
        cut.setdefault("counter", list(counted.calls))
        real_run(work)

    state.run = run
    try:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(
                "/api/me/", HTTP_AUTHORIZATION=basic(username, password), REMOTE_ADDR=address
            )
    finally:
        state.run = real_run
    queries = [q["sql"] for q in captured.captured_queries[: cut.get("queries")]]
    body = response.json()
    body.pop("request_id", None)
    return {
        "answer": (response.status_code, body, response.get("Retry-After")),
        "queries": [_shape(sql, username) for sql in queries],
        "hasher": CountingHasher.calls,
        "counter": cut.get("counter", list(counted.calls)),
    }


def _shape(sql: str, username: str) -> str:
    """The statement without its values (keys, names, ids, times differ; the work does not)."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\bNULL\b", "?", sql)
    return re.sub(r"\b\d+\b", "?", sql)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db(transaction=True)
def test_real_and_unknown_usernames_do_the_same_work_at_every_step(
    store, user, client, counting_hasher, auth401_settings, monkeypatch
):
    """First failures, the locking attempt and the refusals after it: the same answer and
    the same work before it, for alice and for a name that does not exist."""
    from auth401 import counters

    auth401_settings(COUNTER_STORE=store, FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000)
    # A Redis without the epoch copies the database's counters in on its first call (once,
    # whatever the name): done here, before the work is compared.
    counters.get_store().peek(lockout.ip_key("10.0.0.9"))
    counted = CountingStore(counters.get_store())
    monkeypatch.setattr(lockout, "get_store", lambda: counted)
    steps = ["first failure", "second failure", "the locking one", "refusal", "refusal"]
    for step, _ in enumerate(steps):
        real = work_of(client, "alice", f"wrong-{step}", "10.0.0.1", counted)
        unknown = work_of(client, "alicf", f"wrong-{step}", "10.0.0.2", counted)
        assert real == unknown, steps[step]
        assert real["counter"] == (["begin", "fail"] if step < 3 else ["begin"]), steps[step]
        assert real["hasher"] == (1 if step < 3 else 0), steps[step]
    # a right password while locked: the same answer and work as a wrong one
    right = work_of(client, "alice", PASSWORD, "10.0.0.1", counted)
    wrong = work_of(client, "alice", "still-wrong", "10.0.0.1", counted)
    assert right == wrong
    assert right["answer"][1]["code"] == "account_locked"
    # after the answers, the lock's mirrors: alice's AccountStatus shows it
    assert AccountStatus.objects.get(user=user).automatic


# -- the async API (aauthenticate, aget_user) goes through the same gate ------------------------


def _login_request():
    from django.test import RequestFactory

    return RequestFactory().post("/accounts/login/")  # no middleware: rows written at once


@pytest.mark.django_db(transaction=True)
def test_aauthenticate_counts_and_locks_like_authenticate(user, auth401_settings):
    from asgiref.sync import async_to_sync
    from django.contrib.auth import aauthenticate

    from auth401 import backends
    from auth401.models import AuthEvent
    from tests.conftest import PASSWORD

    auth401_settings(FAILURE_LIMIT=2, IP_FAILURE_LIMIT=1000)
    requests = [_login_request() for _ in range(3)]
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
    from asgiref.sync import async_to_sync

    from auth401 import accounts
    from auth401.backends import Auth401Backend

    backend = Auth401Backend()
    assert async_to_sync(backend.aget_user)(user.pk) == user
    accounts.suspend(user, reason="review")
    assert async_to_sync(backend.aget_user)(user.pk) is None
