"""``manage.py auth401_status <username | address | network> [--from IP]``: why can (or can't)
this person, this client address, or anyone in this network log in?

The verdict is ``decision.decide()``'s own, as a dry run against the real counter stores (the
same steps as a login, with read-only calls: nothing counted, taken or recorded):

- a username: the owner's attempt with their right password (``--from IP``: from that
  address, so the address's locks and ``ALWAYS_LOCK_NETWORKS`` count too);
- an address (IPv4, IPv6, or an IPv6 /64, the unit the lockout counts): an attempt from it
  under any name, refused or not by the address's own counter;
- a network (any other CIDR): the locks of the addresses inside it, and the lists.

The first line is the verdict (``can log in``, or ``cannot log in: <code> (<status>)``); the
counts are the stores' own.  A name that is neither an account nor a counter the lockout holds
is refused (exit status 1).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.test import RequestFactory

from auth401 import accounts, decision, lockout, responses
from auth401.conf import app_settings
from auth401.models import AuthEvent

TIME = "%Y-%m-%d %H:%M:%S"


def parse_target(text: str) -> tuple[str, Any]:
    """("address", ip text) for one address or an IPv6 /64; ("network", network) for other
    CIDRs; ("user", text) otherwise."""
    text = text.strip()
    try:
        return "address", str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return "user", text
    if network.num_addresses == 1 or (network.version == 6 and network.prefixlen == 64):
        return "address", str(network.network_address)
    return "network", network


def request_from(ip: str | None) -> Any:
    """The request a login from ``ip`` would be (only its client address is read)."""
    return RequestFactory().get("/", REMOTE_ADDR=ip) if ip is not None else None


def verdict_line(subject: str, failure: Any) -> str:
    if failure is None:
        return f"{subject}: can log in"
    answered = responses.effective(failure)
    told = ""
    if answered.code != failure.code:
        told = f"; the caller is told {answered.code} (DISCLOSE_ACCOUNT_STATE is False)"
    return f"{subject}: cannot log in: {failure.code} ({failure.reason.status_code()}){told}"


def lock_text(ms: float) -> str:
    seconds = -(-int(ms) // 1000)
    return f"locked for {seconds} s more" if ms > 0 else "not locked"


class Command(BaseCommand):
    help = (
        "Explain whether a user, a client address or a network can log in, with the verdict a "
        "login would get now (a dry run: nothing is counted or recorded)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "target",
            help="a username, an IP address (or IPv6 /64), or a network (CIDR)",
        )
        parser.add_argument(
            "--from",
            dest="source",
            metavar="IP",
            default=None,
            help="with a username: the address the login comes from (its locks count too)",
        )

    def handle(self, *args: Any, target: str, source: str | None, **options: Any) -> None:
        kind, value = parse_target(target)
        if source is not None:
            if kind != "user":
                raise CommandError("--from goes with a username, not an address or network")
            source_kind, source = parse_target(source)
            if source_kind != "address":
                raise CommandError("--from: give one IP address")
        if kind == "address":
            self.address(value)
        elif kind == "network":
            self.network(value)
        else:
            self.user(value, source)

    # -- a username ---------------------------------------------------------------------------

    def user(self, username: str, source: str | None) -> None:
        out = self.stdout.write
        request = request_from(source)
        verdict = decision.decide(
            request, username, decision.ASSUMED_RIGHT, scheme=None, dry_run=True
        )
        model = get_user_model()
        try:  # looked up here too: decide() does not when the address is refused first
            user = model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            user = None
        ip = source
        keys = lockout.keys_for(username, user, ip)
        try:
            peeks: list[tuple[Any, Any]] | None = [(key, lockout.peek_key(key)) for key in keys]
        except DatabaseError:
            peeks = None  # no counter store answers: the verdict says so
        if user is None and peeks is not None:
            if not any(p.failures or p.locked_ms or p.level for k, p in peeks if k.kind != "ip"):
                raise CommandError(
                    f"No user {username!r}, and the lockout counts no failures for that name."
                )
            out(f"{username}: no such user (its name is counted like any other)")
            self.counters(peeks, ip)
            return
        if user is None:
            out(verdict_line(username, verdict.failure))
            return
        failure = verdict.failure
        out(verdict_line(user.get_username(), failure))
        report = accounts.status(user)
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
        if report.password_changed_at:
            out(f"  password changed: {report.password_changed_at:{TIME}} UTC")
        self.counters(peeks, ip)
        if ip is None:
            self.recent_addresses(username, report.last_events or [])
            out("  (no --from: an address lock would refuse them too; --from IP checks one)")
        out("  last events:")
        self.events(report.last_events or [], names=False)

    def recent_addresses(self, username: str, rows: list[AuthEvent]) -> None:
        """The addresses of the user's last events that would refuse them now (locked, or in
        ``ALWAYS_LOCK_NETWORKS``): the same dry run, from each."""
        seen: list[str] = []
        for row in rows:
            if row.ip and row.ip not in seen:
                seen.append(str(row.ip))
        for ip in seen:
            verdict = decision.decide(
                request_from(ip), username, decision.ASSUMED_RIGHT, scheme=None, dry_run=True
            )
            failure = verdict.failure
            if failure is not None and failure.code == "address_locked":
                self.stdout.write(verdict_line(f"  from {ip} (in their last events)", failure))

    def counters(self, peeks: list[tuple[Any, Any]] | None, ip: str | None) -> None:
        out = self.stdout.write
        if peeks is None:
            out("  failures: cannot be read (no counter store answers)")
            return
        labels = {"username": "username", "ip": "address", "username+ip": "username from"}
        for key, seen in peeks:
            label = labels.get(key.kind, key.kind)
            if key.kind != "username" and ip is not None:
                label += f" {lockout.address_text(ip)}"
            repeat = f" (repeat {seen.level})" if seen.level else ""
            never = "" if key.lockable else "; never locks"
            out(
                f"  failures, {label}: {seen.failures} / {key.limit} in the window; "
                f"{lock_text(seen.locked_ms)}{repeat}{never}"
            )

    def events(self, rows: list[AuthEvent], *, names: bool) -> None:
        out = self.stdout.write
        for event in rows:
            actor = f" by {event.actor}" if event.actor_id else ""
            who = f" {event.username}" if names and event.username else ""
            out(f"    {event.created_at:{TIME}} {event.code}{who}{actor} {event.note}".rstrip())
        if not rows:
            out("    (none)")

    # -- an address ---------------------------------------------------------------------------

    def address(self, ip: str) -> None:
        out = self.stdout.write
        text = lockout.address_text(ip)
        verdict = decision.decide(
            request_from(ip), None, decision.ASSUMED_RIGHT, scheme=None, dry_run=True
        )
        # The address's own steps: refused before any password check, or not refused by it.
        refused = any(
            (name == "lookup" and outcome.startswith("skipped"))
            or (name == "lock check" and not outcome.startswith("admitted"))
            for name, outcome in verdict.trace
        )
        out(verdict_line(f"address {text}", verdict.failure if refused else None))
        if lockout.address_denied(ip):
            out("  listed in ALWAYS_LOCK_NETWORKS: always refused (address_locked)")
        if self.never(ip):
            out("  listed in NEVER_LOCK_NETWORKS: counted, never locked")
        key = next(iter(lockout.keys_for("", None, ip)), None)
        if key is not None and key.kind == "ip":
            seen = lockout.peek_key(key)
            out(f"  failures in the window: {seen.failures} / {key.limit}")
            lock = lock_text(seen.locked_ms)
            if seen.locked_ms > 0:
                led = lockout.lock_failures([text]).get(text)
                lock += f", after {led} failures" if led is not None else ""
            out(f"  lockout: {lock} (repeat {seen.level})")
        out("  last events:")
        rows = list(AuthEvent.objects.filter(ip=ip).order_by("-created_at")[:10])
        self.events(rows, names=True)

    @staticmethod
    def never(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(
            address in n for n in app_settings.never_lock_networks if n.version == address.version
        )

    # -- a network ----------------------------------------------------------------------------

    def network(self, network: Any) -> None:
        out = self.stdout.write
        locks = [lock for lock in lockout.locked_addresses() if self.inside(lock.address, network)]
        denied = [
            n
            for n in app_settings.always_lock_networks
            if n.version == network.version and n.overlaps(network)
        ]
        never = [
            n
            for n in app_settings.never_lock_networks
            if n.version == network.version and n.overlaps(network)
        ]
        if not locks and not denied:
            out(f"network {network}: no address in it is locked")
        else:
            out(
                f"network {network}: {len(locks)} address(es) locked"
                + ("; part of it in ALWAYS_LOCK_NETWORKS" if denied else "")
            )
        for n in denied:
            out(f"  ALWAYS_LOCK_NETWORKS {n}: always refused (address_locked)")
        for n in never:
            out(f"  NEVER_LOCK_NETWORKS {n}: counted, never locked")
        for lock in locks:
            failures = f", after {lock.failures} failures" if lock.failures is not None else ""
            out(f"  {lock.address}: {lock_text(lock.seconds_left * 1000)}{failures}")

    @staticmethod
    def inside(address: str, network: Any) -> bool:
        try:
            found = ipaddress.ip_network(address, strict=False)
        except ValueError:
            return False
        return found.version == network.version and found.subnet_of(network)
