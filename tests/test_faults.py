"""Faults (issue 6, item 6): with Redis unreachable, and with the audit table refusing writes,
every request still gets its whole, correct answer.

- Redis: the counter cache points at a closed port (``redis://127.0.0.1:1/0``; the shared Redis
  is never stopped).  The lockout falls back to the ``FailureCounter`` table, logs a warning,
  and still locks after ``FAILURE_LIMIT`` failures.
- Audit: a ``BEFORE INSERT`` trigger makes every insert into the ``AuthEvent`` table fail (on
  SQLite and PostgreSQL alike, whatever statement auth401 uses to write).  Answers do not
  change, the failure is logged, no row is written.

Both run with ``transaction=True``: requests run in autocommit as in production, so a failed
statement cannot be hidden by (or poison) a test-wide transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from auth401 import lockout
from auth401.models import AccountStatus, AuthEvent, FailureCounter
from tests.conftest import PASSWORD, basic
from tests.test_catalogue import assert_answer

pytestmark = pytest.mark.django_db(transaction=True)

ME = "/api/me/"
TOKEN = "/api/token/"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


def login(client: Any, username: str, password: str) -> Any:
    return client.get(ME, HTTP_AUTHORIZATION=basic(username, password))


def token_login(client: Any, username: str, password: str) -> Any:
    return client.post(
        TOKEN, {"username": username, "password": password}, content_type="application/json"
    )


def warnings_from_auth401(caplog: Any, text: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("auth401") and r.levelno >= logging.WARNING and text in r.getMessage()
    ]


# -- Redis unreachable ------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings, auth401_settings):
    """Counters in a Redis cache nobody listens to; everything else in local memory."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "counters": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CLOSED_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
    }
    auth401_settings(
        COUNTER_STORE="cache", COUNTER_CACHE="counters", FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000
    )
    from auth401.counters import FallbackCounters, get_store

    assert isinstance(get_store(), FallbackCounters)  # Redis first, then the DB


@pytest.mark.parametrize("send", [login, token_login], ids=["basic", "token-endpoint"])
def test_redis_down_lockout_falls_back_to_the_database(redis_down, user, client, caplog, send):
    caplog.set_level(logging.WARNING, logger="auth401")
    answers = [send(client, "alice", f"guess-{i}") for i in range(3)]
    for response in answers[:2]:
        assert_answer(response, "credentials_invalid")
    assert_answer(answers[2], "account_locked", exact={"retry_after": 900})

    # The lock holds, for the right password too, with no Redis at all.
    for response in (send(client, "alice", PASSWORD), send(client, "alice", "again")):
        assert_answer(response, "account_locked")

    assert warnings_from_auth401(caplog, "Redis counters failed")
    rows = {row.counter_key: row for row in FailureCounter.objects.all()}
    user_row = rows[lockout.username_key("alice", user)]
    assert user_row.locked_until > 0
    assert user_row.lock_level == 1
    ip_row = rows[lockout.ip_key("127.0.0.1")]
    assert ip_row.failures >= 3
    assert lockout.peek("alice").locked_ms > 0  # the fallback answers reports too
    status = AccountStatus.objects.get(user=user)
    assert (status.state, status.automatic) == ("locked", True)
    # and the audit trail is whole: one row per failure
    assert AuthEvent.objects.filter(code="credentials_invalid").count() == 2
    assert AuthEvent.objects.filter(code="account_locked").count() == 3


def test_redis_down_unknown_username_locks_alike(redis_down, user, client):
    answers = [login(client, "nobody-here", f"guess-{i}") for i in range(3)]
    for response in answers[:2]:
        assert_answer(response, "credentials_invalid")
    assert_answer(answers[2], "account_locked", exact={"retry_after": 900})
    assert FailureCounter.objects.get(counter_key=lockout.username_key("nobody-here")).lock_level


def test_redis_down_success_and_tokens_still_work(redis_down, user, client):
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"
    response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"]


# -- the audit table refuses writes --------------------------------------------------------------


@pytest.fixture
def audit_refuses(db):
    """A trigger that fails every INSERT into the AuthEvent table; dropped afterwards."""
    table = AuthEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION auth401_refuse_audit() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'audit table refuses writes'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER auth401_refuse_audit BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION auth401_refuse_audit()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER auth401_refuse_audit BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'audit table refuses writes'); END"
            )
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS auth401_refuse_audit ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS auth401_refuse_audit()")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS auth401_refuse_audit")


def audit_errors(caplog: Any) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "auth401" and r.levelno >= logging.ERROR and "audit" in r.getMessage()
    ]


def test_the_trigger_really_refuses(audit_refuses, user):
    from django.db import DatabaseError

    with pytest.raises(DatabaseError):
        AuthEvent.objects.create(code="credentials_invalid")


@pytest.mark.parametrize(
    ("authorization", "code", "bearer_error"),
    [
        (None, "credentials_missing", None),
        ("Bearer not.a.token", "token_invalid", "invalid_token"),
        ("Digest username=alice", "scheme_unsupported", None),
        ("Basic !!!", "authorization_malformed", None),
        (basic("alice", "wrong"), "credentials_invalid", None),
        (basic("nobody", "wrong"), "credentials_invalid", None),
    ],
)
def test_audit_refused_answers_stay_whole(
    audit_refuses, user, client, caplog, authorization, code, bearer_error
):
    caplog.set_level(logging.WARNING, logger="auth401")
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get(ME, **extra)
    assert_answer(response, code, bearer_error=bearer_error)
    assert audit_errors(caplog), "the lost audit row was not logged"
    # the failure's own log record still stands (the audit trail of last resort)
    assert warnings_from_auth401(caplog, code)
    assert AuthEvent.objects.count() == 0


def test_audit_refused_token_endpoint(audit_refuses, user, client, caplog):
    caplog.set_level(logging.WARNING, logger="auth401")
    assert_answer(token_login(client, "alice", "wrong"), "credentials_invalid")
    assert audit_errors(caplog)
    response = token_login(client, "alice", PASSWORD)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"access", "refresh"}


def test_audit_refused_lockout_still_locks(audit_refuses, user, client, caplog, auth401_settings):
    """The attempt that reaches the limit writes the automatic lock (AccountStatus and its
    own AuthEvent) as well: a refused audit table must not turn it into a 500."""
    auth401_settings(FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000)
    caplog.set_level(logging.WARNING, logger="auth401")
    answers = [login(client, "alice", f"guess-{i}") for i in range(3)]
    for response in answers[:2]:
        assert_answer(response, "credentials_invalid")
    assert_answer(answers[2], "account_locked", exact={"retry_after": 900})
    assert_answer(login(client, "alice", PASSWORD), "account_locked")
    assert lockout.peek("alice").locked_ms > 0
    assert AuthEvent.objects.count() == 0
    assert audit_errors(caplog)


def test_audit_refused_success_is_untouched(audit_refuses, user, client, auth401_settings):
    auth401_settings(AUDIT_SUCCESS=True)  # the success row is refused too
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"


# -- a real Redis killed, restarted, stopped ------------------------------------------------------


def test_redis_killed_mid_attack_the_lock_holds_and_counting_goes_on(
    private_redis, user, client, counting_hasher, settings
):
    from auth401 import counters

    # Before the outage: two failures of an unknown name (drained into the database after
    # each answer), and alice's account locked.
    for i in range(2):
        assert_answer(login(client, "ghost", f"guess-{i}"), "credentials_invalid")
    for i in range(3):
        login(client, "alice", f"guess-{i}")
    assert FailureCounter.objects.get(counter_key=lockout.username_key("ghost")).failures == 2
    assert AccountStatus.objects.get(user=user).automatic

    private_redis.kill()
    counting_hasher.reset()
    # The lock decided before the outage holds: the right password is refused like a wrong
    # one, without a password check.
    right, wrong = login(client, "alice", PASSWORD), login(client, "alice", "guess-9")
    assert_answer(right, "account_locked")
    assert_answer(wrong, "account_locked")
    assert right.json()["retry_after"] == wrong.json()["retry_after"]
    assert counting_hasher.calls == 0
    # Counting goes on from what the database knows: the third failure locks ghost.
    assert_answer(login(client, "ghost", "guess-3"), "account_locked")
    assert counting_hasher.calls == 1
    assert_answer(login(client, "ghost", "guess-4"), "account_locked")
    assert counting_hasher.calls == 1

    # Redis back (empty: no persistence here): the mirrored locks still hold.
    private_redis.start()
    counters.circuit.reset()
    assert_answer(login(client, "alice", PASSWORD), "account_locked")
    assert_answer(login(client, "ghost", "guess-5"), "account_locked")


def test_redis_stopped_answers_fast_and_leaves_no_phantom_failure(
    private_redis, user, client, auth401_settings
):
    import time as _time
    from datetime import timedelta

    from auth401 import counters

    auth401_settings(COUNTER_TIMEOUT=timedelta(milliseconds=250))
    assert login(client, "alice", PASSWORD).status_code == 200
    private_redis.pause()
    try:
        started = _time.monotonic()
        response = login(client, "alice", PASSWORD)
        elapsed = _time.monotonic() - started
        assert response.status_code == 200, response.content
        assert elapsed < 2  # one COUNTER_TIMEOUT, then the database (no 5 s socket wait)
        assert not counters.circuit.closed()  # every thread of the process skips Redis now
        for i in range(2):
            assert_answer(login(client, "alice", f"typo-{i}"), "credentials_invalid")
    finally:
        private_redis.resume()
    _time.sleep(0.3)  # let the woken Redis run what was sent to it: too late, so nothing
    store = counters.redis_store()
    key = lockout.username_key("alice", user)
    assert (store.peek(key).failures, store.peek(key).in_flight) == (0, 0)
    counters.circuit.reset()
    for _ in range(5):
        assert login(client, "alice", PASSWORD).status_code == 200
    # Redis now knows the two typos made while it was stopped (copied from the database),
    # and nothing else: no phantom failure from the stalled call
    assert (store.peek(key).failures, store.peek(key).in_flight) == (2, 0)
    assert login(client, "alice", PASSWORD).status_code == 200


def test_a_script_run_after_its_deadline_does_nothing(private_redis, user):
    from auth401 import counters
    from auth401.counters.redis import Late

    store = counters.redis_store()
    keys = lockout.keys_for("alice", user, "127.0.0.1")
    store.timeout_ms = -5_000  # every deadline is already past when Redis runs the script
    with pytest.raises(Late):
        store.begin(keys, "a" * 32, {})
    with pytest.raises(Late):
        store.fail(keys, "a" * 32, {"event_id": "x"}, {})
    store.timeout_ms = 250
    peeked = store.peek(keys[1].name)
    assert (peeked.failures, peeked.in_flight, peeked.locked_ms) == (0, 0, 0)
    assert private_redis.client().xlen(store.stream) == 0


def test_redis_restarted_empty_unnoticed_locks_counts_and_levels_hold(
    private_redis, counting_hasher, user_factory, client, auth401_settings
):
    """A Redis killed and restarted empty with no request in between (the process never sees
    it fail: its client reconnects): the next call finds no epoch and copies the database's
    locks, lock levels and counts back before it answers, for real and unknown names and
    addresses alike."""
    import time as _time
    from datetime import timedelta

    from auth401 import drain

    def attempt(name: str, password: str, ip: str) -> Any:
        return client.get(ME, HTTP_AUTHORIZATION=basic(name, password), REMOTE_ADDR=ip)

    alice, bob = user_factory("alice"), user_factory("bob")
    auth401_settings(
        IP_FAILURE_LIMIT=4,
        LOCKOUT_DURATION=timedelta(seconds=1),
        LOCKOUT_MAX_DURATION=timedelta(hours=1),
    )
    # ghost (unknown): locked once, the lock over, locked again: level 2
    for i in range(3):
        attempt("ghost", f"guess-{i}", f"10.0.1.{i}")
    _time.sleep(1.2)
    auth401_settings(LOCKOUT_DURATION=timedelta(minutes=10))
    for i in range(3, 6):
        attempt("ghost", f"guess-{i}", f"10.0.1.{i}")
    # alice (real) locked; an address locked by four names; bob and dave counted twice
    for i in range(3):
        attempt("alice", f"guess-{i}", "10.0.0.1")
    for i in range(4):
        attempt(f"n{i}", "guess", "10.0.0.3")
    for i in range(2):
        assert_answer(attempt("bob", f"guess-{i}", "10.0.0.5"), "credentials_invalid")
        assert_answer(attempt("dave", f"guess-{i}", "10.0.0.4"), "credentials_invalid")
    drain.drain()  # the counts reach the database (the locks are mirrored after each answer)

    def state() -> dict[str, tuple[int, int, bool]]:
        peeks = {
            "ghost": lockout.peek("ghost"),
            "alice": lockout.peek("alice", user=alice),
            "bob": lockout.peek("bob", user=bob),
            "dave": lockout.peek("dave"),
            "n0": lockout.peek("n0"),
            "10.0.0.3": lockout.peek("10.0.0.3", ip=True),
            "10.0.0.4": lockout.peek("10.0.0.4", ip=True),
        }
        return {k: (p.failures, p.level, p.locked_ms > 0) for k, p in peeks.items()}

    before = state()
    assert before == {
        "ghost": (0, 2, True),
        "alice": (0, 1, True),
        "bob": (2, 0, False),
        "dave": (2, 0, False),
        "n0": (1, 0, False),
        "10.0.0.3": (0, 1, True),
        "10.0.0.4": (2, 0, False),
    }
    ghost_left = lockout.peek("ghost").locked_ms

    private_redis.kill()
    private_redis.start()  # empty: no persistence here; no request saw it gone
    counting_hasher.reset()

    # The unknown name is refused like before, no password checked (no enumeration oracle)
    ghost = assert_answer(attempt("ghost", "guess-9", "10.0.2.1"), "account_locked")
    assert ghost_left - 60_000 < ghost["retry_after"] * 1000 <= ghost_left + 1000
    assert_answer(attempt("alice", PASSWORD, "10.0.2.2"), "account_locked")
    assert_answer(attempt("n0", "guess", "10.0.0.3"), "address_locked")
    assert counting_hasher.calls == 0
    assert state() == before
    assert [a.address for a in lockout.locked_addresses()] == ["10.0.0.3"]
    # counting goes on from the counts before the restart: dave's third failure locks
    assert_answer(
        attempt("dave", "guess-2", "10.0.2.3"), "account_locked", exact={"retry_after": 600}
    )
    assert counting_hasher.calls == 1
    assert lockout.peek("dave").level == 1


# -- no store can count: fail closed --------------------------------------------------------------


def _refusing_counters() -> Any:
    """The trigger (see ``counters_refuse``) as a context manager, set up after the test's
    own writes."""
    import contextlib

    @contextlib.contextmanager
    def refusing() -> Any:
        table = FailureCounter._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE OR REPLACE FUNCTION auth401_refuse_counts() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'counter table refuses writes'; END $$ "
                    "LANGUAGE plpgsql"
                )
                cursor.execute(
                    f"CREATE TRIGGER auth401_refuse_counts BEFORE INSERT OR UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION auth401_refuse_counts()"
                )
            else:
                for verb in ("INSERT", "UPDATE"):
                    cursor.execute(
                        f"CREATE TRIGGER auth401_refuse_counts_{verb.lower()} BEFORE {verb} "
                        f"ON {table} BEGIN SELECT RAISE(ABORT, 'counter table refuses writes'); "
                        "END"
                    )
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(f"DROP TRIGGER IF EXISTS auth401_refuse_counts ON {table}")
                    cursor.execute("DROP FUNCTION IF EXISTS auth401_refuse_counts()")
                else:
                    for verb in ("insert", "update"):
                        cursor.execute(f"DROP TRIGGER IF EXISTS auth401_refuse_counts_{verb}")

    return refusing()


def same_answer(a: Any, b: Any) -> None:
    """Two answers alike but for their request ids."""
    body_a, body_b = dict(a.json()), dict(b.json())
    body_a.pop("request_id", None), body_b.pop("request_id", None)
    assert (a.status_code, body_a) == (b.status_code, body_b)
    for header in ("Retry-After", "Cache-Control", "Content-Type", "WWW-Authenticate"):
        assert a.get(header) == b.get(header), header


@pytest.mark.parametrize("where", ["database", "redis-down"])
@pytest.mark.parametrize("send", [login, token_login], ids=["basic", "token-endpoint"])
def test_no_store_can_count_refuses_every_password_login_alike(
    where, send, settings, auth401_settings, user_factory, client, counting_hasher, caplog
):
    """The database counter store refusing writes (alone, or with Redis down as well): no
    password is checked, and a real name, a name locked before and an unknown name get one
    answer.  Valid tokens and sessions are not affected."""
    caplog.set_level(logging.ERROR, logger="auth401")
    alice, _bob = user_factory("alice"), user_factory("bob")
    auth401_settings(COUNTER_STORE="database", FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000)
    for i in range(3):
        login(client, "bob", f"guess-{i}")  # bob is locked before the outage
    assert AccountStatus.objects.get(user=_bob).automatic
    if where == "redis-down":
        settings.CACHES = {
            **settings.CACHES,
            "counters": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": CLOSED_REDIS,
            },
        }
        auth401_settings(COUNTER_STORE="cache", COUNTER_CACHE="counters")
    token = AccessToken.for_user(alice)
    request = None
    with _refusing_counters():
        counting_hasher.reset()
        real = send(client, "alice", PASSWORD)
        locked = send(client, "bob", PASSWORD)
        unknown = send(client, "nobody", PASSWORD)
        wrong = send(client, "alice", "wrong")
        request = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert counting_hasher.calls == 0
    body = assert_answer(real, "lockout_unavailable", exact={"retry_after": 5})
    assert real.status_code == 503
    assert body["detail"] == "Logins cannot be checked right now."
    for other in (locked, unknown, wrong):
        same_answer(real, other)
    assert request.status_code == 200, request.content  # a valid token still works
    assert any("lockout_unavailable" in r.getMessage() for r in caplog.records)
    rows = AuthEvent.objects.filter(code="lockout_unavailable")
    assert rows.count() == 4
    assert set(rows.values_list("user_id", flat=True)) == {None}  # names no one, alike


def test_failing_open_checks_the_password_uncounted(auth401_settings, user, client, caplog):
    auth401_settings(COUNTER_STORE="database", LOCKOUT_FAIL_OPEN=True)
    caplog.set_level(logging.ERROR, logger="auth401")
    with _refusing_counters():
        response = login(client, "alice", PASSWORD)
        assert response.status_code == 200, response.content
        for i in range(8):
            assert_answer(login(client, "alice", f"guess-{i}"), "credentials_invalid")
    assert any("LOCKOUT_FAIL_OPEN" in r.getMessage() for r in caplog.records)
    assert not FailureCounter.objects.exists()


# -- the fault matrix: at most FAILURE_LIMIT password checks whatever Redis does ------------------

#: fault -> (redis-server with AOF, what happens at the fault, what happens at the recovery)
FAULTS = {
    "kill-9": (False, "kill", "start"),
    "kill-9-aof": (True, "kill", "start"),
    "sigstop": (False, "pause", "resume"),
    "empty-restart": (False, "restart", None),
}


@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix_the_limit_holds(
    fault, workers, settings, auth401_settings, user, counting_hasher, monkeypatch
):
    """Wrong passwords for one account from ``workers`` threads; after the second password
    check Redis fails (killed with or without AOF, stopped, or restarted empty); after the
    fourth (or a second) it comes back.  Whatever store answered meanwhile, no more than
    FAILURE_LIMIT passwords are checked, and the lock holds in Redis afterwards."""
    import threading
    import time as _time
    from datetime import timedelta

    from django.test import Client

    from auth401 import counters
    from tests.redis_server import RedisServer

    aof, at_fault, at_recovery = FAULTS[fault]
    server = RedisServer(appendonly=aof).start()
    settings.CACHES = {
        **settings.CACHES,
        "counters": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "matrix",
        },
    }
    auth401_settings(
        COUNTER_STORE="cache",
        COUNTER_CACHE="counters",
        FAILURE_LIMIT=5,
        IP_FAILURE_LIMIT=1000,
        AUDIT_BATCH_DELAY=timedelta(seconds=1),  # the default: the drain runs once a second
    )
    monkeypatch.setattr(counters, "REDIS_RETRY_AFTER", 0.3)
    counting_hasher.reset(delay=0.03)
    stop = threading.Event()
    answers: list[str] = []
    guard = threading.Lock()

    def attack() -> None:
        client = Client()
        try:
            i = 0
            while not stop.is_set():
                i += 1
                response = login(client, "alice", f"guess-{threading.get_ident()}-{i}")
                with guard:
                    answers.append(response.json()["code"])
        finally:
            connection.close()

    def wait_for(calls: int, seconds: float) -> None:
        deadline = _time.monotonic() + seconds
        while counting_hasher.calls < calls and _time.monotonic() < deadline:
            _time.sleep(0.002)

    threads = [threading.Thread(target=attack) for _ in range(workers)]
    try:
        for thread in threads:
            thread.start()
        wait_for(2, 10)
        if at_fault == "restart":
            server.kill()
            server.start()
        else:
            getattr(server, at_fault)()
        at = [counting_hasher.calls]
        wait_for(4, 1.0)
        at.append(counting_hasher.calls)
        if at_recovery:
            getattr(server, at_recovery)()
        _time.sleep(1.5)  # the circuit half-opens; Redis answers again, merged
        stop.set()
        for thread in threads:
            thread.join()
        checks = counting_hasher.calls
        print(
            f"\nFAULT-MATRIX {fault} workers={workers} checks={checks} (at the fault "
            f"{at[0]}, at the recovery {at[1]}) answers={len(answers)}"
        )
        assert checks <= 5, (checks, answers)
        assert answers.count("credentials_invalid") <= 4
        # Redis answers again and holds the lock (the merge or its own decision)
        counters.circuit.reset()
        assert_answer(login(Client(), "alice", PASSWORD), "account_locked")
        key = lockout.username_key("alice", user)
        assert counters.redis_store().peek(key).locked_ms > 0
        assert counting_hasher.calls == checks
    finally:
        stop.set()
        server.stop()
