"""``manage.py auth401_unlock <username|ip> [--reason TEXT] [--by USERNAME]``: end a lock and
clear its failure counter.

The event records who did it: ``--by`` names the acting user (it must exist); without it the
note says which operating-system user ran the command.
"""

from __future__ import annotations

import getpass
import ipaddress
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from auth401 import accounts


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container: still say it was the command
        return "unknown"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


class Command(BaseCommand):
    help = "Unlock a username (its account and its failure counter) or a client IP address."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("target", help="a username, or an IP address (or IPv6 /64)")
        parser.add_argument("--reason", default="", help="why (recorded on the event)")
        parser.add_argument("--by", default=None, help="the username of who is unlocking")

    def handle(self, *args: Any, target: str, reason: str, by: str | None, **options: Any) -> None:
        actor = None
        if by is not None:
            try:
                actor = get_user_model()._default_manager.get_by_natural_key(by)
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"--by: no user {by!r}") from exc
        note = reason if actor is not None else f"{reason} (auth401_unlock by {_os_user()})"
        note = note.strip()
        text = target.strip()
        if _is_address(text):
            was_locked = accounts.unlock_address(text, by=actor, reason=note)
            state = "was locked" if was_locked else "was not locked"
            self.stdout.write(f"Unlocked address {text} ({state}); its counter is cleared.")
            return
        status = accounts.unlock(target, by=actor, reason=note)
        if status is None:
            self.stdout.write(f"No user {target!r}; cleared its failure counter and lock.")
        else:
            self.stdout.write(f"Unlocked {target} (state: {status.state}); counter cleared.")
