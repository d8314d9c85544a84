import base64
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from auth401 import accounts

PASSWORD = "correct-horse-1"


def _clear_cache() -> None:
    from django.core.cache import cache

    from auth401.counters import is_redis

    if is_redis(cache):
        # Only this run's keys (its KEY_PREFIX names the process): never FLUSHDB a shared Redis.
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


def _set_epoch() -> None:
    """The emptied Redis keeps its counters' epoch: as in production, where it is copied in
    once per Redis, tests that count work do not count that copy (an empty test database)."""
    from auth401.counters import redis_store

    store = redis_store()
    if store is not None:
        store.client.set(store.epoch, "test")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Lockout counters may live in the cache (Redis in CI): every test starts empty, with the
    Redis circuit closed and no batched audit events left over."""
    from auth401 import counters, events

    counters.circuit.reset()
    _clear_cache()
    _set_epoch()
    yield
    counters.circuit.reset()
    events.held._forked()  # nothing held from an earlier test
    _clear_cache()


@pytest.fixture(autouse=True)
def _fresh_counter_connection(django_db_blocker):
    """Inside a test's transaction, database counters on PostgreSQL go through their own
    autocommit connection (as under ATOMIC_REQUESTS): what they commit is removed after the
    test, and the connection closed so that the test database can be dropped."""
    yield
    from django.db import connection

    from auth401.counters import database as _counters
    from auth401.models import AuthEvent, FailureCounter

    side = getattr(_counters._side, "connection", None)
    if side is None:
        return
    with django_db_blocker.unblock():
        if connection.vendor != "sqlite":
            with side.cursor() as cursor:
                cursor.execute(f"DELETE FROM {FailureCounter._meta.db_table}")
                cursor.execute(f"DELETE FROM {AuthEvent._meta.db_table}")
        _counters.close_side_connections(force=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient(raise_request_exception=False)


@pytest.fixture
def user_factory(db) -> Callable[..., Any]:
    def make(username: str = "alice", password: str = PASSWORD, **fields: Any) -> Any:
        return get_user_model().objects.create_user(username=username, password=password, **fields)

    return make


@pytest.fixture
def user(user_factory):
    return user_factory()


@pytest.fixture
def account_factory(user_factory) -> Callable[..., Any]:
    """A user in a given auth401 state: active, locked, suspended or inactive."""

    def make(state: str = "active", username: str | None = None, **kwargs: Any) -> Any:
        user = user_factory(username or f"user-{state}", is_active=state != "inactive")
        if state == "locked":
            accounts.lock(user, **kwargs)
        elif state == "suspended":
            accounts.suspend(user, **kwargs)
        return user

    return make


@pytest.fixture
def jwt_pair() -> Callable[[Any], tuple[str, str]]:
    def make(user: Any) -> tuple[str, str]:
        refresh = RefreshToken.for_user(user)
        return str(refresh.access_token), str(refresh)

    return make


@pytest.fixture
def access_token() -> Callable[..., str]:
    def make(user: Any) -> str:
        return str(AccessToken.for_user(user))

    return make


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def basic_header() -> Callable[[str, str], str]:
    return basic


@pytest.fixture
def auth401_settings(settings):
    """Set AUTH401 keys over the test settings: ``auth401_settings(FAILURE_LIMIT=3)``."""

    def apply(**overrides: Any) -> None:
        settings.AUTH401 = {**getattr(settings, "AUTH401", {}), **overrides}

    return apply


@pytest.fixture
def counting_hasher(settings):
    """A hasher that counts its calls: how many passwords were really checked."""
    from tests.hashers import CountingHasher

    settings.PASSWORD_HASHERS = ["tests.hashers.CountingHasher"]
    CountingHasher.reset()
    yield CountingHasher
    CountingHasher.reset()


@pytest.fixture
def private_redis(settings, auth401_settings):
    """The counters in a redis-server of this test's own (killed, paused and restarted by
    its pid; the shared Redis is never touched), with ``FAILURE_LIMIT=3``."""
    from tests.redis_server import RedisServer, free_port

    server = RedisServer(free_port(1)).start()
    settings.CACHES = {
        **settings.CACHES,
        "counters": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "private",
        },
    }
    auth401_settings(
        COUNTER_STORE="cache", COUNTER_CACHE="counters", FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000
    )
    yield server
    server.stop()
