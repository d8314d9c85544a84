"""``manage.py auth401_unlock <username|ip> [--reason TEXT] [--by USERNAME]``: end a lock and
clear its failure counter.

The event records who did it: ``--by`` names the acting user (it must exist); without it the
note says which operating-system user ran the command.  A target the lockout knows nothing of
(no account, and no failures or lock counted for that name or address; a typo) is refused with
exit status 1, and nothing is written.
"""

from __future__ import annotations

import getpass
import ipaddress
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from auth401 import accounts, lockout


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container: still say it was the command
        return "unknown"


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def load_actor(by: str | None) -> Any:
    """The user ``--by`` names (refused when there is none), or None."""
    if by is None:
        return None
    model = get_user_model()
    try:
        return model._default_manager.get_by_natural_key(by)
    except model.DoesNotExist as exc:
        raise CommandError(f"--by: no user {by!r}") from exc


def actor_note(reason: str, actor: Any, command: str) -> str:
    """The event's note: the reason, and who ran the command when ``--by`` is not given."""
    note = reason if actor is not None else f"{reason} ({command} by {_os_user()})"
    return note.strip()


def counted(peeked: Any) -> bool:
    return bool(peeked.failures or peeked.locked_ms or peeked.level)


class Command(BaseCommand):
    help = "Unlock a username (its account and its failure counter) or a client IP address."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("target", help="a username, or an IP address (or IPv6 /64)")
        parser.add_argument("--reason", default="", help="why (recorded on the event)")
        parser.add_argument("--by", default=None, help="the username of who is unlocking")

    def handle(self, *args: Any, target: str, reason: str, by: str | None, **options: Any) -> None:
        actor = load_actor(by)
        note = actor_note(reason, actor, "auth401_unlock")
        text = target.strip()
        if is_address(text):
            ip = str(ipaddress.ip_network(text, strict=False).network_address)
            if not counted(lockout.peek(ip, ip=True)):
                raise CommandError(
                    f"Address {text} is not locked and has no failures counted: nothing to unlock."
                )
            was_locked = accounts.unlock_address(text, by=actor, reason=note)
            state = "was locked" if was_locked else "was not locked"
            self.stdout.write(f"Unlocked address {text} ({state}); its counter is cleared.")
            return
        model = get_user_model()
        try:
            model._default_manager.get_by_natural_key(target)
        except model.DoesNotExist:
            if not counted(lockout.peek(target)):
                raise CommandError(
                    f"No user {target!r}, and no failures or lock counted for that name: "
                    "nothing unlocked."
                ) from None
        status = accounts.unlock(target, by=actor, reason=note)
        if status is None:
            self.stdout.write(f"No user {target!r}; cleared its failure counter and lock.")
        else:
            self.stdout.write(f"Unlocked {target} (state: {status.state}); counter cleared.")
