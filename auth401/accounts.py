"""The account API: every change of an account's auth401 state goes through here.

``lock``, ``suspend``, ``unlock`` and ``reinstate`` write the ``AccountStatus`` row, record an
``AuthEvent`` naming the actor, send the signals, and revoke the tokens and sessions issued
before a lock or suspension.  ``failure_for`` is the single account-state gate used by every
authentication class and the backend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.utils import timezone

from . import devices, events, lockout, signals
from .conf import app_settings
from .counters import Peek
from .exceptions import Auth401Error
from .models import AccountStatus, AuthEvent

logger = logging.getLogger("auth401")


class AccountChangeError(Exception):
    """An account change could not be applied and nothing of it was: the status, the
    counters, the revocation and the event stay as they were."""


State = AccountStatus.State


def _user(user_or_username: Any) -> Any:
    if isinstance(user_or_username, str):
        model = get_user_model()
        return model._default_manager.get_by_natural_key(user_or_username)
    return user_or_username


def cached_status(user: Any) -> AccountStatus | None:
    """The user's ``AccountStatus``, as ``users.load_user`` attached it (an unsaved one with
    the defaults stands for "no row": None)."""
    try:
        row = user.auth401_status
    except (AccountStatus.DoesNotExist, AttributeError):
        return None
    return row if row.pk is not None else None


def _change(
    user: Any,
    *,
    state: str,
    event: str,
    by: Any = None,
    reason: str = "",
    until: datetime | None = None,
    revoke: bool = False,
    only_from: tuple[str, ...] | None = None,
    automatic: bool = False,
    clear_counters: bool = False,
    event_id: str | None = None,
    ip: str | None = None,
    if_changed_at: datetime | None = None,
    locked_kwargs: dict[str, Any] | None = None,
) -> AccountStatus:
    now = timezone.now()
    try:
        with transaction.atomic():
            status, _ = AccountStatus.objects.select_for_update().get_or_create(user=user)
            previous = status.effective_state(now)
            if if_changed_at is not None and status.changed_at != if_changed_at:
                return status  # not the lock the caller means (an unlock link used before)
            if only_from is not None and previous not in only_from:
                if clear_counters:
                    lockout.clear(user.get_username(), user=user)
                    devices.clear_counters(user)
                return status
            status.state = state
            status.reason = reason[:255]
            status.locked_until = until if state == State.LOCKED else None
            status.changed_by = by
            status.changed_at = now
            status.automatic = automatic
            if revoke:
                status.tokens_valid_after = now
                devices.revoke_all(user, now=now)
            status.save()
            _event(event, user=user, by=by, note=reason, ip=ip, event_id=event_id)
            if clear_counters:
                # Last, inside the transaction: a failure here undoes the rest.
                lockout.clear(user.get_username(), user=user)
                devices.clear_counters(user)
    except DatabaseError as exc:
        raise AccountChangeError(
            f"The {event} of {user.get_username()!r} was not applied (nothing changed): {exc}"
        ) from exc
    user.auth401_status = status
    _announce(signals.account_status_changed, user=user, state=state, previous=previous, by=by)
    if state == State.LOCKED:
        _announce(signals.account_locked, user=user, until=until, by=by, **(locked_kwargs or {}))
    elif previous == State.LOCKED:
        _announce(signals.account_unlocked, user=user, by=by)
    return status


def _announce(signal: Any, **kwargs: Any) -> None:
    """Send ``signal`` about a change already committed: a receiver that raises is logged
    and cannot make the change look as if it had not happened."""
    for receiver, result in signal.send_robust(sender=AccountStatus, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "auth401: a receiver of an account change failed: %r",
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )


def lock(
    user: Any, *, until: datetime | timedelta | None = None, reason: str = "", by: Any = None
) -> AccountStatus:
    """Lock the account until ``until`` (a datetime or a duration; None: until unlocked)."""
    if isinstance(until, timedelta):
        until = timezone.now() + until
    return _change(
        user,
        state=State.LOCKED,
        event="admin_lock",
        by=by,
        reason=reason,
        until=until,
        revoke=True,
    )


def auto_lock(
    user: Any,
    *,
    seconds: float,
    failures: int,
    ip: str | None = None,
    request: Any = None,
    event_id: str | None = None,
    base_url: str | None = None,
) -> AccountStatus:
    """The lockout's lock, mirrored on the user's row; never over an admin lock or suspension.
    ``ip`` (the address of the attempt that locked) is on its event and, with ``request``
    when there is one, on the ``account_locked`` signal (the owner's email says them).
    ``event_id``: the id of the lock's ``auto_lock`` event (a drain that applies it twice
    writes it once)."""
    return _change(
        user,
        state=State.LOCKED,
        event="auto_lock",
        reason=f"Locked automatically after {failures} failed logins",
        until=timezone.now() + timedelta(seconds=seconds),
        only_from=(State.ACTIVE,),
        automatic=True,
        ip=ip,
        locked_kwargs={
            "ip": ip,
            "request": request,
            "base_url": base_url,
            "key_kind": "username",
            "failures": failures,
        },
        event_id=event_id,
    )


def apply_auto_locks(held: list[dict]) -> None:
    """Write ``auto_lock`` events; one that carries an account's lock (``account_lock``)
    is applied to the account's ``AccountStatus``, which records it under the same id."""
    rows = []
    for event in held:
        lock = event.pop("account_lock", None)
        if lock is None or event.get("user_id") is None:
            rows.append(event)
            continue
        created = datetime.fromisoformat(event["created_at"])
        left = lock["seconds"] - (timezone.now() - created).total_seconds()
        user = get_user_model()._default_manager.filter(pk=event["user_id"]).first()
        if user is None or left <= 0:
            continue  # the account is gone, or its lock is over already
        auto_lock(
            user,
            seconds=left,
            failures=lock["failures"],
            ip=event.get("ip"),
            event_id=event["event_id"],
            base_url=lock.get("base_url"),
        )
    if rows:
        events.write(rows)


def suspend(user: Any, *, reason: str = "", by: Any = None) -> AccountStatus:
    return _change(
        user, state=State.SUSPENDED, event="admin_suspend", by=by, reason=reason, revoke=True
    )


def _event(
    code: str,
    *,
    user: Any = None,
    by: Any = None,
    note: str = "",
    event_id: str | None = None,
    **kwargs: Any,
) -> None:
    """An account change's event, written in the caller's transaction."""
    from .counters.database import event_row

    actor_id = getattr(by, "pk", None)
    event = events.build(None, code, None, user=user, actor_id=actor_id, note=note, **kwargs)
    if event_id is not None:
        event["event_id"] = event_id
    event_row(event).save()


def unlock(
    user_or_username: Any,
    *,
    by: Any = None,
    reason: str = "",
    event: str = "admin_unlock",
    if_changed_at: datetime | None = None,
) -> AccountStatus | None:
    """End a lock (a suspension stays) and clear the username's failure counter, all or
    nothing (``AccountChangeError``).  For an unknown username only the counter is cleared
    (with an ``admin_unlock`` event), and None is returned.  ``event`` names the change
    (``self_service_unlock`` for the owner's unlock link); with ``if_changed_at`` nothing
    happens unless the account's status last changed then (the link's lock)."""
    try:
        user = _user(user_or_username)
    except get_user_model().DoesNotExist:
        username = str(user_or_username)
        try:
            with transaction.atomic():
                _event("admin_unlock", by=by, note=reason, username=username)
                lockout.clear(username)
        except DatabaseError as exc:
            raise AccountChangeError(f"The unlock of {username!r} was not applied: {exc}") from exc
        return None
    return _change(
        user,
        state=State.ACTIVE,
        event=event,
        by=by,
        reason=reason,
        only_from=(State.LOCKED,),
        clear_counters=True,
        if_changed_at=if_changed_at,
    )


def reinstate(user: Any, *, by: Any = None, reason: str = "") -> AccountStatus:
    """Make the account active again, whatever its state; its counters are cleared."""
    return _change(
        user,
        state=State.ACTIVE,
        event="admin_reinstate",
        by=by,
        reason=reason,
        clear_counters=True,
    )


def revoke_devices(user: Any, *, by: Any = None, reason: str = "") -> int:
    """Revoke every trusted device of ``user`` (its cookies no longer pass an automatic lock),
    with a ``devices_revoked`` event naming the actor; all or nothing.  How many it revoked."""
    try:
        with transaction.atomic():
            count = devices.revoke_all(user)
            note = f"{count} device(s)" + (f": {reason}" if reason else "")
            _event("devices_revoked", user=user, by=by, note=note)
    except DatabaseError as exc:
        raise AccountChangeError(
            f"The devices of {user.get_username()!r} were not revoked: {exc}"
        ) from exc
    return count


def unlock_address(address: str, *, by: Any = None, reason: str = "") -> bool:
    """End the automatic lock of a client address (an IP, or an IPv6 /64 network as text)
    and clear its counter, with an ``admin_unlock`` event naming it; all or nothing.
    Answers whether the address was locked."""
    import ipaddress

    text = str(address).strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{address!r} is not an IP address or network") from exc
    ip = str(network.network_address)
    was_locked = lockout.peek(ip, ip=True).locked_ms > 0
    note = f"address {lockout.address_text(ip)}" + (f": {reason}" if reason else "")
    try:
        with transaction.atomic():
            _event("admin_unlock", by=by, note=note, ip=ip)
            lockout.clear(ip, ip=True)
    except DatabaseError as exc:
        raise AccountChangeError(f"The unlock of {text} was not applied: {exc}") from exc
    return was_locked


def lock_address(
    address: str, *, until: datetime | timedelta, by: Any = None, reason: str = ""
) -> datetime:
    """Lock a client address (an IP, or an IPv6 /64 network as text) until ``until`` (a
    datetime or a duration), with an ``admin_lock`` event naming it; all or nothing.  It
    refuses every login from the address with ``address_locked`` until then, or until
    ``unlock_address``.  Answers the end."""
    import ipaddress

    text = str(address).strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{address!r} is not an IP address or network") from exc
    if isinstance(until, timedelta):
        until = timezone.now() + until
    ip = str(network.network_address)
    end = until.astimezone(UTC)
    note = f"address {lockout.address_text(ip)} until {end:%Y-%m-%d %H:%M:%S} UTC"
    note += f": {reason}" if reason else ""
    try:
        with transaction.atomic():
            _event("admin_lock", by=by, note=note, ip=ip)
            lockout.lock_address(ip, int(until.timestamp() * 1000))
    except DatabaseError as exc:
        raise AccountChangeError(f"The lock of {text} was not applied: {exc}") from exc
    return until


@dataclass
class AccountReport:
    username: str
    state: str
    is_active: bool
    reason: str = ""
    locked_until: datetime | None = None
    changed_by: Any = None
    changed_at: datetime | None = None
    #: the last change was the lockout's own (not an admin's, a command's or code's)
    automatic: bool = False
    password_changed_at: datetime | None = None
    failures_in_window: int = 0
    #: seconds left on the lockout's lock of this username (0: none), and how many repeats
    lockout_seconds: float = 0
    lockout_level: int = 0
    last_events: list[AuthEvent] = field(default_factory=list)


def status(user_or_username: Any) -> AccountReport:
    """Why can (or can't) this person log in: state, lock end, recent failures and events."""
    user = _user(user_or_username)
    row = AccountStatus.objects.filter(user=user).select_related("changed_by").first()
    username = user.get_username()
    try:
        counter = lockout.peek(username, user=user)
    except DatabaseError:  # no counter store answers: the report says nothing of them
        counter = Peek(0, 0, 0)
    report = AccountReport(
        username=username,
        state=row.effective_state() if row else State.ACTIVE,
        is_active=user.is_active,
        failures_in_window=counter.failures,
        lockout_seconds=counter.locked_ms / 1000,
        lockout_level=counter.level,
        last_events=list(AuthEvent.objects.filter(user=user).order_by("-created_at")[:10]),
    )
    if row:
        report.reason = row.reason
        report.locked_until = row.locked_until
        report.changed_by = row.changed_by
        report.changed_at = row.changed_at
        report.automatic = row.automatic
        report.password_changed_at = row.password_changed_at
    return report


def failure_for(
    user: Any,
    *,
    scheme: str | None = None,
    password_login: bool = False,
    issued_at: datetime | None = None,
    revoked_code: str = "token_revoked",
    password_bound: bool = False,
    check_active: bool = True,
    trusted_device: bool = False,
) -> Auth401Error | None:
    """The failure this user's account state gives, or None when it may proceed.

    Call it only once the caller has proved who it is (right password, valid token or
    session): the codes it returns disclose the account's state.  ``issued_at`` is when the
    token or session was issued; ones older than the last lock, suspension or password
    change (with ``password_bound``, for JWTs) are revoked (``revoked_code``).
    ``password_login`` applies ``PASSWORD_MAX_AGE``.  ``check_active=False``: the caller's
    own rule already admitted the user (simplejwt's ``CHECK_USER_IS_ACTIVE`` off, or a
    permissive ``USER_AUTHENTICATION_RULE``), so ``is_active`` is not looked at here.
    ``trusted_device``: a password login from a trusted device, which the automatic lock
    does not refuse (an admin lock does).
    """
    if check_active and not user.is_active:
        return Auth401Error("account_inactive", scheme=scheme)
    row = cached_status(user)
    now = timezone.now()
    if row is not None:
        state = row.effective_state(now)
        if state == State.SUSPENDED:
            return Auth401Error("account_suspended", scheme=scheme)
        # An automatic lock refuses passwords only: a guesser must not be able to end the
        # owner's sessions and tokens by failing on purpose.
        by_password = password_login and not trusted_device
        if state == State.LOCKED and (by_password or not row.automatic):
            left = (row.locked_until - now).total_seconds() if row.locked_until else None
            return Auth401Error("account_locked", scheme=scheme, retry_after=left)
        limits = [row.tokens_valid_after]
        if password_bound:
            limits.append(row.password_changed_at)
        valid_after = max((t for t in limits if t is not None), default=None)
        # Token times are whole seconds: one issued in the same second still counts.
        if issued_at and valid_after and issued_at < valid_after.replace(microsecond=0):
            return Auth401Error(revoked_code, scheme=scheme)
    max_age = app_settings.PASSWORD_MAX_AGE
    if password_login and max_age is not None:
        changed = row.password_changed_at if row is not None else None
        changed = changed or getattr(user, "date_joined", None)
        if changed is not None and changed + max_age < now:
            return Auth401Error("password_expired", scheme=scheme)
    return None
