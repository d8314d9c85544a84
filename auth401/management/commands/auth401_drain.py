"""``manage.py auth401_drain [--follow]``: move recorded events into ``AuthEvent``.

Events recorded in the Redis stream reach the table after responses anyway (in whichever
process finds them waiting); run this for a dedicated worker, or after an outage.  Running
it twice, or on several servers at once, never writes an event twice.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from auth401 import drain


class Command(BaseCommand):
    help = "Move audit events recorded in the counter store's stream into AuthEvent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--follow", action="store_true", help="keep draining (Ctrl-C or SIGTERM stops)"
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="seconds between checks with --follow (default 1)",
        )

    def handle(self, *args: Any, follow: bool, interval: float, **options: Any) -> None:
        total = drain.drain()
        self.stdout.write(f"Drained {total} event{'s' if total != 1 else ''}.")
        while follow:
            time.sleep(interval)
            done = drain.drain()
            if done:
                self.stdout.write(f"Drained {done} event{'s' if done != 1 else ''}.")
