"""The counter stores behind ``auth401.counters``: the in-flight bound, what a right password
gives back, Redis' clock and eviction policy, and the new settings' validation."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from auth401 import counters, lockout
from auth401.checks import check_counter_redis
from auth401.conf import validate

STORES = ["auto", "database"]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db
def test_the_in_flight_bound_and_what_an_outcome_gives_back(store, user, auth401_settings):
    auth401_settings(COUNTER_STORE=store, FAILURE_LIMIT=3)
    keys = lockout.keys_for("alice", user, "127.0.0.1")
    get = counters.get_store()
    attempts = [lockout.new_attempt() for _ in range(4)]
    answers = [get.begin(keys, a, {}) for a in attempts]
    assert [a.admitted for a in answers] == [True, True, True, False]
    assert answers[3].busy
    name = keys[1].name
    assert get.peek(name).in_flight == 3
    get.release(keys, attempts[0])  # a right password: its place back, nothing counted
    assert (get.peek(name).in_flight, get.peek(name).failures) == (2, 0)
    locks = get.fail(keys, attempts[1], {"event_id": None}, {})  # a wrong one: counted
    assert locks == []
    assert (get.peek(name).in_flight, get.peek(name).failures) == (1, 1)
    # failures + in flight = 2 < 3: one more is admitted, then the bound is full again
    assert get.begin(keys, lockout.new_attempt(), {}).admitted
    assert get.begin(keys, lockout.new_attempt(), {}).busy


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db
def test_the_attempt_that_reaches_the_limit_locks_and_doubling(store, user, auth401_settings):
    auth401_settings(
        COUNTER_STORE=store,
        FAILURE_LIMIT=1,
        LOCKOUT_DURATION=timedelta(minutes=10),
        LOCKOUT_MAX_DURATION=timedelta(minutes=15),
    )
    keys = [k for k in lockout.keys_for("alice", user, "127.0.0.1") if k.kind == "username"]
    get = counters.get_store()
    attempt = lockout.new_attempt()
    assert get.begin(keys, attempt, {}).admitted
    [lock] = get.fail(keys, attempt, {"event_id": None}, {})
    assert (lock.key, lock.ms, lock.level, lock.failures) == (keys[0], 600_000, 1, 1)
    refused = get.begin(keys, lockout.new_attempt(), {})
    assert (refused.admitted, refused.locked, refused.locked_ms > 599_000) == (False, keys[0], True)


@pytest.fixture
def redis_store(private_redis):
    return counters.redis_store()


@pytest.mark.django_db
def test_an_evicting_counter_redis_is_a_warning(private_redis, redis_store):
    def eviction() -> list:
        return [w for w in check_counter_redis() if "maxmemory-policy" in w.msg]

    private_redis.client().config_set("maxmemory-policy", "allkeys-lru")
    [warning] = eviction()
    assert warning.id == "auth401.W010"
    assert "maxmemory-policy=allkeys-lru" in warning.msg
    private_redis.client().config_set("maxmemory-policy", "noeviction")
    assert eviction() == []
    private_redis.kill()
    assert check_counter_redis() == []  # no connection: never a failed check


@pytest.mark.django_db
def test_a_counter_redis_without_persistence_is_a_warning(private_redis, redis_store):
    # this test's redis-server runs without AOF (appendonly no) and never evicts
    [warning] = check_counter_redis()
    assert (warning.id, warning.level) == ("auth401.W010", logging.WARNING)
    assert warning.msg == "The Redis of the auth401 counters has no persistence (appendonly no)."
    assert "appendonly yes" in warning.hint
    private_redis.kill()
    assert check_counter_redis() == []  # no connection: never a failed check


@pytest.mark.django_db
def test_the_counter_redis_warning_is_for_check_deploy_only(private_redis, redis_store):
    """W010 asks Redis for its configuration: under ``check --deploy``, never on every
    ``manage.py`` command (runserver, migrate, a plain check)."""
    from io import StringIO

    from django.core.management import call_command

    def check(*args: str) -> str:
        out, err = StringIO(), StringIO()
        call_command("check", *args, stdout=out, stderr=err)
        return out.getvalue() + err.getvalue()

    # this test's redis-server runs without AOF (appendonly no)
    assert "auth401.W010" not in check()
    deploy = check("--deploy")
    assert "?: (auth401.W010) The Redis of the auth401 counters has no persistence" in deploy


def test_no_redis_no_warning(auth401_settings):
    auth401_settings(COUNTER_STORE="database")
    assert check_counter_redis() == []


@pytest.mark.django_db
def test_a_clock_difference_is_logged_once_and_deadlines_follow_redis(
    redis_store, user, caplog, monkeypatch
):
    caplog.set_level(logging.WARNING, logger="auth401")
    real = counters.redis.now_ms
    monkeypatch.setattr(counters.redis, "now_ms", lambda: real() - 30_000)  # we run 30 s late
    keys = lockout.keys_for("alice", user, "127.0.0.1")
    for _ in range(3):
        attempt = lockout.new_attempt()
        assert redis_store.begin(keys, attempt, {}).admitted  # not "late": Redis time is used
        redis_store.release(keys, attempt)
    warnings = [r for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 1
    assert "differ by 30" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("LOCKOUT_ENABLED", "yes"),
        ("LOCKOUT_KEYS", []),
        ("LOCKOUT_KEYS", ["user"]),
        ("LOCKOUT_KEYS", ["ip", "ip"]),
        ("NEVER_LOCK_NETWORKS", ["not-a-network"]),
        ("ALWAYS_LOCK_NETWORKS", "10.0.0.0/8"),
        ("COUNTER_TIMEOUT", 0.25),
        ("COUNTER_TIMEOUT", timedelta(0)),
        ("COUNTER_TIMEOUT", timedelta(seconds=30)),
    ],
)
def test_bad_values_of_the_new_settings_are_named(key, value):
    [problem] = validate({key: value})
    assert problem.key == key
    assert problem.message.startswith(f"AUTH401[{key!r}] must be ")


def test_good_values_of_the_new_settings():
    assert (
        validate(
            {
                "LOCKOUT_ENABLED": False,
                "LOCKOUT_KEYS": ["username+ip", "ip"],
                "NEVER_LOCK_NETWORKS": ["10.0.0.0/8", "2001:db8::/32"],
                "ALWAYS_LOCK_NETWORKS": ["192.0.2.1"],
                "COUNTER_TIMEOUT": timedelta(milliseconds=100),
            }
        )
        == []
    )


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db
def test_no_keys_admits_and_still_records(store, auth401_settings):
    """``LOCKOUT_KEYS = ["ip"]`` and no client address (``authenticate()`` without a request)."""
    from auth401 import drain, events
    from auth401.models import AuthEvent

    auth401_settings(COUNTER_STORE=store)
    get = counters.get_store()
    assert get.begin([], "b" * 32, {}).admitted
    event = events.build(None, "credentials_invalid", 401, username="nobody")
    assert get.fail([], "b" * 32, event, {}) == []
    drain.drain()
    assert list(AuthEvent.objects.values_list("code", "username")) == [
        ("credentials_invalid", "nobody")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_merge_keeps_the_larger_count_the_longer_lock_and_is_idempotent(redis_store, user):
    """After an outage each key's count in Redis is the larger of the two stores' (never the
    smaller one Redis happened to keep), and a lock decided by either holds."""
    from auth401.models import FailureCounter

    database = counters.get_store().fallback
    keys = lockout.keys_for("alice", user, "127.0.0.1")
    name = keys[1].name
    for _ in range(2):  # two failures counted in Redis (and written through)
        attempt = lockout.new_attempt()
        answer = counters.get_store().begin(keys, attempt, {})
        counters.get_store().fail(keys, attempt, {}, {}, admitted_by=answer.store)
    assert (redis_store.peek(name).failures, database.peek(name).failures) == (2, 2)
    # two more counted in the database alone (Redis stalled), then merged back, twice
    FailureCounter.objects.filter(counter_key=name).update(failures=4)
    redis_store.merge(database.rows([name]))
    redis_store.merge(database.rows([name]))
    assert redis_store.peek(name).failures == 4
    # a smaller count in the database never lowers Redis's
    FailureCounter.objects.filter(counter_key=name).update(failures=1)
    redis_store.merge(database.rows([name]))
    assert redis_store.peek(name).failures == 4
    # a lock decided in the database holds in Redis, and starts a new count there
    until = counters.now_ms() + 60_000
    FailureCounter.objects.filter(counter_key=name).update(
        failures=0, locked_until=until, lock_level=2
    )
    redis_store.merge(database.rows([name]))
    peeked = redis_store.peek(name)
    assert (peeked.failures, peeked.level, 59_000 < peeked.locked_ms <= 60_000) == (0, 2, True)


@pytest.mark.django_db
def test_failures_and_locks_decided_in_redis_are_written_through(
    redis_store, user, auth401_settings
):
    auth401_settings(FAILURE_LIMIT=2)
    redis_store = counters.redis_store()  # the store of these settings
    database = counters.get_store().fallback
    keys = [k for k in lockout.keys_for("alice", user, "127.0.0.1") if k.kind == "username"]
    name = keys[0].name
    attempt = lockout.new_attempt()
    answer = counters.get_store().begin(keys, attempt, {})
    assert answer.store is redis_store
    counters.get_store().fail(keys, attempt, {}, {}, admitted_by=answer.store)
    assert database.peek(name).failures == 1  # before the answer, not by the drain
    attempt = lockout.new_attempt()
    answer = counters.get_store().begin(keys, attempt, {})
    [lock] = counters.get_store().fail(keys, attempt, {}, {}, admitted_by=answer.store)
    peeked = database.peek(name)
    assert (peeked.failures, peeked.level, peeked.locked_ms > 0) == (0, 1, True)


REDIS_BACKENDS = {
    "django": "django.core.cache.backends.redis.RedisCache",
    "django-redis": "django_redis.cache.RedisCache",
}


@pytest.fixture(params=list(REDIS_BACKENDS))
def any_redis_cache(request, private_redis, settings):
    """The counter cache on this test's own redis-server, through Django's Redis cache or
    django-redis."""
    if request.param == "django-redis":
        pytest.importorskip("django_redis")
    settings.CACHES = {
        **settings.CACHES,
        "counters": {
            "BACKEND": REDIS_BACKENDS[request.param],
            "LOCATION": private_redis.url,
            "KEY_PREFIX": "either",
        },
    }
    return request.param


@pytest.mark.parametrize("setting", ["auto", "cache"])
@pytest.mark.django_db(transaction=True)
def test_either_redis_client_counts_atomically_in_redis(
    any_redis_cache, setting, private_redis, auth401_settings, user, counting_hasher
):
    import threading

    from django.db import connection
    from django.test import Client

    from auth401.checks import check_counter_store, check_wiring
    from tests.conftest import basic

    auth401_settings(COUNTER_STORE=setting, COUNTER_CACHE="counters", FAILURE_LIMIT=5)
    store = counters.get_store()
    assert isinstance(store, counters.FallbackCounters)
    assert [w.id for w in check_wiring()] == []  # no W006: it is Redis
    [info] = check_counter_store()
    assert info.id == "auth401.I002"
    assert info.msg == (
        f"The lockout counts in Redis: COUNTER_STORE is {setting!r} and the cache 'counters' is "
        f"Redis ({any_redis_cache}); each step is one atomic script."
    )
    counting_hasher.reset(delay=0.02)
    codes: list[str] = []
    start = threading.Barrier(10)

    def guess() -> None:
        client = Client()
        start.wait()
        try:
            for i in range(3):
                password = f"guess-{threading.get_ident()}-{i}"
                response = client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", password))
                codes.append(response.json()["code"])
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(codes) == 30
    assert counting_hasher.calls <= 5
    assert set(codes) <= {"credentials_invalid", "account_locked", "login_busy"}
    key = lockout.username_key("alice", user)
    assert store.primary.peek(key).locked_ms > 0
    assert not counters.circuit.reseed_due  # Redis answered throughout
    names = {k.decode() for k in private_redis.client().keys("*")}
    assert f":1:auth401:{key}:lock" in {n[len("either") :] for n in names}


def test_auto_with_another_redis_alias_says_where_it_counts(settings, auth401_settings):
    from auth401.checks import check_counter_store, check_deployment

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "redis": {"BACKEND": REDIS_BACKENDS["django"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "LEEWAY": timedelta(seconds=5)}
    auth401_settings(COUNTER_STORE="auto")
    found = [m for m in check_deployment() if m.id == "auth401.W012"]
    assert [(m.msg, m.hint) for m in found] == [
        (
            "The lockout counts in the database: COUNTER_STORE is 'auto' and the cache "
            "'default' (django.core.cache.backends.locmem.LocMemCache) is not Redis, although "
            "the cache 'redis' is Redis.",
            "To count in Redis, set AUTH401['COUNTER_CACHE'] = 'redis' (a dedicated, "
            "persistent, non-evicting Redis is best); to keep the database, set "
            "COUNTER_STORE = 'database'.",
        )
    ]
    assert check_counter_store() == []  # no Redis in use: nothing to name
    auth401_settings(COUNTER_CACHE="redis")
    assert [m.id for m in check_deployment() if m.id == "auth401.W012"] == []
    assert [m.id for m in check_counter_store()] == ["auth401.I002"]
