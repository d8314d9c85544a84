"""Events: what goes where.  Identity-less failures are aggregated per process, one row per
(code, address, path) per ``AUDIT_BATCH_DELAY`` window with a count (written after a response
once the window has passed, and at a normal exit); failures that name an identity are
recorded before the answer; no event holds a secret; auth401 runs no thread, timer or signal
handler of its own."""

from __future__ import annotations

import os
import signal
import threading
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
    assert events.held.pending() == 2
    events.held._since -= 31  # the window has passed: the next response writes all
    client.get("/api/me/", HTTP_AUTHORIZATION="Digest x")
    assert sorted(AuthEvent.objects.values_list("code", "count")) == [
        ("credentials_missing", 1),
        ("scheme_unsupported", 1),
        ("token_invalid", 1),
    ]
    assert events.held.pending() == 0


@pytest.mark.django_db
def test_a_flood_of_bad_tokens_is_one_row_per_code_address_and_path(client, auth401_settings):
    """50 tampered tokens from one address to one path in one window: one row, count 50,
    the first and last time and the first request id; another path is another row; every
    failure still has its own log record at once."""
    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=30))
    ids = []
    for i in range(50):
        answer = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer bad.token.{i}")
        assert answer.status_code == 401 and answer.json()["code"] == "token_invalid"
        ids.append(answer["X-Request-ID"])
    client.get("/api/staff/", HTTP_AUTHORIZATION="Bearer bad.token.x")
    client.get("/api/me/", HTTP_AUTHORIZATION="Bearer bad.token.y", REMOTE_ADDR="127.0.0.9")
    assert AuthEvent.objects.count() == 0
    assert events.held.pending() == 52
    events.flush()
    rows = {
        (r.path, r.ip): r for r in AuthEvent.objects.filter(code="token_invalid").order_by("id")
    }
    assert sorted(rows) == [
        ("/api/me/", "127.0.0.1"),
        ("/api/me/", "127.0.0.9"),
        ("/api/staff/", "127.0.0.1"),
    ]
    flood = rows["/api/me/", "127.0.0.1"]
    assert (flood.count, flood.request_id, flood.status_code) == (50, ids[0], 401)
    assert flood.last_seen is not None and flood.last_seen > flood.created_at
    assert [rows[k].count for k in sorted(rows)] == [50, 1, 1]
    assert events.held.pending() == 0


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
    assert events.held.pending() == 0


@pytest.mark.django_db
def test_what_is_held_is_bounded(monkeypatch):
    """Beyond MAX_GROUPS rows, further (address, path) pairs of a code are summed into one
    row for that code: a flood from many addresses holds a bounded number of rows."""
    monkeypatch.setattr(events.Held, "MAX_GROUPS", 10)
    for i in range(25):
        event = events.build(None, "token_invalid", 401, ip=f"10.0.0.{i}")
        events.held.add(event)
    assert len(events.held._groups) == 11
    assert events.held.pending() == 25
    events.flush()
    overflow = AuthEvent.objects.get(ip=None)
    assert (overflow.count, overflow.path, overflow.note) == (15, "", events.OVERFLOW_NOTE)
    assert AuthEvent.objects.count() == 11


def test_an_event_holds_no_secret(rf):
    request = rf.get("/api/me/", HTTP_AUTHORIZATION="Bearer abc.def.ghi", HTTP_USER_AGENT="x\r\ny")
    event = events.build(request, "token_invalid", 401, username="al\nice")
    assert "abc.def.ghi" not in str(event)
    assert event["token_fingerprint"] == events.fingerprint("abc.def.ghi")
    assert (event["username"], event["user_agent"]) == ("al?ice", "x??y")
    assert event["username_normalised"] == "al?ice"
    assert len(event["event_id"]) == 32


@pytest.mark.django_db(transaction=True)
def test_a_normal_exit_writes_what_is_held(private_redis):
    """A server process that holds rows (a long AUDIT_BATCH_DELAY) writes them when it ends
    normally (Ctrl-C of runserver: the interpreter's exit runs the atexit hook registered
    when the first row was held)."""
    port = private_redis.port + 2
    server = start_server(port, private_redis.url, "exit")
    try:
        url = f"http://127.0.0.1:{port}/api/me/"
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(url, timeout=10)
        request_id = answer.value.headers["X-Request-ID"]
        answer.value.close()
        assert request_id is not None
        assert not AuthEvent.objects.filter(request_id=request_id).exists()  # waiting
        os.kill(server.pid, signal.SIGINT)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    row = AuthEvent.objects.get(request_id=request_id)
    assert (row.code, row.status_code, row.user_id, row.count) == (
        "credentials_missing",
        401,
        None,
        1,
    )


@pytest.mark.django_db(transaction=True)
def test_an_idle_process_holds_its_rows_until_its_next_response(client, auth401_settings):
    """No thread or timer writes behind the server's back: once the window has passed, the
    rows wait for the next response (or the exit), which writes them."""
    auth401_settings(AUDIT_BATCH_DELAY=timedelta(milliseconds=100))
    threads = threading.active_count()
    client.get("/api/me/", HTTP_AUTHORIZATION="Bearer not.a.token")
    client.get("/api/me/")
    time.sleep(0.3)
    assert AuthEvent.objects.count() == 0
    assert threading.active_count() == threads
    client.get("/api/public/")
    assert sorted(AuthEvent.objects.values_list("code", flat=True)) == [
        "credentials_missing",
        "token_invalid",
    ]
    assert events.held.pending() == 0


def test_auth401_starts_no_thread_timer_or_signal_handler():
    source = "\n".join(p.read_text() for p in (ROOT / "auth401").rglob("*.py"))
    for forbidden in ("threading.Timer", "threading.Thread(", "signal.signal"):
        assert forbidden not in source
