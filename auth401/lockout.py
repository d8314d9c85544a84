"""The lockout policy: which counters an attempt touches, the in-flight bound, locks and their
mirrors, allow- and deny-lists.  Storage is ``auth401.counters``; the flow of a password login
is ``auth401.decision``.

A lock follows confirmed failures only.  Before a password is checked, ``begin`` asks the
store to admit the attempt: a locked key refuses it (no password check), and otherwise the
attempt is admitted only while *failures + checks in flight* stay below every key's limit, so
under any concurrency at most ``FAILURE_LIMIT`` checks reach the hasher for one username
(``IP_FAILURE_LIMIT`` for one address) before it locks.  An attempt that finds the bound full
waits up to about a second, then gets ``login_busy`` (429, never a lock, never counted).  A
wrong password counts and may lock (``failed``); a right one only gives its place back
(``released``): a good login never resets an attacker's count.

Keys (``LOCKOUT_KEYS``): ``username`` -- one per account when the username names one (``u:``
+ a hash of its primary key, whatever spelling matched), else one per normalised name (a hash
of the NFKC case-folded name); ``ip`` -- the client address (IPv6: its /64); ``username+ip``
-- the pair.  Unknown usernames are counted and locked exactly like real ones.

A failure counted in Redis, and a lock it decides, is written through to the ``FailureCounter``
row before the answer (``counters``), so that it holds when Redis is down or has lost it; for
real accounts the lock is also shown on ``AccountStatus`` (``automatic=True``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.db import Error as DatabaseLibraryError
from django.utils.crypto import salted_hmac

from .conf import app_settings
from .counters import Begin, Key, Lock, get_store, lock_duration, policy
from .events import normalise_username as normalise_username

logger = logging.getLogger("auth401")

#: how long an attempt waits in all for a place in flight before ``login_busy`` (seconds)
BUSY_WAITS = (0.05, 0.1, 0.2, 0.3, 0.35)
#: ``retry_after`` of ``login_busy`` (seconds)
BUSY_RETRY_AFTER = 1
#: ``retry_after`` of ``lockout_unavailable`` (seconds): about when Redis is tried again
UNAVAILABLE_RETRY_AFTER = 5
#: the note of a repeated wrong password's event
REPEAT_NOTE = "repeat: the same wrong password as lately, not counted again"
#: refusals that name no one (recorded alike for real and unknown names)
NAMELESS_CODES = frozenset({"login_busy", "lockout_unavailable"})


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace")).hexdigest()[:40]


def username_key(username: str, user: Any = None) -> str:
    """The username counter: the normalised name (NFKC, case-folded) of the account when
    ``user`` is known, else of the name as typed.  Every spelling the lockout folds together
    shares it, whether or not an account answers to it (``ALICE`` counts on ``alice``'s
    counter, as ``GHOST`` does on ``ghost``'s), so no spelling tells a real name from an
    unknown one; a spelling the database matches to an account on its own (a case- or
    accent-insensitive collation) counts on that account's counter.  Either way one hash of
    a short text: real and unknown names cost the same."""
    name = user.get_username() if user is not None and user.pk is not None else username
    return "u:" + _digest(normalise_username(name))


def ip_key(ip: str) -> str:
    """IPv4: the address.  IPv6: its /64, since one client usually holds a whole /64 and
    could otherwise rotate through it past ``IP_FAILURE_LIMIT``."""
    return "ip:" + address_text(ip)


def address_text(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def pair_key(user_key: str, ip: str) -> str:
    return "up:" + _digest(f"{user_key}|{address_text(ip)}")


def _in(ip: str | None, networks: tuple[Any, ...]) -> bool:
    if ip is None or not networks:
        return False
    address = ipaddress.ip_address(ip)
    return any(address.version == n.version and address in n for n in networks)


def address_denied(ip: str | None) -> bool:
    """``ALWAYS_LOCK_NETWORKS``: refused with ``address_locked``, before anything else."""
    return app_settings.LOCKOUT_ENABLED and _in(ip, app_settings.always_lock_networks)


def device_key(device_id: Any) -> str:
    return f"d:{device_id}"


def keys_for(username: str, user: Any, ip: str | None, device: Any = None) -> list[Key]:
    """The counters an attempt touches, addresses first (their lock is answered first).  A
    trusted ``device`` (``devices.trusted``) counts on its own key instead of the username's
    (and the pair's)."""
    enabled = app_settings.LOCKOUT_ENABLED
    kinds = app_settings.LOCKOUT_KEYS
    user_key = username_key(username, user)
    keys: list[Key] = []
    if ip is not None and "ip" in kinds:
        lockable = enabled and not _in(ip, app_settings.never_lock_networks)
        keys.append(Key(ip_key(ip), "ip", app_settings.IP_FAILURE_LIMIT, lockable))
    if device is not None:
        if "username" in kinds or "username+ip" in kinds:
            limit = app_settings.DEVICE_FAILURE_LIMIT
            keys.append(Key(device_key(device.pk), "device", limit, enabled))
        return keys
    if "username" in kinds:
        keys.append(Key(user_key, "username", app_settings.FAILURE_LIMIT, enabled))
    if ip is not None and "username+ip" in kinds:
        keys.append(Key(pair_key(user_key, ip), "username+ip", app_settings.FAILURE_LIMIT, enabled))
    return keys


#: how the audit trail, the signals and the commands name each kind of key
KIND_LABELS = {
    "username": "username",
    "ip": "address",
    "username+ip": "username+address",
    "device": "device",
}

#: the code a refusal by each kind of key answers
REFUSAL_CODES = {
    "ip": "address_locked",
    "username": "account_locked",
    "username+ip": "account_locked",
    "device": "account_locked",
}


def new_attempt() -> str:
    """A random attempt id (tests, and callers with no password to fingerprint)."""
    return uuid.uuid4().hex


#: hex digits of a password fingerprint: 32 bits
FINGERPRINT_HEX = 8


def fingerprint(username: str, user: Any, password: Any) -> str:
    """The attempt's keyed, truncated password fingerprint, computed once per attempt: an
    HMAC-SHA256 under a key derived from ``SECRET_KEY`` of the username counter and the
    password, cut to 32 bits.  Identical attempts (same name, same password) share one
    place in flight with it, and a wrong one remembered under it is not counted again.
    Without ``SECRET_KEY`` it is useless for guessing; with it, 32 bits match about one
    password in four billion, so a remembered fingerprint does not single out a wrong
    password (typos of the right one included) from a large list, while two different
    passwords collide among a key's few remembered ones once in about a billion tries
    (and a collision only spares a count: the answer stays ``credentials_invalid``)."""
    text = f"{username_key(username, user)}\0{password}"
    digest = salted_hmac("auth401.lockout.password-fingerprint", text, algorithm="sha256")
    return digest.hexdigest()[:FINGERPRINT_HEX]


def forget_passwords(user: Any) -> None:
    """A password change: the account's remembered wrong passwords are forgotten (one of
    them may be the new password)."""
    try:
        get_store().forget_passwords(username_key(user.get_username(), user))
    except Exception:
        logger.exception("auth401: remembered wrong passwords could not be forgotten")


def begin(keys: list[Key], attempt: str, refusals: dict[str, dict]) -> Begin:
    """Ask for a place in flight, waiting up to about a second while the bound is full.
    When no store can count (Redis down and the database refusing, or the database store
    alone failing) the attempt is refused (``Begin.unavailable``: ``lockout_unavailable``)
    before anything tells a real name from an unknown one; with ``LOCKOUT_FAIL_OPEN`` it
    goes on uncounted instead.  Logged either way."""
    try:
        store = get_store()
        answer = store.begin(keys, attempt, refusals)
        for pause in BUSY_WAITS:
            if not answer.busy:
                break
            time.sleep(pause)
            answer = store.begin(keys, attempt, refusals)
    except DatabaseLibraryError:
        if app_settings.LOCKOUT_FAIL_OPEN:
            logger.exception(
                "auth401: no counter store answers; the password is checked uncounted "
                "(LOCKOUT_FAIL_OPEN)"
            )
            return Begin(True, store=None)
        logger.exception(
            "auth401: no counter store answers; the login is refused (lockout_unavailable)"
        )
        return Begin(False, unavailable=True)
    return answer


def failed(
    answer: Begin, keys: list[Key], attempt: str, event: dict, locked: dict[str, dict]
) -> list[Lock]:
    """A wrong password: counted, with its event (``locked[kind]`` instead when the attempt
    locks a key of that kind), in one call; answers the new locks."""
    try:
        return get_store().fail(keys, attempt, event, locked, admitted_by=answer.store)
    except DatabaseError:
        logger.exception("auth401: a failure could not be counted nor its audit event recorded")
        return []


def released(answer: Begin, keys: list[Key], attempt: str) -> None:
    """A right password (or an attempt that checked none): its place in flight goes back."""
    try:
        get_store().release(keys, attempt, admitted_by=answer.store)
    except DatabaseError:
        logger.exception("auth401: an in-flight entry could not be removed (it expires)")


def _account(username: str) -> Any:
    """The account a username names, for reports and admin actions (not the login path)."""
    from django.contrib.auth import get_user_model

    model = get_user_model()
    try:
        return model._default_manager.get_by_natural_key(username)
    except (model.DoesNotExist, model.MultipleObjectsReturned, ValueError, TypeError):
        return None


def clear(username_or_ip: str, *, ip: bool = False, user: Any = None) -> None:
    """Forget a counter and its lock (an admin unlock): an address's, or a username's (its
    account's counter and the counter of the name as typed)."""
    if ip:
        get_store().clear(ip_key(username_or_ip))
        return
    user = user if user is not None else _account(username_or_ip)
    get_store().clear(username_key(username_or_ip))
    if user is not None:
        get_store().clear(username_key(username_or_ip, user))


def peek(username_or_ip: str, *, ip: bool = False, user: Any = None) -> Any:
    """The counter of an address, or of a username (its account's when it names one)."""
    if ip:
        return get_store().peek(ip_key(username_or_ip))
    user = user if user is not None else _account(username_or_ip)
    return get_store().peek(username_key(username_or_ip, user))


@dataclass(frozen=True)
class AddressLock:
    """A locked client address (IPv4) or network (IPv6 /64), for the admin dashboard."""

    address: str
    seconds_left: float
    #: failures that led to the lock (from its ``auto_lock`` event; None: not recorded yet)
    failures: int | None


def locked_addresses() -> list[AddressLock]:
    """Addresses under an automatic lock now, longest first (with either store), each with
    the failures its own ``auto_lock`` event counted."""
    rows = get_store().locked("ip:")
    counts = lock_failures([held.name[3:] for held in rows])
    return [
        AddressLock(held.name[3:], held.locked_ms / 1000, counts.get(held.name[3:]))
        for held in rows
    ]


#: the number in an ``auto_lock`` event's note ("... after 50 failed logins ...")
_LOCK_FAILURES = re.compile(r"after (\d+) failed")


def lock_failures(addresses: list[str]) -> dict[str, int]:
    """How many failures led to the current lock of each address (``address_text`` form):
    read from the newest ``auto_lock`` event recorded for it within the longest lock
    (one query); an address without one (its event not yet drained) is left out."""
    if not addresses:
        return {}
    from datetime import timedelta

    from django.utils import timezone

    from .models import AuthEvent

    wanted = set(addresses)
    since = timezone.now() - app_settings.LOCKOUT_MAX_DURATION - timedelta(minutes=1)
    found: dict[str, int] = {}
    rows = (
        # An address's lock names no username (a username's lock from it does)
        AuthEvent.objects.filter(
            code="auto_lock", ip__isnull=False, username="", created_at__gte=since
        )
        .order_by("-created_at")
        .values_list("ip", "note")
    )
    for ip, note in rows.iterator():
        try:
            text = address_text(str(ip))
        except ValueError:
            continue
        match = _LOCK_FAILURES.search(note or "")
        if text in wanted and text not in found and match:
            found[text] = int(match.group(1))
            if len(found) == len(wanted):
                break
    return found


# --- read-only twins of begin/failed, for dry runs (auth401_explain, auth401_status) ----------


def _would_lock(key: Key, peeked: Any, failures: int) -> Lock:
    """The lock a store would set now on ``key`` (its next level), as ``begin``/``fail`` do."""
    _, base, ceiling, _memory = policy()
    level = peeked.level + 1 if peeked.level else 1
    return Lock(key, lock_duration(level, base, ceiling), level, failures)


def peek_begin(keys: list[Key]) -> Begin:
    """What ``begin`` would answer now, read with ``peek`` (nothing taken, locked or recorded),
    by the stores' rules in their order: a locked key refuses; a key whose confirmed failures
    reach its limit without a lock refuses (the lock ``begin`` would set is ``Begin.lock``);
    a full in-flight bound is busy (``begin`` would wait about a second first); else
    admitted.  Only lockable keys take part, as in the stores."""
    try:
        store = get_store()
        peeked = [(key, store.peek(key.name)) for key in keys if key.lockable]
    except DatabaseLibraryError:
        logger.exception("auth401: the failure counters could not be read (peek)")
        # As begin would answer when no store can count.
        return (
            Begin(True, store=None)
            if app_settings.LOCKOUT_FAIL_OPEN
            else Begin(False, unavailable=True)
        )
    for key, seen in peeked:
        if seen.locked_ms > 0:
            return Begin(False, key, seen.locked_ms)
    for key, seen in peeked:
        if seen.failures >= key.limit:
            lock = _would_lock(key, seen, seen.failures)
            return Begin(False, key, lock.ms, lock=lock)
    for key, seen in peeked:
        if seen.failures + seen.in_flight >= key.limit:
            return Begin(False)
    return Begin(True)


def would_lock(keys: list[Key]) -> list[Lock]:
    """The locks ``failed`` would set if one more wrong password were counted now (read with
    ``peek``; nothing counted): every lockable, unlocked key one failure short of its limit."""
    try:
        store = get_store()
        peeked = [(key, store.peek(key.name)) for key in keys if key.lockable]
    except DatabaseLibraryError:
        logger.exception("auth401: the failure counters could not be read (peek)")
        return []
    return [
        _would_lock(key, seen, seen.failures + 1)
        for key, seen in peeked
        if seen.locked_ms <= 0 and seen.failures + 1 >= key.limit
    ]


def peek_key(key: Key) -> Any:
    """The counter of one key (read only)."""
    return get_store().peek(key.name)


def lock_address(ip: str, until_ms: int) -> None:
    """Lock a client address (an admin's lock) until ``until_ms`` (epoch ms), in the database
    store (never shortening a longer lock there) and, with Redis, in Redis too (its counters
    of that address are replaced by the database's row).  It ends like an automatic lock, or
    with ``clear``."""
    key = ip_key(ip)
    level = max(1, get_store().peek(key).level)
    get_store().lock(key, until_ms, level)
