"""What the user's admin page says about "why can't this person log in": the account's state,
its reason, who set it, since and until when (automatic locks included), the failure counters,
and any lock on the client addresses the user's recent events came from.

Every fact is read where the login reads it: the ``AccountStatus`` row, Django's
``is_active``, and the counter store (``auth401.lockout.peek``, Redis or the database).  The
addresses are those of the user's last ``RECENT_EVENTS`` events (an exact match on the indexed
normalised username, as the lockout counts it), at most ``ADDRESSES`` of them.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from auth401 import lockout
from auth401.conf import app_settings
from auth401.counters import get_store
from auth401.models import AccountStatus, AuthEvent

from .filters import username_match

logger = logging.getLogger("auth401")

#: How many of the user's latest events give the addresses to check.
RECENT_EVENTS = 50
#: How many distinct addresses (latest first) are checked.
ADDRESSES = 5


@dataclass(frozen=True)
class Counter:
    """One failure counter: confirmed failures in the window, its limit, the lock's end."""

    failures: int
    limit: int
    ends: datetime | None
    level: int
    in_flight: int

    @property
    def locked(self) -> bool:
        return self.ends is not None


@dataclass(frozen=True)
class AddressFacts:
    """A client address from the user's events: its lock, the pair lock of this user from it,
    and whether ``ALWAYS_LOCK_NETWORKS`` refuses it."""

    address: str
    #: the address as the lockout counts it (IPv6: its /64)
    counted_as: str
    last_seen: datetime
    address_counter: Counter | None
    pair_counter: Counter | None
    denied: bool

    @property
    def refused(self) -> bool:
        return self.denied or any(
            c is not None and c.locked for c in (self.address_counter, self.pair_counter)
        )


@dataclass
class LoginFacts:
    username: str
    #: the state in force: "active", "locked" or "suspended" (a lock whose end passed: active)
    state: str
    is_active: bool
    automatic: bool = False
    reason: str = ""
    actor: Any = None
    since: datetime | None = None
    ends: datetime | None = None
    status: AccountStatus | None = None
    #: the username counter (None: the lockout does not count usernames)
    counter: Counter | None = None
    addresses: list[AddressFacts] = field(default_factory=list)
    #: the counter store did not answer (logged): counters and addresses are not shown
    counters_failed: bool = False

    @property
    def refused_addresses(self) -> list[AddressFacts]:
        return [a for a in self.addresses if a.refused]


def _counter(peeked: Any, limit: int, now: datetime) -> Counter:
    ends = now + timedelta(milliseconds=peeked.locked_ms) if peeked.locked_ms > 0 else None
    return Counter(peeked.failures, limit, ends, peeked.level, peeked.in_flight)


def recent_addresses(username: str) -> list[tuple[str, datetime]]:
    """The distinct client addresses of the user's last ``RECENT_EVENTS`` events, latest
    first, at most ``ADDRESSES``: one index range on (normalised username, time)."""
    seen: dict[str, datetime] = {}
    rows = (
        AuthEvent.objects.filter(username_match(username), ip__isnull=False)
        .order_by("-created_at")
        .values_list("ip", "created_at")[:RECENT_EVENTS]
    )
    for ip, created_at in rows:
        if ip is not None and ip not in seen:
            seen[ip] = created_at
            if len(seen) == ADDRESSES:
                break
    return list(seen.items())


def login_facts(user: Any, now: datetime | None = None) -> LoginFacts:
    """Everything the page shows about ``user``'s logins, read now."""
    now = now or timezone.now()
    status = AccountStatus.objects.filter(user=user).select_related("changed_by").first()
    username = user.get_username()
    facts = LoginFacts(
        username=username,
        state=status.effective_state(now) if status else AccountStatus.State.ACTIVE,
        is_active=bool(getattr(user, "is_active", True)),
        status=status,
    )
    if status is not None and facts.state != AccountStatus.State.ACTIVE:
        facts.automatic = status.automatic
        facts.reason = status.reason
        facts.actor = status.changed_by
        facts.since = status.changed_at
        facts.ends = status.locked_until if facts.state == AccountStatus.State.LOCKED else None
    try:
        _read_counters(facts, user, now)
    except Exception:
        logger.exception(
            "auth401 admin: the failure counters of user %s could not be read", user.pk
        )
        facts.counters_failed = True
    return facts


def _read_counters(facts: LoginFacts, user: Any, now: datetime) -> None:
    kinds = app_settings.LOCKOUT_KEYS
    store = get_store()
    user_key = lockout.username_key(facts.username, user)
    if "username" in kinds:
        facts.counter = _counter(store.peek(user_key), app_settings.FAILURE_LIMIT, now)
    for ip, last_seen in recent_addresses(facts.username):
        try:
            counted_as = lockout.address_text(ip)
        except ValueError:
            continue
        address = pair = None
        if "ip" in kinds:
            address = _counter(store.peek(lockout.ip_key(ip)), app_settings.IP_FAILURE_LIMIT, now)
        if "username+ip" in kinds:
            pair = _counter(
                store.peek(lockout.pair_key(user_key, ip)), app_settings.FAILURE_LIMIT, now
            )
        facts.addresses.append(
            AddressFacts(
                address=str(ipaddress.ip_address(ip)),
                counted_as=counted_as,
                last_seen=last_seen,
                address_counter=address,
                pair_counter=pair,
                denied=lockout.address_denied(ip),
            )
        )
