"""Counters, locks, in-flight checks and the event stream in Redis: each operation is one Lua
script, so one round trip and atomic.

Every script takes a *deadline* (Redis time, ms) and does nothing when Redis runs it later
(``TIME`` inside the script): a request that gave up waiting (``COUNTER_TIMEOUT``) and used
the database is then never counted a second time when a stalled Redis wakes up.

Keys per counter (under the cache's key prefix): ``:n`` confirmed failures (expires with the
window), ``:lock`` the lock (its value the level, expires with the lock), ``:level`` the lock
level (remembered for ``LOCKOUT_MAX_DURATION`` after a lock), ``:f`` the attempts in flight
(a sorted set scored by expiry).  Events go to one stream, trimmed at about
``STREAM_MAXLEN`` entries; each carries a sequence number so the drain can count entries
trimmed unread.

Use a dedicated, persistent (AOF), non-evicting Redis for these keys: see docs/lockout.md.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from django.conf import settings

from auth401.conf import app_settings

from . import SLOT_TTL_MS, Begin, Key, Lock, Peek, now_ms, policy

logger = logging.getLogger("auth401")

#: about how many events the stream keeps when nobody drains it
STREAM_MAXLEN = 100_000

_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[1]) then return {now, -1} end
"""

# The epoch marker (the last key): missing, this Redis has lost (or never had) the counters
# that the database mirrors (a restart without persistence, a failover to a replica that had
# not got them, a new server).  The script then does nothing and says so; the caller copies
# the database's locks and counts in and runs it again.
_EPOCH = """
if redis.call('EXISTS', KEYS[#KEYS]) == 0 then return {now, -2} end
"""

_XADD = """
local function xadd(payload)
  local seq = redis.call('INCR', KEYS[#KEYS - 1])
  redis.call('XADD', KEYS[#KEYS - 2], 'MAXLEN', '~', maxlen, '*', 'seq', seq, 'e', payload)
end
"""

# The arguments of ``begin`` and ``fail``, by name: ARGV[2] is one JSON object (``_args`` in
# Python) with the policy and, per counter, its limit, whether it may lock, and its event;
# KEYS hold five keys per counter (n, lock, level, f, r), then the stream, seq and epoch.
# ``a.attempt`` is the attempt's password fingerprint: identical attempts share one place in
# flight, and ``r`` remembers the last ``a.memory_n`` wrong ones.
_ARGS = """
local a = cjson.decode(ARGV[2])
local maxlen = a.maxlen
local counters = {}
for i, k in ipairs(a.keys) do
  local b = (i - 1) * 5
  counters[i] = {n = KEYS[b + 1], lock = KEYS[b + 2], level = KEYS[b + 3], f = KEYS[b + 4],
                 r = KEYS[b + 5], limit = k.limit, lockable = k.lockable, event = k.event,
                 reserved = k.reserved or 0}
end
-- Whether this wrong password (its fingerprint, a.attempt) is one of the last few every
-- counter saw: then it is not counted again (a counter that forgot it, after a password
-- change, has it checked and counted).
local function repeated()
  if a.memory_n == 0 or #counters == 0 then return false end
  for _, c in ipairs(counters) do
    if not redis.call('LPOS', c.r, a.attempt) then return false end
  end
  return true
end
"""

# The lock step, written once: the next level, its duration (doubling up to the ceiling), the
# lock, the level remembered a while longer, and a new count.
_LOCK = """
local function lock(c)
  local level = redis.call('INCR', c.level)
  local d = math.floor(math.min(a.base * 2 ^ (level - 1), a.ceiling))
  redis.call('SET', c.lock, level, 'PX', d)
  redis.call('PEXPIRE', c.level, d + a.memory)
  redis.call('DEL', c.n)
  return level, d
end
"""

# a: maxlen, attempt, slot_ttl, base, ceiling, memory, keys[{limit, lockable, event}] (the
# event recorded when that counter's lock refuses the attempt).
_BEGIN = (
    _CLOCK
    + _EPOCH
    + _ARGS
    + _XADD
    + _LOCK
    + """
for i, c in ipairs(counters) do
  if c.lockable then
    local ttl = redis.call('PTTL', c.lock)
    if ttl > 0 then
      xadd(c.event)
      return {now, 0, i, ttl}
    end
  end
end
-- Confirmed failures at the limit without a lock (counted while the lockout was off, or
-- before the limit was lowered): the lock is due now, not a busy answer until the window ends.
for i, c in ipairs(counters) do
  if c.lockable then
    local failures = tonumber(redis.call('GET', c.n) or '0')
    if failures >= c.limit then
      local level, d = lock(c)
      xadd(c.event)
      return {now, 0, i, d, level, failures}
    end
  end
end
if repeated() then
  xadd(a.repeat_event)
  return {now, 2, 0, 0}
end
for _, c in ipairs(counters) do
  if c.lockable then
    redis.call('ZREMRANGEBYSCORE', c.f, '-inf', now)
    local failures = tonumber(redis.call('GET', c.n) or '0')
    local shared = redis.call('ZSCORE', c.f, a.attempt)
    if not shared and failures + redis.call('ZCARD', c.f) + c.reserved >= c.limit then
      return {now, 0, 0, 0}
    end
  end
end
for _, c in ipairs(counters) do
  if c.lockable then
    redis.call('ZADD', c.f, now + a.slot_ttl, a.attempt)
    redis.call('PEXPIRE', c.f, a.slot_ttl)
  end
end
return {now, 1, 0, 0}
"""
)

# a: maxlen, attempt, window, base, ceiling, memory, event, keys[{limit, lockable, event}]
# (the event recorded instead when that counter locks).
_FAIL = (
    _CLOCK
    + _EPOCH
    + _ARGS
    + _XADD
    + _LOCK
    + """
local out = {now, 1}
local payload = a.event
if repeated() then
  for _, c in ipairs(counters) do redis.call('ZREM', c.f, a.attempt) end
  xadd(a.repeat_event)
  return {now, 2}
end
for i, c in ipairs(counters) do
  redis.call('ZREM', c.f, a.attempt)
  local n = redis.call('INCR', c.n)
  if n == 1 then redis.call('PEXPIRE', c.n, a.window) end
  if a.memory_n > 0 then
    redis.call('LPUSH', c.r, a.attempt)
    redis.call('LTRIM', c.r, 0, a.memory_n - 1)
    redis.call('PEXPIRE', c.r, a.window)
  end
  if c.lockable and n >= c.limit and redis.call('PTTL', c.lock) <= 0 then
    local level, d = lock(c)
    if #out == 2 then payload = c.event end
    table.insert(out, i)
    table.insert(out, d)
    table.insert(out, level)
    table.insert(out, n)
  end
end
xadd(payload)
return out
"""
)

# KEYS: f per key.  ARGV: deadline, attempt.
_RELEASE = (
    _CLOCK
    + """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
return {now, 1}
"""
)

# KEYS: stream; seq; epoch (unchecked: events count nothing).  ARGV: deadline, maxlen, events...
_APPEND = (
    _CLOCK
    + "local maxlen = ARGV[2]\n"
    + _XADD
    + """
for i = 3, #ARGV do xadd(ARGV[i]) end
return {now, 1}
"""
)

# KEYS: per row (n, lock, level); epoch.  ARGV: check, epoch value, then per row (failures,
# their ttl, lock ttl, level, level ttl).  Merges the database's rows into Redis so that each
# count is the larger of the two, the longer lock and the higher level win (a lock copied in
# starts a new count, as it does where it was decided); idempotent.  With ``check`` does
# nothing when the epoch is already set (another process copied first); sets the epoch when
# given one (the last batch).
_MERGE = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[#KEYS]) == 1 then return 0 end
for i = 0, (#KEYS - 1) / 3 - 1 do
  local n, lock, level = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local a = 3 + i * 5
  local failures, failures_ttl = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local lock_ttl, lock_level, level_ttl = tonumber(ARGV[a + 2]), ARGV[a + 3], tonumber(ARGV[a + 4])
  if lock_ttl > 0 and lock_ttl > redis.call('PTTL', lock) then
    redis.call('SET', lock, lock_level, 'PX', lock_ttl)
    redis.call('DEL', n)
  end
  if failures > 0 and failures_ttl > 0 and failures > tonumber(redis.call('GET', n) or '0') then
    redis.call('SET', n, failures, 'PX', failures_ttl)
  end
  if level_ttl > 0 and tonumber(lock_level) >= tonumber(redis.call('GET', level) or '0') then
    redis.call('SET', level, lock_level, 'PX', math.max(level_ttl, redis.call('PTTL', level)))
  end
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[#KEYS], ARGV[2]) end
return 1
"""

# KEYS: stream, delivered, dropped.  ARGV: group, consumer, count.
# Reads new entries for the group and counts the ones trimmed before anyone read them (a gap
# in the sequence numbers), atomically with the read so that two drains cannot miscount.
_READ = """
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                     'STREAMS', KEYS[1], '>')
if not r then return {0, {}} end
local entries = r[1][2]
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local dropped = 0
for _, e in ipairs(entries) do
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'seq' then
      local seq = tonumber(f[j + 1])
      if seq > prev + 1 then dropped = dropped + seq - prev - 1 end
      if seq > prev then prev = seq end
    end
  end
end
redis.call('SET', KEYS[2], prev)
if dropped > 0 then redis.call('INCRBY', KEYS[3], dropped) end
return {dropped, entries}
"""


class Late(Exception):
    """Redis ran the script after its deadline: it did nothing."""


class Lost(Exception):
    """Redis lost its epoch again right after the database's counters were copied in."""


#: rows per seeding script (each batch is one atomic call)
SEED_BATCH = 500


def _location(alias: str) -> tuple[str, dict[str, Any]]:
    """The cache's first (primary) server URL, and its connection options (credentials, TLS,
    db) without the ones this client sets itself."""
    config = settings.CACHES[alias]
    location = config["LOCATION"]
    if isinstance(location, list | tuple):
        location = location[0]
    skip = {"pool_class", "parser_class", "serializer", "socket_timeout", "socket_connect_timeout"}
    options = {k: v for k, v in (config.get("OPTIONS") or {}).items() if k not in skip}
    return str(location).split(",")[0].strip(), options


def _client(cache: Any, alias: str, timeout: float) -> Any:
    """This store's own client to the cache's Redis, whose connect and read timeouts are
    ``COUNTER_TIMEOUT``: from Django's Redis cache's ``LOCATION`` and ``OPTIONS``; for
    django-redis, from the connection settings of its client (``get_redis_connection``:
    credentials, TLS, db, whatever its ``OPTIONS`` say).  A django-redis client on a pool of
    another kind (Sentinel) is used as it is, with its own timeouts."""
    import redis

    from . import redis_client_library

    own = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry_on_timeout": False}
    if redis_client_library(cache) == "django-redis":
        from django_redis import get_redis_connection

        theirs = get_redis_connection(alias)
        pool = theirs.connection_pool
        if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
            return theirs
        kwargs = {**pool.connection_kwargs, **own}
        return redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
    url, options = _location(alias)
    return redis.Redis.from_url(url, **options, **own)


class RedisCounters:
    """Counters in the Redis of the Django cache ``COUNTER_CACHE`` (its key prefix too), on
    this store's own client whose connect and read timeouts are ``COUNTER_TIMEOUT``."""

    def __init__(self, cache: Any, alias: str | None = None, seed: Any = None) -> None:
        self.cache = cache
        #: the database's live counter rows (``DatabaseCounters.live_rows``), copied in when
        #: this Redis turns out to have lost them
        self.seed = seed
        alias = alias or app_settings.COUNTER_CACHE
        timeout = app_settings.COUNTER_TIMEOUT.total_seconds()
        self.timeout_ms = int(timeout * 1000)
        self.client = _client(cache, alias, timeout)
        self._scripts = {
            name: self.client.register_script(source)
            for name, source in (
                ("begin", _BEGIN),
                ("fail", _FAIL),
                ("release", _RELEASE),
                ("append", _APPEND),
                ("read", _READ),
                ("merge", _MERGE),
            )
        }
        self.offset_ms = 0  # Redis clock minus ours, learnt from each answer
        self._warned = False
        self._lock = threading.Lock()
        self.stream = self._key("auth401:events")
        self.seq = self._key("auth401:events:seq")
        self.delivered = self._key("auth401:events:delivered")
        self.dropped = self._key("auth401:events:dropped")
        self.epoch = self._key("auth401:epoch")

    def _key(self, name: str) -> str:
        return str(self.cache.make_and_validate_key(name))

    def names(self, key: str) -> tuple[str, str, str, str, str]:
        base = self._key(f"auth401:{key}")
        return f"{base}:n", f"{base}:lock", f"{base}:level", f"{base}:f", f"{base}:r"

    def _run(self, name: str, keys: list[str], args: list[Any]) -> list[Any]:
        late = restored = False
        while True:
            sent = now_ms()
            deadline = sent + self.offset_ms + self.timeout_ms
            out = self._scripts[name](keys=keys, args=[deadline, *args], client=self.client)
            self._clock(int(out[0]), sent)
            status = int(out[1])
            if status >= 0:
                return out
            if status == -2:
                # No epoch: this Redis lost the counters.  Copy the database's in, again.
                if restored:
                    raise Lost(name)
                restored = True
                self.restore()
                continue
            # Run after its deadline: it did nothing.  An answer that came back in time
            # means the clocks disagreed (the offset is learnt now): once more.
            if late:
                raise Late(name)
            late = True

    def _clock(self, redis_now: int, sent: int) -> None:
        offset = redis_now - (sent + now_ms()) // 2
        self.offset_ms = offset
        if abs(offset) > 1000 and not self._warned:
            self._warned = True
            logger.warning(
                "auth401: the Redis clock and this server's differ by %.1f s; counter "
                "deadlines use Redis time",
                offset / 1000,
            )

    def _names_of(self, keys: list[Key]) -> list[str]:
        names = [name for key in keys for name in self.names(key.name)]
        return [*names, self.stream, self.seq, self.epoch]

    @staticmethod
    def _args(
        keys: list[Key],
        events: dict[str, dict],
        default: dict,
        reserved: dict[str, int] | None = None,
        **named: Any,
    ) -> str:
        """The named arguments of ``begin`` and ``fail`` (see ``_ARGS``), as one JSON text."""
        _window, base, ceiling, memory = policy()
        reserved = reserved or {}
        per_key = [
            {
                "limit": key.limit,
                "lockable": key.lockable,
                "event": json.dumps(events.get(key.kind, default)),
                "reserved": reserved.get(key.name, 0),
            }
            for key in keys
        ]
        policy_args = {
            "base": base,
            "ceiling": ceiling,
            "memory": memory,
            "memory_n": app_settings.REPEATED_PASSWORD_MEMORY,
            "repeat_event": json.dumps(events.get("repeat", default)),
        }
        return json.dumps(
            {"maxlen": STREAM_MAXLEN, **policy_args, **named, "keys": per_key},
            separators=(",", ":"),
        )

    def begin(
        self,
        keys: list[Key],
        attempt: str,
        refusals: dict[str, dict],
        *,
        reserved: dict[str, int] | None = None,
    ) -> Begin:
        """``reserved``: per key, places in flight Redis does not hold (attempts the database
        admitted while Redis was away, still being checked): they count in the bound."""
        args = self._args(keys, refusals, {}, reserved or {}, attempt=attempt, slot_ttl=SLOT_TTL_MS)
        out = self._run("begin", self._names_of(keys), [args])
        if int(out[1]) == 1:
            return Begin(True, store=self)
        if int(out[1]) == 2:
            return Begin(False, store=self, repeat=True)
        index = int(out[2])
        if not index:
            return Begin(False, store=self)
        key, ms = keys[index - 1], int(out[3])
        # Six values: the lock was decided by this call (a count already at the limit).
        lock = Lock(key, ms, int(out[4]), int(out[5])) if len(out) > 4 else None
        return Begin(False, key, ms, store=self, lock=lock)

    def fail(
        self,
        keys: list[Key],
        attempt: str,
        event: dict,
        locked: dict[str, dict],
        *,
        admitted_by: Any = None,
    ) -> list[Lock]:
        return self.counted_fail(keys, attempt, event, locked)[1]

    def counted_fail(
        self, keys: list[Key], attempt: str, event: dict, locked: dict[str, dict]
    ) -> tuple[bool, list[Lock]]:
        """``fail``, and whether it counted (False: the same wrong password failed
        meanwhile, an identical attempt in flight; its ``repeat`` event is recorded)."""
        window = policy()[0]
        args = self._args(
            keys, locked, event, attempt=attempt, window=window, event=json.dumps(event)
        )
        out = self._run("fail", self._names_of(keys), [args])
        if int(out[1]) == 2:
            return False, []
        return True, [
            Lock(keys[int(out[i]) - 1], int(out[i + 1]), int(out[i + 2]), int(out[i + 3]))
            for i in range(2, len(out), 4)
        ]

    def release(self, keys: list[Key], attempt: str, *, admitted_by: Any = None) -> None:
        self._run("release", [self.names(k.name)[3] for k in keys], [attempt])

    def append(self, events: list[dict]) -> None:
        if events:
            payload = [json.dumps(e) for e in events]
            self._run("append", [self.stream, self.seq, self.epoch], [STREAM_MAXLEN, *payload])

    def peek(self, key: str) -> Peek:
        n, lock, level, flight, _ = self.names(key)
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(self.epoch)
            pipe.get(n)
            pipe.pttl(lock)
            pipe.get(level)
            pipe.zcount(flight, now_ms() + self.offset_ms, "+inf")
            epoch, failures, ttl, lock_level, flying = pipe.execute()
            if epoch:
                break
            self.restore()
        return Peek(int(failures or 0), max(0, int(ttl)), int(lock_level or 0), int(flying))

    def clear(self, key: str) -> None:
        self.client.delete(*self.names(key))

    def forget_passwords(self, key: str) -> None:
        self.client.delete(self.names(key)[4])

    def merge(self, rows: list[Any]) -> None:
        """Merge database rows (``FailureCounter``) into Redis: after an outage, and for an
        attempt the database admitted that failed after Redis came back."""
        self.restore(rows, check=False)

    def restore(self, rows: list[Any] | None = None, *, check: bool = True) -> None:
        """Merge the database's live locks, remembered lock levels and counts (``rows``, else
        ``seed()``) into Redis, then set the epoch.  With ``check``, a process that finds the
        epoch already set (another copied first) stops there."""
        if rows is None:
            rows = list(self.seed()) if self.seed is not None else []
        now = now_ms()
        memory = policy()[3]
        entries: list[tuple[list[str], list[Any]]] = []
        for row in rows:
            n, lock, level, _, _ = self.names(row.counter_key)
            failures = row.failures if row.window_ends > now else 0
            lock_ttl = max(0, row.locked_until - now)
            level_ttl = max(0, row.locked_until + memory - now) if row.lock_level else 0
            values = [failures, max(0, row.window_ends - now), lock_ttl]
            entries.append(([n, lock, level], [*values, row.lock_level or 1, level_ttl]))
        batches = [entries[i : i + SEED_BATCH] for i in range(0, len(entries), SEED_BATCH)]
        for index, batch in enumerate(batches or [[]]):
            keys = [k for names, _ in batch for k in names]
            args = [v for _, values in batch for v in values]
            first, last = index == 0, index == len(batches or [[]]) - 1
            head = ["1" if check and first else "0", str(now) if last and check else ""]
            copied = self._scripts["merge"](
                keys=[*keys, self.epoch], args=[*head, *args], client=self.client
            )
            if not int(copied):
                return  # another process has copied them
        if check and entries:  # a new Redis with nothing to copy is no news
            logger.warning(
                "auth401: the counter Redis had no epoch (restarted without persistence, "
                "failed over, or new): %d locks and counts copied from the database",
                len(entries),
            )

    def prune(self) -> int:
        return 0  # Redis expires its own keys

    # The stream, for auth401.drain.
    def ensure_group(self, group: str) -> None:
        import redis

        try:
            self.client.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def pending(
        self, group: str, consumer: str, count: int, claim_idle_ms: int | None
    ) -> list[Any]:
        own = self.client.xreadgroup(group, consumer, {self.stream: "0"}, count=count)
        entries = list(own[0][1]) if own else []
        if claim_idle_ms is not None:
            claimed = self.client.xautoclaim(
                self.stream, group, consumer, claim_idle_ms, start_id="0-0", count=count
            )
            entries += list(claimed[1])
        return entries

    def ack(self, group: str, ids: list[Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.stream, group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()

    def forget_idle_consumers(self, group: str, idle_ms: int) -> int:
        """Remove consumers with nothing pending, idle for ``idle_ms``."""
        forgotten = 0
        for consumer in self.client.xinfo_consumers(self.stream, group):
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) > idle_ms:
                self.client.xgroup_delconsumer(self.stream, group, consumer["name"])
                forgotten += 1
        return forgotten

    def read(self, group: str, consumer: str, count: int) -> tuple[int, list[Any]]:
        dropped, entries = self._scripts["read"](
            keys=[self.stream, self.delivered, self.dropped],
            args=[group, consumer, count],
            client=self.client,
        )
        return int(dropped), list(entries or [])

    def waiting(self) -> int:
        return int(self.client.xlen(self.stream))
