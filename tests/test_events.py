"""Events: what goes where.  Identity-less failures join the per-process batch (written after
a response once ``AUDIT_BATCH_DELAY`` has passed, and at exit or SIGTERM); failures that name
an identity are recorded before the answer; no event holds a secret."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from auth401 import events, state
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic
from tests.servers import start_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_identity_less_failures_wait_for_the_batch_delay(client, auth401_settings):
    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=30))
    client.get("/api/me/")
    client.get("/api/me/", HTTP_AUTHORIZATION="Bearer not.a.token")
    assert AuthEvent.objects.count() == 0
    assert events.batch.pending() == 2
    events.batch._since -= 31  # the oldest has waited the delay: the next response writes all
    client.get("/api/me/", HTTP_AUTHORIZATION="Digest x")
    assert sorted(AuthEvent.objects.values_list("code", flat=True)) == [
        "credentials_missing",
        "scheme_unsupported",
        "token_invalid",
    ]
    assert events.batch.pending() == 0


@pytest.mark.django_db(transaction=True)  # autocommit, as in production
def test_failures_naming_an_identity_are_recorded_before_the_answer(
    user, client, auth401_settings, monkeypatch
):
    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=30), COUNTER_STORE="database")
    seen = []
    real_run = state.run
    monkeypatch.setattr(
        state, "run", lambda work: (seen.append(AuthEvent.objects.count()), real_run(work))
    )
    client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"))
    client.get("/api/staff/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert seen == [1, 2]  # each row was there before the after-response work began
    assert events.batch.pending() == 0


@pytest.mark.django_db
def test_the_batch_is_bounded(monkeypatch, caplog):
    monkeypatch.setattr(events.Batch, "LIMIT", 10)
    for i in range(25):
        events.batch.add(events.build(None, "token_invalid", 401, note=f"n{i}"))
    assert events.batch.pending() <= 10
    assert any("audit events dropped" in r.getMessage() for r in caplog.records)


def test_an_event_holds_no_secret(rf):
    request = rf.get("/api/me/", HTTP_AUTHORIZATION="Bearer abc.def.ghi", HTTP_USER_AGENT="x\r\ny")
    event = events.build(request, "token_invalid", 401, username="al\nice")
    assert "abc.def.ghi" not in str(event)
    assert event["token_fingerprint"] == events.fingerprint("abc.def.ghi")
    assert (event["username"], event["user_agent"]) == ("al?ice", "x??y")
    assert event["username_normalised"] == "al?ice"
    assert len(event["event_id"]) == 32


@pytest.mark.django_db(transaction=True)
def test_sigterm_flushes_the_batch(private_redis):
    """A server process whose batch waits (a long AUDIT_BATCH_DELAY) writes it on SIGTERM."""
    server, port = start_server(private_redis.url, "sigterm")
    try:
        url = f"http://127.0.0.1:{port}/api/me/"
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(url, timeout=10)
        request_id = answer.value.headers["X-Request-ID"]
        answer.value.close()
        assert request_id is not None
        assert not AuthEvent.objects.filter(request_id=request_id).exists()  # waiting
        os.kill(server.pid, signal.SIGTERM)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    row = AuthEvent.objects.get(request_id=request_id)
    assert (row.code, row.status_code, row.user_id) == ("credentials_missing", 401, None)


@pytest.mark.django_db(transaction=True)  # the timer writes on its own connection
def test_an_idle_process_still_writes_its_batch_when_due(client, auth401_settings):
    """No further response comes (an idle worker): the batch's timer writes the events once
    the oldest has waited AUDIT_BATCH_DELAY, instead of keeping them until a later request
    or a kill -9 loses them."""

    auth401_settings(AUDIT_BATCH_DELAY=timedelta(milliseconds=200))
    client.get("/api/me/", HTTP_AUTHORIZATION="Bearer not.a.token")
    client.get("/api/me/")
    deadline = time.monotonic() + 10
    while AuthEvent.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(AuthEvent.objects.values_list("code", flat=True)) == [
        "credentials_missing",
        "token_invalid",
    ]
    assert events.batch.pending() == 0
