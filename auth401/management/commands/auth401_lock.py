"""``manage.py auth401_lock <username|ip> --reason TEXT [--until WHEN] [--by USERNAME]``: lock
an account, or a client address, by hand.

A username: ``accounts.lock`` (an ``admin_lock`` event naming the actor; its sessions and
tokens end); without ``--until`` it lasts until unlocked.  An address (or IPv6 /64):
``accounts.lock_address``, which needs ``--until`` (an address refused for good belongs in
``ALWAYS_LOCK_NETWORKS``).  ``--until`` is a duration (``90s``, ``30m``, ``12h``, ``7d``) or
an ISO 8601 time (``2026-12-31T18:00:00Z``; without an offset, UTC).

Refused (exit status 1, nothing written): an unknown username; a suspended account (a lock
would replace the suspension); an address the lockout never locks (``LOCKOUT_ENABLED``,
``LOCKOUT_KEYS``, ``NEVER_LOCK_NETWORKS``).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from auth401 import accounts, lockout
from auth401.management.commands.auth401_unlock import actor_note, is_address, load_actor

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_until(text: str) -> datetime:
    """A duration from now (``30m``) or an ISO 8601 time (UTC when it has no offset)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if match:
        return timezone.now() + timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--until: {text!r} is neither a duration (90s, 30m, 12h, 7d) nor an ISO 8601 "
            "time (2026-12-31T18:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


class Command(BaseCommand):
    help = "Lock a user's account, or a client IP address, with a reason (recorded as an event)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("target", help="a username, or an IP address (or IPv6 /64)")
        parser.add_argument("--reason", required=True, help="why (recorded on the event)")
        parser.add_argument(
            "--until",
            default=None,
            help="a duration (30m, 12h, 7d) or an ISO 8601 time; a user without it stays "
            "locked until unlocked; an address needs it",
        )
        parser.add_argument("--by", default=None, help="the username of who is locking")

    def handle(
        self,
        *args: Any,
        target: str,
        reason: str,
        until: str | None,
        by: str | None,
        **options: Any,
    ) -> None:
        actor = load_actor(by)
        note = actor_note(reason, actor, "auth401_lock")
        end = parse_until(until) if until is not None else None
        if end is not None and end <= timezone.now():
            raise CommandError(f"--until: {until!r} is not in the future")
        text = target.strip()
        if is_address(text):
            if end is None:
                raise CommandError(
                    "An address lock needs --until (an address refused for good belongs in "
                    "ALWAYS_LOCK_NETWORKS)."
                )
            ip = str(ipaddress.ip_network(text, strict=False).network_address)
            key = next((k for k in lockout.keys_for("", None, ip) if k.kind == "ip"), None)
            if key is None or not key.lockable:
                raise CommandError(
                    f"Address {text} would not be refused: the lockout does not lock it "
                    "(LOCKOUT_ENABLED, LOCKOUT_KEYS or NEVER_LOCK_NETWORKS); nothing locked."
                )
            ends = accounts.lock_address(text, until=end, by=actor, reason=note).astimezone(UTC)
            self.stdout.write(f"Locked address {text} until {ends:%Y-%m-%d %H:%M:%S} UTC.")
            return
        model = get_user_model()
        try:
            user = model._default_manager.get_by_natural_key(target)
        except model.DoesNotExist:
            raise CommandError(f"No user {target!r}: nothing locked.") from None
        current = accounts.cached_status(user)
        if current is not None and current.effective_state() == "suspended":
            raise CommandError(
                f"{user.get_username()} is suspended: a lock would replace the suspension "
                "(and an unlock then end it). Nothing locked."
            )
        accounts.lock(user, until=end, reason=note, by=actor)
        lasts = f"until {end.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if end else "until unlocked"
        self.stdout.write(f"Locked {user.get_username()} {lasts}; its sessions and tokens end.")
