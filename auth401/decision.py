"""One decision for a username + password login: ``decide()``.

    credentials + account + counters  ->  verdict (a user, or a failure) + trace

``Auth401Backend`` calls it for every ``authenticate()``; ``auth401_explain`` and
``auth401_status`` call it with ``dry_run=True``: the same steps, each store call replaced by a
read-only one (``lockout.peek_begin`` for ``begin``, ``lockout.would_lock`` for ``failed``), so
no place in flight is taken and nothing is counted, recorded or mirrored, and the answer is the
code a real attempt would get now.

The steps, for real and unknown usernames alike (same queries, same hasher calls, same
counter calls, so neither answer nor timing tells whether a username exists):

1. ``lookup``: the user and its ``AccountStatus`` in one query (``users.load_user``); a
   denied network (``ALWAYS_LOCK_NETWORKS``) is refused first.
2. ``lock check``: one counter call (``lockout.begin``): a locked key refuses (its event is
   recorded in the same call), and so does a key whose confirmed failures already reach its
   limit (it locks now; the lock is mirrored), a full in-flight bound answers ``login_busy``.
3. ``password check``: the hasher runs, also for unknown usernames.
4. wrong: one counter call counts it, records its event and locks what reached its limit;
   right: one call gives the place back, then ``account state`` (``accounts.failure_for``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.utils import timezone

from . import accounts, counters, devices, events, lockout, notify, signals, state
from .accounts import cached_status, failure_for
from .client_ip import client_ip
from .conf import app_settings
from .counters import Lock
from .exceptions import Auth401Error
from .users import load_by_natural_key

#: ``decide(..., password=ASSUMED_RIGHT, dry_run=True)``: the attempt of the account's owner
ASSUMED_RIGHT: Any = object()


@dataclass
class Verdict:
    user: Any = None
    #: the account the username named (also when the verdict is a failure)
    account: Any = None
    failure: Auth401Error | None = None
    trace: list[tuple[str, str]] = field(default_factory=list)
    #: True when the failure's event is already recorded (by a counter call)
    recorded: bool = False

    def step(self, name: str, outcome: str) -> None:
        self.trace.append((name, outcome))


def lookup(username: Any) -> tuple[Any, bool]:
    """(the user or None, whether its AccountStatus was loaded with it)."""
    return load_by_natural_key(username)


def _auto_locked(user: Any, joined: bool) -> float | None:
    """Seconds left of an automatic lock on the joined AccountStatus (None: none)."""
    if user is None or not joined:
        return None
    row = cached_status(user)
    if row is None or not row.automatic or row.effective_state() != row.State.LOCKED:
        return None
    return (row.locked_until - timezone.now()).total_seconds() if row.locked_until else None


def decide(
    request: Any, username: Any, password: Any, *, scheme: str | None, dry_run: bool = False
) -> Verdict:
    """The verdict on one username + password attempt.  ``dry_run=True`` walks the same steps
    with read-only store calls (``lockout.peek_begin``, ``lockout.would_lock``): no place in
    flight taken, nothing counted, recorded or mirrored, and the same code a real attempt
    would get now (a busy bound answers ``login_busy`` at once instead of waiting).  A dry run
    also takes ``password=ASSUMED_RIGHT`` (the owner's own password, not checked) and
    ``username=None`` (any name: only the address's own counters)."""
    verdict = Verdict()
    ip = client_ip(request) if request is not None else None
    if lockout.address_denied(ip):
        verdict.step("lookup", "skipped: the address is in ALWAYS_LOCK_NETWORKS")
        verdict.failure = Auth401Error("address_locked", scheme=scheme)
        if not dry_run:
            events.store_now([events.for_failure(request, verdict.failure, username=username)])
            verdict.recorded = True
        return verdict
    user, joined = lookup(username)
    verdict.step("lookup", "found" if user is not None else "no such user")
    verdict.account = user
    user_id = getattr(user, "pk", None)
    device = devices.trusted(request, user)
    if device is not None:
        verdict.step("device", "trusted: counted on the device's own key")
    keys = lockout.keys_for(str(username), user, ip, device)
    if dry_run and username is None:  # any name from this address: its own counters only
        keys = [key for key in keys if key.kind == "ip"]

    # The attempt is named by its password fingerprint, computed once: identical attempts
    # share one place in flight, and a remembered wrong one is not counted again.
    attempt = lockout.fingerprint(str(username), user, password)
    # One event for this attempt, built once: whichever outcome is recorded (a refusal, a
    # wrong password, the lock it causes) is this event with its code; they share its id.
    wrong = events.build(
        request, "credentials_invalid", 401, scheme=scheme, username=username, user_id=user_id
    )
    refusals = {kind: events.retag(wrong, code) for kind, code in lockout.REFUSAL_CODES.items()}
    refusals["repeat"] = {**wrong, "note": lockout.REPEAT_NOTE}
    answer = lockout.peek_begin(keys) if dry_run else lockout.begin(keys, attempt, refusals)
    if answer.locked is not None:
        code = lockout.REFUSAL_CODES[answer.locked.kind]
        if answer.lock is not None:
            verdict.step("lock check", f"refused: {answer.locked.kind} at its limit, locks now")
        else:
            verdict.step("lock check", f"refused: {answer.locked.kind} locked")
        verdict.failure = Auth401Error(code, scheme=scheme, retry_after=answer.locked_ms / 1000)
        if dry_run:
            return verdict
        verdict.failure.event_id = refusals[answer.locked.kind]["event_id"]
        verdict.recorded = True
        events.announce(request, verdict.failure, refusals[answer.locked.kind])
        if answer.lock is not None:  # decided by this call: mirrored like any other
            mirror(request, [answer.lock], username=str(username), user=user, ip=ip)
        return verdict
    if answer.repeat:
        # A wrong password the counters remember: the same answer, no check, not counted.
        verdict.step("lock check", "repeat: a wrong password seen lately, not counted again")
        verdict.failure = Auth401Error("credentials_invalid", scheme=scheme)
        verdict.failure.event_id = refusals["repeat"]["event_id"]
        verdict.recorded = True
        events.announce(request, verdict.failure, refusals["repeat"])
        return verdict
    if answer.unavailable:
        verdict.step("lock check", "refused: no counter store answers")
        verdict.failure = Auth401Error(
            "lockout_unavailable", scheme=scheme, retry_after=lockout.UNAVAILABLE_RETRY_AFTER
        )
        return verdict
    if answer.busy:
        verdict.step("lock check", "busy: the in-flight bound is full")
        verdict.failure = Auth401Error(
            "login_busy", scheme=scheme, retry_after=lockout.BUSY_RETRY_AFTER
        )
        return verdict
    verdict.step("lock check", "admitted" + (" (dry run: nothing taken)" if dry_run else ""))
    left = None if device is not None else _auto_locked(user, joined)
    if left is not None and left > 0:
        # A lock mirrored on the account but unknown to the counters (they were reset):
        # refused before any password check, like the counters' own locks.
        if not dry_run:
            lockout.released(answer, keys, attempt)
        verdict.step("lock check", "refused: automatic lock on the account")
        verdict.failure = Auth401Error("account_locked", scheme=scheme, retry_after=left)
        return verdict

    if dry_run and password is ASSUMED_RIGHT:
        right = user is not None  # the owner's own attempt (auth401_status): not checked
    elif user is None:
        # Run the hasher once, as for a real user, so timing does not tell (Django #20760).
        get_user_model()().set_password(password)
        right = False
    elif dry_run:
        right = check_password(password, user.password)  # no hash upgrade saved
    else:
        right = user.check_password(password)
    verdict.step("password check", "right" if right else "wrong")
    if not right:
        failure = Auth401Error("credentials_invalid", scheme=scheme)
        event = wrong
        # The attempt that locks answers the lock (its event says so): the refusals' events
        # with this attempt's identity.
        if dry_run:
            locks = lockout.would_lock(keys)
        else:
            locks = lockout.failed(answer, keys, attempt, event, refusals)
        if locks:
            kind = locks[0].key.kind
            code = lockout.REFUSAL_CODES[kind]
            failure = Auth401Error(code, scheme=scheme, retry_after=locks[0].ms / 1000)
            event = refusals[kind]
            verdict.step("count", f"this failure reaches the {kind} limit: it locks")
        verdict.failure = failure
        if dry_run:
            return verdict
        failure.event_id = event["event_id"]
        events.announce(request, failure, event)
        verdict.recorded = True
        mirror(request, locks, username=str(username), user=user, ip=ip)
        return verdict
    if not dry_run:
        lockout.released(answer, keys, attempt)
    refusal = failure_for(
        user, scheme=scheme, password_login=True, trusted_device=device is not None
    )
    verdict.step("account state", refusal.code if refusal is not None else "may log in")
    verdict.user = user if refusal is None else None
    verdict.failure = refusal
    return verdict


def mirror(
    request: Any,
    locks: list[Lock],
    *,
    username: str,
    user: Any,
    ip: str | None,
) -> None:
    """After the answer: an ``auto_lock`` event per new lock (the counter row of the lock is
    written by the counter store).

    The worker does the same for real and unknown names: one event per lock.  When Redis
    decided the lock, the event goes to the stream and the drain applies an account's lock to
    its ``AccountStatus`` (``accounts.apply_auto_locks``), so no account-only work follows the
    answer that locked it.  With the database store (no stream), the account's lock is
    applied here."""
    if not locks:
        return
    in_redis = counters.stream() is not None and counters.redis_available()
    # The owner's email links back to the site as this request reached it.
    base = notify.base_url(request) if app_settings.NOTIFY_OWNER else None

    def write() -> None:
        held: list[events.Event] = []
        for lock in locks:
            until = timezone.now() + timedelta(milliseconds=lock.ms)
            # Which counter locked, its count and the lock's end (never in the HTTP answer).
            note = (
                f"Locked automatically after {lock.failures} failed logins "
                f"(counter: {lockout.KIND_LABELS[lock.key.kind]}; until {until:%Y-%m-%d %H:%M:%S} "
                "UTC)"
            )
            if lock.key.kind == "ip":
                event = events.build(None, "auto_lock", None, ip=ip, note=note)
                signals.address_locked.send_robust(
                    sender=Lock, address=ip, until=until, failures=lock.failures, key_kind="ip"
                )
            else:
                event = events.build(None, "auto_lock", None, username=username, ip=ip, note=note)
            if lock.key.kind == "username" and user is not None:
                event["user_id"] = user.pk
                event["account_lock"] = {
                    "seconds": lock.ms / 1000,
                    "failures": lock.failures,
                    "base_url": base,
                }
            held.append(event)
        if not (in_redis and _to_stream(held)):
            accounts.apply_auto_locks(held)

    if request is None:
        write()  # authenticate() without a request: nothing to wait for
    else:
        state.of(request).after_response(write)


def _to_stream(held: list[events.Event]) -> bool:
    """Append ``held`` to the Redis stream (the drain writes them); False when Redis fails."""
    stream = counters.stream()
    if stream is None or not counters.redis_available():
        return False
    try:
        stream.append(held)
    except Exception as exc:  # redis-py raises many types; none may reach the user
        counters.circuit.trip(exc)
        return False
    return True


def scheme_of(request: Any, default: str) -> str:
    """The scheme a password login came through (set on the request state by the
    authentication class), else ``default``."""
    if request is None:
        return default
    return state.of(request).scheme or default
