"""The event stream and its drain: events recorded before the answer survive a ``kill -9``
of the worker; a drain that dies and runs again, or two drains at once, write each event
exactly once; the stream stays bounded when nobody drains, and what it drops is counted."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from auth401 import counters, drain, events, lockout
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic
from tests.servers import start_server

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent


def login(client: Any, username: str, password: str) -> Any:
    return client.get("/api/me/", HTTP_AUTHORIZATION=basic(username, password))


@pytest.fixture
def undrained(private_redis, auth401_settings):
    """No drain after responses: events wait in the stream for the test."""
    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=60))
    drain._last[0] = time.monotonic()
    return private_redis


def test_events_recorded_before_the_answer_survive_kill_9(undrained, user, settings):
    server, port = start_server(undrained.url, settings.CACHES["counters"]["KEY_PREFIX"])
    try:
        url = f"http://127.0.0.1:{port}/api/me/"
        request_ids = []
        for i in range(4):
            request = urllib.request.Request(
                url, headers={"Authorization": basic("alice", f"guess-{i}")}
            )
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(request, timeout=10)
            request_ids.append(answer.value.headers["X-Request-ID"])
            answer.value.close()
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert AuthEvent.objects.filter(request_id__in=request_ids).count() == 0  # still in Redis
    assert drain.drain() >= 4
    rows = {e.request_id: e for e in AuthEvent.objects.filter(request_id__in=request_ids)}
    assert [rows[r].code for r in request_ids] == [
        "credentials_invalid",
        "credentials_invalid",
        "account_locked",  # the third failure locked; its event says so
        "account_locked",  # the refusal, recorded by the same call that refused
    ]
    assert {rows[r].user_id for r in request_ids} == {user.pk}
    assert {rows[r].username_normalised for r in request_ids} == {"alice"}


def test_an_interrupted_drain_run_again_writes_no_duplicates(undrained, user, client, monkeypatch):
    for i in range(5):
        login(client, "ghost", f"guess-{i}")
    store = counters.redis_store()
    assert store.waiting() == 6  # the five failures and the lock's auto_lock event

    import redis.client

    real_execute = redis.client.Pipeline.execute

    def dies(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the drain's process died before acknowledging")

    monkeypatch.setattr(redis.client.Pipeline, "execute", dies)
    with pytest.raises(ConnectionError):
        drain.drain_once()
    monkeypatch.setattr(redis.client.Pipeline, "execute", real_execute)
    streamed = AuthEvent.objects.all()
    assert streamed.count() == 6  # written, not acknowledged

    assert drain.drain() == 6  # this consumer's unacknowledged entries, again
    assert streamed.count() == 6
    assert streamed.values("event_id").distinct().count() == 6
    assert store.waiting() == 0
    assert drain.drain() == 0


def test_a_dead_consumers_entries_are_claimed(undrained, user, client, monkeypatch):
    for i in range(3):
        login(client, "ghost", f"guess-{i}")
    store = counters.redis_store()
    store.ensure_group(drain.GROUP)
    store.read(drain.GROUP, "dead-worker", 100)  # read, never acknowledged
    assert drain.drain(claim_idle_ms=60_000) == 0  # not idle long enough yet
    assert drain.drain(claim_idle_ms=0) == 4  # with the lock's auto_lock event
    assert sorted(AuthEvent.objects.values_list("code", flat=True)) == [
        "account_locked",
        "auto_lock",
        "credentials_invalid",
        "credentials_invalid",
    ]


def test_two_drains_at_once_neither_duplicate_nor_lose(undrained, db):
    batch = [
        events.build(None, "credentials_invalid", 401, username=f"user{i}", ip="192.0.2.1")
        for i in range(300)
    ]
    counters.get_store().append(batch)
    totals: list[int] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        try:
            totals.append(drain.drain())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == 300
    assert AuthEvent.objects.count() == 300
    assert {e["event_id"] for e in batch} == {
        u.hex for u in AuthEvent.objects.values_list("event_id", flat=True)
    }


def test_redis_down_and_back_nothing_lost_nothing_duplicated(undrained, user, client):
    login(client, "alice", "guess-0")  # into the stream
    undrained.kill()
    login(client, "alice", "guess-1")  # Redis down: straight into the table, with its count
    assert list(AuthEvent.objects.values_list("code", flat=True)) == ["credentials_invalid"]
    undrained.start()
    counters.circuit.reset()
    login(client, "alice", "guess-2")  # Redis back: the stream again (restarted empty)
    drain.drain()
    codes = sorted(AuthEvent.objects.exclude(code="auto_lock").values_list("code", flat=True))
    # guess-0's event was in a Redis without persistence: lost with it (hence AOF); its count
    # was written through to the database, so the third failure locks; the other rows once each
    assert codes == ["account_locked", "credentials_invalid"]
    assert AuthEvent.objects.exclude(code="auto_lock").values("event_id").distinct().count() == 2
    assert counters.redis_store().peek(lockout.username_key("alice", user)).locked_ms > 0


def test_the_stream_stays_bounded_and_counts_what_it_dropped(undrained, monkeypatch, caplog):
    from auth401.counters import redis as redis_store

    monkeypatch.setattr(redis_store, "STREAM_MAXLEN", 100)
    store = counters.redis_store()
    store.ensure_group(drain.GROUP)
    batch = [events.build(None, "token_invalid", 401, ip="192.0.2.1") for _ in range(1000)]
    for start in range(0, 1000, 50):
        counters.get_store().append(batch[start : start + 50])
    assert store.waiting() < 400  # trimmed (approximately: whole nodes at a time)
    caplog.set_level(logging.ERROR, logger="auth401")
    written = drain.drain()
    dropped = int(undrained.client().get(store.dropped) or 0)
    assert written + dropped == 1000
    assert dropped > 0
    assert any(f"{dropped} audit events were trimmed" in r.getMessage() for r in caplog.records)
    assert AuthEvent.objects.count() == written


def test_a_drained_failure_counts_in_the_database_for_an_outage(undrained, user, client):
    from auth401 import lockout
    from auth401.models import FailureCounter

    for i in range(2):
        login(client, "alice", f"guess-{i}")
    drain.drain()
    row = FailureCounter.objects.get(counter_key=lockout.username_key("alice", user))
    assert row.failures == 2
    assert login(client, "alice", PASSWORD).status_code == 200


def test_two_servers_one_row_per_failure_and_the_lock_at_the_limit(undrained, user, settings):
    """A flood split across two server processes sharing the database and Redis."""
    prefix = settings.CACHES["counters"]["KEY_PREFIX"]
    started = [start_server(undrained.url, prefix) for _ in range(2)]
    servers = [server for server, _ in started]
    ports = [port for _, port in started]
    answers: list[str] = []
    try:
        start = threading.Barrier(20)

        def flood(port: int, worker: int) -> None:
            start.wait()
            for i in range(2):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/me/",
                    headers={"Authorization": basic("alice", f"guess-{worker}-{i}")},
                )
                try:
                    urllib.request.urlopen(request, timeout=30)
                    answers.append("200")
                except urllib.error.HTTPError as error:
                    answers.append(json.loads(error.read())["code"])

        threads = [threading.Thread(target=flood, args=(ports[w % 2], w)) for w in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 10
        while not AuthEvent.objects.filter(code="auto_lock").exists():
            if time.monotonic() > deadline:
                break
            drain.drain()  # the lock's auto_lock event follows its answer
            time.sleep(0.05)
    finally:
        for server in servers:
            # Ends runserver normally: its exit writes the held login_busy rows, if any.
            server.send_signal(signal.SIGINT)
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    drain.drain()
    assert len(answers) == 40
    assert answers.count("credentials_invalid") == 2  # FAILURE_LIMIT = 3: two, then the lock
    assert set(answers) <= {"credentials_invalid", "account_locked", "login_busy"}
    rows = AuthEvent.objects.exclude(code="auto_lock")
    assert rows.count() == 40  # exactly one row per failure
    assert rows.values("event_id").distinct().count() == 40
    assert sorted(rows.values_list("code", flat=True)) == sorted(answers)
    assert AuthEvent.objects.filter(code="auto_lock").count() == 1
    assert lockout.peek("alice").locked_ms > 0


def test_consumers_of_exited_processes_are_forgotten(undrained, user, client, monkeypatch):
    login(client, "ghost", "guess-0")
    store = counters.redis_store()
    store.ensure_group(drain.GROUP)
    store.client.xgroup_createconsumer(store.stream, drain.GROUP, "gone:1:1")
    assert drain.drain() == 1
    names = {c["name"] for c in store.client.xinfo_consumers(store.stream, drain.GROUP)}
    assert b"gone:1:1" in names  # not idle for an hour yet
    monkeypatch.setattr(drain, "FORGET_IDLE_MS", -1)
    assert drain.forget_idle_consumers() == 2  # the gone one, and this idle drain itself
    assert store.client.xinfo_consumers(store.stream, drain.GROUP) == []


def test_the_drain_applies_an_accounts_automatic_lock(undrained, user, client, auth401_settings):
    """The answer that locks a real account does no account-only work: its auto_lock event
    waits in the stream like an unknown name's, and the drain applies it to AccountStatus
    (under the event's own id, once however often it is drained)."""
    from auth401.models import AccountStatus

    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=60), FAILURE_LIMIT=3)
    for i in range(3):
        login(client, "alice", f"guess-{i}")
        login(client, "ghost", f"guess-{i}")
    assert not AccountStatus.objects.filter(user=user).exists()  # not on the answer's path
    assert AuthEvent.objects.count() == 0
    store = counters.redis_store()
    assert store.waiting() == 8  # 3 + 3 failures, 2 auto_lock events
    assert drain.drain() == 8
    status = AccountStatus.objects.get(user=user)
    assert (status.state, status.automatic) == ("locked", True)
    assert status.locked_until is not None
    locks = AuthEvent.objects.filter(code="auto_lock").order_by("username")
    assert [(e.username, e.user_id) for e in locks] == [("alice", user.pk), ("ghost", None)]
    assert drain.drain() == 0
    response = login(client, "alice", PASSWORD)
    assert (response.status_code, response.json()["code"]) == (403, "account_locked")


def test_an_audit_outage_loses_no_lock_record(undrained, user, client, auth401_settings):
    """While the audit table refuses writes the drain leaves the events (the lock's
    auto_lock among them) in the stream; the lock holds in the counters meanwhile; the first
    drain after the table is back writes every row and applies the account's lock."""
    from unittest import mock

    from django.db import DatabaseError

    from auth401.models import AccountStatus

    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=60), FAILURE_LIMIT=3)
    for i in range(3):
        login(client, "alice", f"guess-{i}")
    refused = mock.patch.object(
        AuthEvent.objects, "bulk_create", side_effect=DatabaseError("audit table refuses")
    )
    with refused, pytest.raises(DatabaseError):
        drain.drain_once()
    assert AuthEvent.objects.count() == 0
    assert not AccountStatus.objects.filter(user=user).exists()
    locked = login(client, "alice", PASSWORD)  # the lock holds in the counters
    assert (locked.status_code, locked.json()["code"]) == (403, "account_locked")
    assert drain.drain() == 5  # at once, by the same drain: no wait for the claim
    assert AccountStatus.objects.get(user=user).automatic is True
    assert sorted(AuthEvent.objects.values_list("code", flat=True)) == [
        "account_locked",
        "account_locked",
        "auto_lock",
        "credentials_invalid",
        "credentials_invalid",
    ]
