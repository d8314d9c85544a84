"""``manage.py auth401_unlock <username|ip>``: end a lock and clear its failure counter."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auth401 import accounts, lockout
from auth401.client_ip import parse_ip


class Command(BaseCommand):
    help = "Unlock a username (its account and its failure counter) or a client IP address."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("target", help="a username, or an IP address")

    def handle(self, *args: Any, target: str, **options: Any) -> None:
        address = parse_ip(target)
        if address is not None and str(address) == target.strip():
            lockout.clear(str(address), ip=True)
            self.stdout.write(f"Cleared the failure counter and lock of IP {address}.")
            return
        status = accounts.unlock(target)
        if status is None:
            self.stdout.write(f"No user {target!r}; cleared its failure counter and lock.")
        else:
            self.stdout.write(f"Unlocked {target} (state: {status.state}); counter cleared.")
