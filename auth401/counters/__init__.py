"""Where failure counters, in-flight password checks, automatic locks and the durable event
stream live: Redis (``counters.redis``) or the database (``counters.database``), behind one
small interface.  Every operation is atomic, in one round trip for Redis and one transaction
for the database, so concurrent attempts from many processes never race (django-axes #442).

The interface (``Counters``):

- ``begin(keys, attempt, refusals)``: refuse when a key is locked (and record that key's
  refusal event in the same call); lock, and refuse alike, a key whose confirmed failures
  already reach its limit without a lock (``Begin.lock``); else admit only when *confirmed
  failures + checks in flight* stay below every key's limit, and add the attempt to the
  in-flight set.  No password is checked before it answers.
- ``fail(keys, attempt, event, locked)``: a wrong password: remove the attempt from the
  in-flight set, count the failure, lock every key that reached its limit (doubling per
  repeat up to ``LOCKOUT_MAX_DURATION``) and record ``event`` (or, when it locked, the
  locking key kind's event from ``locked``: the answer is then the lock); answers the new
  locks.
- ``release(keys, attempt)``: a right password (or a refused one): remove the in-flight
  entry; confirmed failures are never given back.
- ``append(events)``: record events that count nothing (durably).
- ``peek(key)``, ``clear(key)``, ``prune()``, ``locked(prefix)`` (the counters under a lock,
  for the dashboard), ``add_failures(counts)`` (counts drained from the stream).

Times are integer milliseconds.  ``get_store()`` builds the store ``COUNTER_STORE`` asks for
(cached until the settings change; ``choice()`` says which and why): with Redis, a
``FallbackCounters`` that uses the database while Redis does not answer (a process-wide
circuit), with every Redis decision written through to the database.  Beside it: ``stream()``
(the ``EventStream`` the drain reads, None without Redis), ``redis_available()`` and
``redis_config()`` (for the checks).  Nothing outside this package touches a Redis client or a
store's halves.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.signals import setting_changed

from auth401.conf import app_settings

logger = logging.getLogger("auth401")

#: seconds during which a failed Redis is left alone (the circuit then half-opens)
REDIS_RETRY_AFTER = 5.0
#: how long an in-flight entry lives: a killed worker's slot expires by itself
SLOT_TTL_MS = 10_000


@dataclass(frozen=True)
class Key:
    """One counter: ``name`` (opaque, e.g. ``u:<hash>`` or ``ip:203.0.113.7``), its kind
    (``username``, ``ip``, ``username+ip``), its limit, and whether it may lock (False for
    ``NEVER_LOCK_NETWORKS`` and with ``LOCKOUT_ENABLED = False``: counted, never bounded)."""

    name: str
    kind: str
    limit: int
    lockable: bool = True


@dataclass(frozen=True)
class Begin:
    admitted: bool
    #: the locked key that refused the attempt (None: admitted, or busy)
    locked: Key | None = None
    locked_ms: int = 0
    #: the store that answered: ``fail``/``release`` go to the same one
    store: Any = None
    #: the lock this call decided (a key whose confirmed failures already reached its limit
    #: without a lock): mirrored like a lock ``fail`` decides
    lock: Lock | None = None
    #: no store could count: refused (``lockout_unavailable``) unless ``LOCKOUT_FAIL_OPEN``
    unavailable: bool = False
    #: a wrong password one of the keys saw lately: ``credentials_invalid``, not counted, no
    #: password check (its ``repeat`` event recorded by this call)
    repeat: bool = False

    @property
    def busy(self) -> bool:
        return not self.admitted and self.locked is None and not (self.unavailable or self.repeat)


@dataclass(frozen=True)
class Lock:
    """A lock that ``fail`` (or ``begin``) has just decided."""

    key: Key
    ms: int
    level: int
    failures: int


@dataclass(frozen=True)
class Peek:
    failures: int
    locked_ms: int
    level: int
    in_flight: int = 0


@dataclass(frozen=True)
class Held:
    """A counter under a lock now (``Counters.locked``)."""

    name: str
    locked_ms: int
    level: int


class Counters(Protocol):
    """The store behind ``get_store()`` (see the module's docstring)."""

    def begin(self, keys: list[Key], attempt: str, refusals: dict[str, dict]) -> Begin: ...

    def fail(
        self,
        keys: list[Key],
        attempt: str,
        event: dict,
        locked: dict[str, dict],
        *,
        admitted_by: Any = None,
    ) -> list[Lock]: ...

    def release(self, keys: list[Key], attempt: str, *, admitted_by: Any = None) -> None: ...

    def append(self, events: list[dict]) -> None: ...

    def peek(self, key: str) -> Peek: ...

    def clear(self, key: str) -> None: ...

    def prune(self) -> int: ...

    def forget_passwords(self, key: str) -> None:
        """Forget the key's remembered wrong passwords (its password changed)."""
        ...

    def lock(self, key: str, until_ms: int, level: int) -> None:
        """An admin's lock of one key until ``until_ms`` (epoch ms), never shortening a
        longer one; it ends like an automatic lock, or with ``clear``."""
        ...

    def locked(self, prefix: str) -> list[Held]:
        """Counters under a lock now whose name starts with ``prefix``, longest first (read
        from the database, which holds every lock whichever store decided it)."""
        ...

    def add_failures(self, counts: dict[str, int]) -> None:
        """Failures counted elsewhere (events drained from the stream that name the counters
        they counted), added to the database's counters."""
        ...


class EventStream(Protocol):
    """The counter store's durable event stream (Redis), for ``auth401.drain``: entries are
    ``(id, fields)``; each is handed to one consumer of a group and stays pending until
    acknowledged."""

    def ensure_group(self, group: str) -> None: ...

    def pending(
        self, group: str, consumer: str, count: int, claim_idle_ms: int | None
    ) -> list[Any]:
        """This consumer's own unacknowledged entries, then those of consumers idle for
        ``claim_idle_ms`` (claimed for this one; None: none claimed)."""
        ...

    def read(self, group: str, consumer: str, count: int) -> tuple[int, list[Any]]:
        """(entries trimmed before anyone read them, new entries for this consumer)."""
        ...

    def ack(self, group: str, ids: list[Any]) -> None:
        """Acknowledge and delete entries whose rows are committed."""
        ...

    def waiting(self) -> int: ...

    def append(self, events: list[dict]) -> None:
        """Append events to the stream (the drain writes them); raises when Redis fails."""
        ...

    def forget_idle_consumers(self, group: str, idle_ms: int) -> int: ...


def now_ms() -> int:
    return int(time.time() * 1000)


def policy() -> tuple[int, int, int, int]:
    """(window, first lock, longest lock, lock memory) in ms, from the settings."""
    window = int(app_settings.FAILURE_WINDOW.total_seconds() * 1000)
    base = int(app_settings.LOCKOUT_DURATION.total_seconds() * 1000)
    ceiling = int(app_settings.LOCKOUT_MAX_DURATION.total_seconds() * 1000)
    return window, base, ceiling, ceiling


def lock_duration(level: int, base: int, ceiling: int) -> int:
    return int(min(base * 2 ** (level - 1), ceiling))


class Circuit:
    """Process-wide (all threads): opens at once on a Redis failure and half-opens after
    ``REDIS_RETRY_AFTER`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open_until = 0.0
        #: set when the circuit opens: Redis may have lost (or missed) locks and counts that
        #: the database holds; they are copied back before Redis is used again
        self.reseed_due = False

    def closed(self) -> bool:
        return time.monotonic() >= self.open_until

    def trip(self, exc: BaseException) -> None:
        with self._lock:
            already = not self.closed()
            self.open_until = time.monotonic() + REDIS_RETRY_AFTER
            self.reseed_due = True
        if not already:
            logger.warning(
                "auth401: Redis counters failed (%s: %s); using the database for %.0f s",
                type(exc).__name__,
                exc,
                REDIS_RETRY_AFTER,
            )

    def reset(self) -> None:
        self.open_until = 0.0


circuit = Circuit()


class FallbackCounters:
    """Redis first; the database while Redis fails.  A call whose Redis answer came too late
    was a no-op in Redis (its deadline passed), so the database's count is the only one.

    Counts only grow through faults:

    - every failure Redis counts, and every lock it decides, is written through to the
      database before the answer (``DatabaseCounters.settle``), so the database knows at
      least what Redis knew when Redis loses it (a restart without persistence);
    - when Redis answers again, each key's count in Redis becomes the larger of the two
      stores' counts, the longer lock and the higher lock level win (``RedisCounters.merge``,
      idempotent, so processes may merge the same rows at once);
    - an attempt is settled in the store that admitted it; one the database admitted that
      fails after Redis is back is merged into Redis at once;
    - the database, admitting while Redis is down, also counts this process's attempts that
      Redis admitted and whose outcome is not known yet (their places in flight were in
      Redis), so the bound holds across the fault for every thread of the process.
    """

    def __init__(self, primary: Any, fallback: Any) -> None:
        self.primary = primary
        self.fallback = fallback
        #: key name -> this process's attempts in flight that Redis admitted
        self._flying: dict[str, int] = {}
        #: key name -> this process's attempts in flight that the database admitted: Redis,
        #: back meanwhile, counts them in its bound (it has no place in flight for them)
        self._flying_db: dict[str, int] = {}
        self._flying_lock = threading.Lock()

    def _hold(self, keys: list[Key], delta: int, held: dict[str, int] | None = None) -> None:
        held = self._flying if held is None else held
        with self._flying_lock:
            for key in keys:
                if key.lockable:
                    left = held.get(key.name, 0) + delta
                    if left > 0:
                        held[key.name] = left
                    else:
                        held.pop(key.name, None)

    def _reserved(self, keys: list[Key], held: dict[str, int] | None = None) -> dict[str, int]:
        held = self._flying if held is None else held
        with self._flying_lock:
            return {k.name: held[k.name] for k in keys if k.name in held}

    def _reseed(self) -> None:
        """Merge the database's locks and counts into Redis after an outage (a restarted
        Redis has lost its own; the database's were decided meanwhile)."""
        circuit.reseed_due = False  # set again if this fails (the circuit trips)
        self.primary.merge(self.fallback.live_rows())

    def _redis(self) -> bool:
        """Whether Redis is to be tried (merging first when it has just come back)."""
        if not circuit.closed():
            return False
        if circuit.reseed_due:
            try:
                self._reseed()
            except Exception as exc:  # redis-py raises many types; none may reach the user
                circuit.trip(exc)
                return False
        return True

    def _settle(self, keys: list[Key], locks: list[Lock], attempt: str = "") -> None:
        """Write Redis's outcome through to the database (logged when it cannot: Redis
        counted it)."""
        try:
            self.fallback.settle(keys, locks, attempt)
        except Exception:
            logger.exception("auth401: a failure counted in Redis could not be written through")

    def begin(self, keys: list[Key], attempt: str, refusals: dict[str, dict]) -> Begin:
        if self._redis():
            # Held before Redis answers (and given back unless it admitted): a thread that
            # turns to the database meanwhile never misses this attempt.
            self._hold(keys, 1)
            try:
                answer = self.primary.begin(
                    keys, attempt, refusals, reserved=self._reserved(keys, self._flying_db)
                )
            except Exception as exc:
                self._hold(keys, -1)
                circuit.trip(exc)
            else:
                if not answer.admitted:
                    self._hold(keys, -1)
                if answer.lock is not None:
                    self._settle([], [answer.lock])
                return answer
        answer = self.fallback.begin(keys, attempt, refusals, reserved=self._reserved(keys))
        if answer.admitted:
            self._hold(keys, 1, self._flying_db)
        return answer

    def fail(
        self,
        keys: list[Key],
        attempt: str,
        event: dict,
        locked: dict[str, dict],
        *,
        admitted_by: Any = None,
    ) -> list[Lock]:
        """``admitted_by``: the store whose ``begin`` admitted the attempt (``Begin.store``);
        an attempt the database admitted is settled there."""
        if admitted_by is self.fallback:
            try:
                locks = self.fallback.fail(keys, attempt, event, locked)
                if circuit.closed() and not circuit.reseed_due:
                    # Redis came back while this attempt was checked: it learns the count now.
                    try:
                        self.primary.merge(self.fallback.rows([k.name for k in keys]))
                    except Exception as exc:
                        circuit.trip(exc)
                return locks
            finally:
                self._hold(keys, -1, self._flying_db)
        try:
            if self._redis():
                try:
                    counted, locks = self.primary.counted_fail(keys, attempt, event, locked)
                except Exception as exc:
                    circuit.trip(exc)
                else:
                    if counted:
                        self._settle(keys, locks, attempt)
                    return locks
            # Admitted by Redis, counted here: no place in flight to give back in this table.
            return self.fallback.fail(keys, attempt, event, locked, held=False)
        finally:
            # Only now that the database knows the failure does it stop being reserved.
            if admitted_by is self.primary:
                self._hold(keys, -1)

    def release(self, keys: list[Key], attempt: str, *, admitted_by: Any = None) -> None:
        if admitted_by is self.fallback:
            try:
                return self.fallback.release(keys, attempt)
            finally:
                self._hold(keys, -1, self._flying_db)
        try:
            if circuit.closed():
                try:
                    return self.primary.release(keys, attempt)
                except Exception as exc:
                    circuit.trip(exc)  # the slot expires by itself
            return None
        finally:
            if admitted_by is self.primary:
                self._hold(keys, -1)

    def _call(self, name: str, *args: Any) -> Any:
        if self._redis():
            try:
                return getattr(self.primary, name)(*args)
            except Exception as exc:
                circuit.trip(exc)
        return getattr(self.fallback, name)(*args)

    def append(self, events: list[dict]) -> None:
        return self._call("append", events)

    def peek(self, key: str) -> Peek:
        return self._call("peek", key)

    def clear(self, key: str) -> None:
        # Both: the lock may be mirrored in the database.
        self.fallback.clear(key)
        if circuit.closed():
            try:
                self.primary.clear(key)
            except Exception as exc:
                circuit.trip(exc)
                raise

    def prune(self) -> int:
        return self.fallback.prune()

    def forget_passwords(self, key: str) -> None:
        self.fallback.forget_passwords(key)
        if circuit.closed():
            try:
                self.primary.forget_passwords(key)
            except Exception as exc:
                circuit.trip(exc)

    def locked(self, prefix: str) -> list[Held]:
        return self.fallback.locked(prefix)

    def lock(self, key: str, until_ms: int, level: int) -> None:
        self.fallback.lock(key, until_ms, level)
        if circuit.closed():
            from auth401.models import FailureCounter

            try:
                self.primary.clear(key)  # Redis's counters of the key: the database's row
                self.primary.merge([FailureCounter.objects.get(counter_key=key)])
            except Exception as exc:  # the database holds the lock; Redis is merged back
                circuit.trip(exc)

    def add_failures(self, counts: dict[str, int]) -> None:
        self.fallback.add_failures(counts)


def redis_client_library(cache: Any) -> str | None:
    """Which Redis cache backend a Django cache is: ``"django"`` (Django's own
    ``django.core.cache.backends.redis.RedisCache``), ``"django-redis"``
    (``django_redis.cache.RedisCache``), or None (not Redis: counts could not be shared
    atomically through it)."""
    from django.core.cache.backends.redis import RedisCache

    if isinstance(cache, RedisCache):
        return "django"
    try:
        from django_redis.cache import RedisCache as DjangoRedisCache
    except ImportError:
        return None
    return "django-redis" if isinstance(cache, DjangoRedisCache) else None


def is_redis(cache: Any) -> bool:
    """Whether the counters can live in this Django cache's Redis (Django's own Redis cache,
    or django-redis)."""
    return redis_client_library(cache) is not None


@dataclass(frozen=True)
class Choice:
    """Which store ``COUNTER_STORE`` picks, and why (for the system checks)."""

    store: str  # "redis" or "database"
    alias: str
    backend: str  # the counter cache's backend class, dotted
    why: str


def choice() -> Choice:
    from django.core.cache import caches

    alias = app_settings.COUNTER_CACHE
    setting = app_settings.COUNTER_STORE
    cache = caches[alias]
    backend = f"{type(cache).__module__}.{type(cache).__qualname__}"
    if setting == "database":
        return Choice("database", alias, backend, "COUNTER_STORE is 'database'")
    library = redis_client_library(cache)
    if library is None:
        why = f"COUNTER_STORE is {setting!r} and the cache {alias!r} ({backend}) is not Redis"
        return Choice("database", alias, backend, why)
    why = f"COUNTER_STORE is {setting!r} and the cache {alias!r} is Redis ({library})"
    return Choice("redis", alias, backend, why)


_store: Counters | None = None
_store_lock = threading.Lock()


def get_store() -> Counters:
    """The store ``COUNTER_STORE`` asks for ("auto": Redis when ``COUNTER_CACHE`` is Redis)."""
    global _store
    store = _store
    if store is None:
        with _store_lock:
            if _store is None:
                _store = _build()
            store = _store
    return store


def _build() -> Counters:
    from django.core.cache import caches

    from .database import DatabaseCounters

    database = DatabaseCounters()
    if choice().store == "database":
        return database  # "cache" with a per-process cache is refused by check auth401.W006
    from .redis import RedisCounters

    cache = caches[app_settings.COUNTER_CACHE]
    return FallbackCounters(RedisCounters(cache, seed=database.live_rows), database)


def redis_store() -> Any:
    """The Redis half of the store (None without Redis): for tests and diagnostics; callers
    use ``get_store()``, ``stream()`` and ``redis_config()``."""
    store = get_store()
    return store.primary if isinstance(store, FallbackCounters) else None


def stream() -> EventStream | None:
    """The durable event stream to drain (None when events go straight to the database)."""
    store: EventStream | None = redis_store()
    return store


def redis_available() -> bool:
    """Whether this process tries Redis now (its circuit is closed)."""
    return circuit.closed()


def redis_config(*names: str) -> dict[str, str] | None:
    """``CONFIG GET`` of the counter Redis (None without Redis); errors are the caller's."""
    store = redis_store()
    if store is None:
        return None
    config: dict[str, str] = {}
    for name in names:
        config.update(store.client.config_get(name))
    return config


def reset(**kwargs: Any) -> None:
    global _store
    if kwargs.get("setting") not in (None, "AUTH401", "CACHES"):
        return
    with _store_lock:
        _store = None


setting_changed.connect(reset, dispatch_uid="auth401_counter_store")
