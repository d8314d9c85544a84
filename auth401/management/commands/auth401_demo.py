"""``manage.py auth401_demo [--serve] [--addrport 127.0.0.1:8000] [--yes]``.

Seeds the example project's demo users and prints curl commands that show one auth401 answer
each. Safe to run again: passwords, account states and alice's API token are brought back to
the demo's values.  It creates a superuser with a published password, so it refuses to run
unless ``DEBUG`` is on or ``--yes`` is given.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

DEFAULT_ADDRPORT = "127.0.0.1:8000"
#: the client address of the blocked-address example (any 127.x address reaches a local server)
BLOCKED_ADDRESS = "127.0.0.2"
EXPIRED_PASSWORD_AGE = timedelta(days=365)


@dataclass(frozen=True)
class DemoUser:
    username: str
    state: str  # "active", "locked" or "suspended" (AccountStatus.state)
    reason: str = ""
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    password_expired: bool = False
    summary: str = ""
    expect: str = ""

    @property
    def password(self) -> str:
        return f"{self.username}-password-1"


DEMO_USERS = (
    DemoUser(
        "admin",
        "active",
        is_staff=True,
        is_superuser=True,
        summary="superuser",
        expect="200, and /admin/",
    ),
    DemoUser("alice", "active", expect="200"),
    DemoUser(
        "bob",
        "locked",
        reason="Locked by an admin for the demo",
        summary="locked by an admin",
        expect="account_locked",
    ),
    DemoUser(
        "carol",
        "suspended",
        reason="Suspended for the demo",
        summary="suspended by an admin",
        expect="403 account_suspended",
    ),
    DemoUser(
        "dave", "active", is_active=False, summary="is_active=False", expect="403 account_inactive"
    ),
    DemoUser(
        "erin",
        "active",
        password_expired=True,
        summary="password changed a year ago",
        expect="401 password_expired",
    ),
)

DEMO_BY_NAME = {demo.username: demo for demo in DEMO_USERS}


class Command(BaseCommand):
    help = (
        "Create the example project's demo users (alice, bob, carol, dave, erin, admin; each "
        "password '<name>-password-1') and print curl commands showing auth401's answers. "
        "With --serve, start the development server afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--serve",
            action="store_true",
            help="Run the development server (without the auto-reloader) after seeding.",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help=(
                "Run even though DEBUG is off: create the demo users, including the superuser "
                "admin / admin-password-1, in this database."
            ),
        )
        parser.add_argument(
            "--addrport",
            default=DEFAULT_ADDRPORT,
            help=(
                "Address and port for --serve and for the printed URLs "
                f"(default {DEFAULT_ADDRPORT})."
            ),
        )

    def handle(
        self, *args: Any, serve: bool, addrport: str, yes: bool = False, **options: Any
    ) -> None:
        from django.conf import settings

        if not settings.DEBUG and not yes:
            raise CommandError(
                "auth401_demo creates users with published passwords, including a superuser "
                "(admin / admin-password-1), and DEBUG is off: is this a production database? "
                "Run it with DEBUG on (DJANGO_DEBUG=1 for the example project), or pass --yes."
            )
        base_url = _base_url(addrport)
        call_command("migrate", verbosity=0, interactive=False)
        with transaction.atomic():
            users = self._seed()
        self._print_users(users)
        self._print_examples(base_url, users)
        if serve:
            self.stdout.write(self.style.MIGRATE_HEADING(f"Starting the server on {addrport}"))
            call_command("runserver", addrport, use_reloader=False)

    # -- seeding ----------------------------------------------------------------------------

    def _seed(self) -> dict[str, Any]:
        from rest_framework.authtoken.models import Token

        from auth401 import accounts
        from auth401.models import AccountStatus

        users = {demo.username: _ensure_user(demo) for demo in DEMO_USERS}
        admin = users["admin"]  # the "by" of every status change below

        for demo in DEMO_USERS:
            user = users[demo.username]
            status = AccountStatus.objects.filter(user=user).first()
            state = status.effective_state() if status is not None else "active"
            reason = status.reason if status is not None else ""
            if demo.state == "locked":
                # An admin lock has no end; re-lock if an earlier run's lock was changed.
                if (state, reason) != ("locked", demo.reason) or (
                    status is not None and status.locked_until is not None
                ):
                    accounts.lock(user, reason=demo.reason, by=admin)
            elif demo.state == "suspended":
                if (state, reason) != ("suspended", demo.reason):
                    accounts.suspend(user, reason=demo.reason, by=admin)
            elif state != "active":
                # Back to active, whatever an earlier run or a curl session did (including an
                # automatic lock after too many wrong passwords).
                accounts.reinstate(user, by=admin)
            if demo.password_expired:
                AccountStatus.objects.update_or_create(
                    user=user,
                    defaults={"password_changed_at": timezone.now() - EXPIRED_PASSWORD_AGE},
                )

        Token.objects.get_or_create(user=users["alice"])
        return users

    # -- output -----------------------------------------------------------------------------

    def _print_users(self, users: dict[str, Any]) -> None:
        from auth401.models import AccountStatus

        statuses = {
            status.user_id: status
            for status in AccountStatus.objects.filter(user__in=list(users.values()))
        }
        rows = [("user", "password", "state", "is_active", "is_staff", "expect")]
        for demo in DEMO_USERS:
            user = users[demo.username]
            status = statuses.get(user.pk)
            state = status.effective_state() if status is not None else "active"
            rows.append(
                (
                    demo.username,
                    demo.password,
                    f"{state} ({demo.summary})" if demo.summary else state,
                    "yes" if user.is_active else "no",
                    "yes" if user.is_staff else "no",
                    _expect(demo),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        self.stdout.write(self.style.MIGRATE_HEADING("Demo users"))
        for index, row in enumerate(rows):
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  " + line.rstrip())
            if index == 0:
                self.stdout.write("  " + "  ".join("-" * width for width in widths))
        self.stdout.write("")

    def _print_examples(self, base_url: str, users: dict[str, Any]) -> None:
        from rest_framework.authtoken.models import Token
        from rest_framework_simplejwt.settings import api_settings as jwt_settings
        from rest_framework_simplejwt.tokens import AccessToken

        alice = users["alice"]
        me = f"{base_url}/api/me/"
        now = timezone.now()

        access = AccessToken.for_user(alice)
        expired = AccessToken.for_user(alice)
        expired.set_exp(from_time=now - timedelta(hours=2))
        expired.set_iat(at_time=now - timedelta(hours=3))
        api_token = Token.objects.get(user=alice).key
        lifetime = int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds() // 60)
        credentials = shlex.quote('{"username": "alice", "password": "alice-password-1"}')

        examples = [
            (
                "Basic, alice with the right password: 200",
                [f"curl -i -u alice:alice-password-1 {me}"],
            ),
            (
                "Bearer: get an access/refresh pair, then send the access token: 200",
                [
                    f"curl -i -X POST -H 'Content-Type: application/json' -d {credentials} "
                    f"{base_url}/api/token/",
                    f"curl -i -H 'Authorization: Bearer <access from above>' {me}",
                ],
            ),
            (
                f"Bearer, an access token just minted for alice (valid {lifetime} minutes): 200",
                [f"curl -i -H 'Authorization: Bearer {access}' {me}"],
            ),
            (
                "Token, alice's DRF API token: 200",
                [f"curl -i -H 'Authorization: Token {api_token}' {me}"],
            ),
            ("Wrong password: 401 credentials_invalid", [f"curl -i -u alice:wrong-password {me}"]),
            (
                "Expired access token: 401 token_expired, with server_time",
                [f"curl -i -H 'Authorization: Bearer {expired}' {me}"],
            ),
            (
                f"bob, locked by an admin: {_expect(DEMO_BY_NAME['bob'])}",
                [f"curl -i -u bob:bob-password-1 {me}"],
            ),
            (
                "carol, suspended: 403 account_suspended",
                [f"curl -i -u carol:carol-password-1 {me}"],
            ),
            (
                "dave, is_active=False: 403 account_inactive",
                [f"curl -i -u dave:dave-password-1 {me}"],
            ),
            (
                "erin, password older than PASSWORD_MAX_AGE: 401 password_expired",
                [f"curl -i -u erin:erin-password-1 {me}"],
            ),
            ("No credentials at all: 401 credentials_missing", [f"curl -i {me}"]),
            (
                "alice on a staff-only view: 403 permission_denied",
                [f"curl -i -u alice:alice-password-1 {base_url}/api/staff/"],
            ),
            (
                "A plain Django view with login_required, no session: 401 credentials_missing",
                [f"curl -i {base_url}/api/legacy/"],
            ),
        ]

        examples.append(_blocked_address_example(me))

        self.stdout.write(self.style.MIGRATE_HEADING(f"Try these against {base_url}"))
        for title, commands in examples:
            self.stdout.write(f"# {title}")
            for command in commands:
                self.stdout.write(command)
            self.stdout.write("")
        self.stdout.write(
            f"Browser: {base_url}/admin/ (admin / admin-password-1) and "
            f"{base_url}/accounts/login/ (try bob or carol)."
        )


def _ensure_user(demo: DemoUser) -> Any:
    """Create the demo user, or bring an existing one back to the demo's flags and password."""
    user_model = get_user_model()
    manager = user_model._default_manager
    flags = {
        "is_active": demo.is_active,
        "is_staff": demo.is_staff,
        "is_superuser": demo.is_superuser,
    }
    user = manager.filter(**{user_model.USERNAME_FIELD: demo.username}).first()
    if user is None:
        user = user_model(**{user_model.USERNAME_FIELD: demo.username}, **flags)
        email_field = user_model.get_email_field_name()
        if hasattr(user, email_field):
            setattr(user, email_field, f"{demo.username}@example.com")
        user.set_password(demo.password)
        user.save()
        return user
    changed = [name for name, value in flags.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, flags[name])
    # Set the password only when it differs: auth401 treats a new password as a password
    # change, which revokes the tokens printed by an earlier run.
    if not user.check_password(demo.password):
        user.set_password(demo.password)
        changed.append("password")
    if changed:
        user.save(update_fields=changed)
    return user


def _blocked_address_example(me: str) -> tuple[str, list[str]]:
    """Enough wrong passwords from one client address (each for another unknown name, so no
    account is locked) block that address; then even alice's right password is refused."""
    from auth401.conf import app_settings

    limit = int(app_settings.IP_FAILURE_LIMIT)
    return (
        f"A blocked address: {limit} wrong passwords from {BLOCKED_ADDRESS} (curl --interface "
        f"picks the client address, on Linux), then alice's right password: "
        f"{_lockout_status()} address_locked. Unlock it with: "
        f"python manage.py auth401_unlock {BLOCKED_ADDRESS}",
        [
            f"for i in $(seq 1 {limit}); do curl -s -o /dev/null --interface {BLOCKED_ADDRESS} "
            f'-u "nobody$i:wrong-password" {me}; done',
            f"curl -i --interface {BLOCKED_ADDRESS} -u alice:alice-password-1 {me}",
        ],
    )


def _lockout_status() -> int:
    from auth401.conf import app_settings

    return int(app_settings.LOCKOUT_STATUS_CODE)


def _expect(demo: DemoUser) -> str:
    """What /api/me/ answers for this user's right password."""
    if demo.state == "locked":  # LOCKOUT_STATUS_CODE: 403 or 429
        return f"{_lockout_status()} {demo.expect}"
    return demo.expect


def _base_url(addrport: str) -> str:
    """The URL a local curl should use for runserver's ``addrport``."""
    host, sep, port = addrport.rpartition(":")
    if not sep:
        host, port = "", addrport
    if not port.isdigit():
        raise CommandError(f"--addrport must look like 127.0.0.1:8000 or 8000, got {addrport!r}")
    if host in ("", "0.0.0.0", "0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"
