"""``manage.py auth401_prune [--older-than DAYS]``: delete old audit rows and expired counters.

Safe to run from cron: it deletes ``--batch-size`` rows per statement, each in its own short
transaction (no long lock, no huge undo log, logins keep writing meanwhile), and running it
twice deletes nothing the second time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from auth401.conf import app_settings
from auth401.counters import get_store
from auth401.models import AuthEvent

BATCH_SIZE = 5000


class Command(BaseCommand):
    help = (
        "Delete AuthEvent rows older than --older-than days (default: AUTH401 "
        "AUDIT_RETENTION) in small batches, and expired failure counters."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="delete events older than this many days (default: AUDIT_RETENTION)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"rows per DELETE statement and transaction ({BATCH_SIZE})",
        )

    def handle(self, *args: Any, older_than: int | None, batch_size: int, **options: Any) -> None:
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 or more days.")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        retention = (
            timedelta(days=older_than) if older_than is not None else app_settings.AUDIT_RETENTION
        )
        cutoff = timezone.now() - retention
        deleted = self.delete_events(cutoff, batch_size)
        self.stdout.write(
            f"Deleted {deleted} event{'s' if deleted != 1 else ''} older than "
            f"{cutoff:%Y-%m-%d %H:%M:%S} UTC."
        )
        counters = get_store().prune()
        self.stdout.write(
            f"Deleted {counters} expired failure counter{'s' if counters != 1 else ''}."
        )

    @staticmethod
    def delete_events(cutoff: Any, batch_size: int) -> int:
        """Delete events older than ``cutoff``, ``batch_size`` ids per DELETE; each batch
        commits on its own, so an interrupted run keeps what it did and the next one goes
        on from there."""
        old = AuthEvent.objects.filter(created_at__lt=cutoff).order_by()
        total = 0
        while True:
            with transaction.atomic():
                ids = list(old.values_list("pk", flat=True)[:batch_size])
                if not ids:
                    return total
                deleted, _ = AuthEvent.objects.filter(pk__in=ids).delete()
            total += deleted
