"""``manage.py auth401_status <username|ip>``: why can (or can't) this person, or this client
address, log in?"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from auth401 import accounts, lockout
from auth401.conf import app_settings
from auth401.models import AuthEvent

TIME = "%Y-%m-%d %H:%M:%S"


def _network(text: str) -> Any:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


class Command(BaseCommand):
    help = "Explain whether a user can log in: state, reason, who changed it, lock, failures."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username", help="a username, or an IP address (or IPv6 /64)")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        out = self.stdout.write
        network = _network(username)
        if network is not None:
            self._address(network)
            return
        try:
            report = accounts.status(username)
        except get_user_model().DoesNotExist:
            counter = lockout.peek(username)
            out(f"{username}: no such user")
            out(f"  failures in the window: {counter.failures} / {app_settings.FAILURE_LIMIT}")
            out(f"  lockout: {self._lock(counter.locked_ms / 1000)}")
            return
        verdict = "can log in" if self._can_log_in(report) else "cannot log in"
        out(f"{report.username}: {verdict}")
        out(f"  state: {report.state}" + ("" if report.is_active else " (is_active = False)"))
        if report.reason:
            out(f"  reason: {report.reason}")
        if report.changed_at:
            by = report.changed_by or (
                "the lockout (automatic)" if report.automatic else "a command or code (no user)"
            )
            out(f"  changed: {report.changed_at:{TIME}} UTC by {by}")
        if report.state == "locked":
            until = f"{report.locked_until:{TIME}} UTC" if report.locked_until else "until unlocked"
            out(f"  locked until: {until}")
        out(f"  failures in the window: {report.failures_in_window} / {app_settings.FAILURE_LIMIT}")
        out(f"  lockout: {self._lock(report.lockout_seconds)} (repeat {report.lockout_level})")
        if report.password_changed_at:
            out(f"  password changed: {report.password_changed_at:{TIME}} UTC")
        out("  last events:")
        for event in report.last_events or []:
            actor = f" by {event.actor}" if event.actor_id else ""
            out(f"    {event.created_at:{TIME}} {event.code}{actor} {event.note}".rstrip())
        if not report.last_events:
            out("    (none)")

    def _address(self, network: Any) -> None:
        out = self.stdout.write
        ip = str(network.network_address)
        text = lockout.address_text(ip)
        counter = lockout.peek(ip, ip=True)
        denied = lockout.address_denied(ip)
        never = any(
            network.network_address in n
            for n in app_settings.never_lock_networks
            if n.version == network.version
        )
        locked = denied or counter.locked_ms > 0
        out(f"address {text}: {'cannot log in (address locked)' if locked else 'can log in'}")
        if denied:
            out("  listed in ALWAYS_LOCK_NETWORKS: always refused (address_locked)")
        if never:
            out("  listed in NEVER_LOCK_NETWORKS: counted, never locked")
        limit = app_settings.IP_FAILURE_LIMIT
        out(f"  failures in the window: {counter.failures} / {limit}")
        out(f"  lockout: {self._lock(counter.locked_ms / 1000)} (repeat {counter.level})")
        out("  last events:")
        events = list(AuthEvent.objects.filter(ip=ip).order_by("-created_at")[:10])
        for event in events:
            actor = f" by {event.actor}" if event.actor_id else ""
            who = f" {event.username}" if event.username else ""
            out(f"    {event.created_at:{TIME}} {event.code}{who}{actor} {event.note}".rstrip())
        if not events:
            out("    (none)")

    @staticmethod
    def _lock(seconds: float) -> str:
        return f"locked for {int(seconds)} s more" if seconds > 0 else "not locked"

    @staticmethod
    def _can_log_in(report: accounts.AccountReport) -> bool:
        return report.is_active and report.state == "active" and report.lockout_seconds <= 0
