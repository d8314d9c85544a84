"""auth401_prune: old events and expired failure counters leave in batches."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth401.models import AuthEvent, FailureCounter

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def event(minutes_ago: float = 1, **fields) -> AuthEvent:
    values = {"code": "credentials_invalid", "status_code": 401, "username": "alice", **fields}
    return AuthEvent.objects.create(
        created_at=timezone.now() - timedelta(minutes=minutes_ago), **values
    )


def test_prune_deletes_old_rows_in_batches(auth401_settings):
    auth401_settings(COUNTER_STORE="database")
    with time_machine.travel(NOW, tick=False):
        old = [event(60 * 24 * days) for days in (91, 95, 200)]
        kept = [event(60 * 24 * days) for days in (89, 1)]
        FailureCounter.objects.create(counter_key="u:gone", failures=3, window_ends=0)
        FailureCounter.objects.create(
            counter_key="u:live", failures=1, window_ends=int(NOW.timestamp() * 1000) + 60_000
        )
        out = StringIO()
        with CaptureQueriesContext(connection) as queries:
            call_command("auth401_prune", "--batch-size", "2", stdout=out)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    event_deletes = [sql for sql in deletes if "auth401_authevent" in sql]
    assert len(event_deletes) == 2  # 2 + 1 rows
    assert out.getvalue() == (
        "Deleted 3 events older than 2026-08-27 12:30:00 UTC.\nDeleted 1 expired failure counter.\n"
    )
    assert set(AuthEvent.objects.values_list("pk", flat=True)) == {e.pk for e in kept}
    assert not AuthEvent.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert list(FailureCounter.objects.values_list("counter_key", flat=True)) == ["u:live"]

    with time_machine.travel(NOW, tick=False):
        again = StringIO()
        call_command("auth401_prune", stdout=again)
    assert again.getvalue() == (
        "Deleted 0 events older than 2026-08-27 12:30:00 UTC.\n"
        "Deleted 0 expired failure counters.\n"
    )


def test_prune_older_than_and_retention_setting(auth401_settings):
    with time_machine.travel(NOW, tick=False):
        event(60 * 24 * 40)
        event(60 * 24 * 20)
        event(60)
        out = StringIO()
        call_command("auth401_prune", "--older-than", "30", stdout=out)
        assert out.getvalue().startswith("Deleted 1 event older than 2026-10-26 12:30:00 UTC.\n")
        auth401_settings(AUDIT_RETENTION=timedelta(days=7))
        out = StringIO()
        call_command("auth401_prune", stdout=out)
        assert out.getvalue().startswith("Deleted 1 event older than 2026-11-18 12:30:00 UTC.\n")
        out = StringIO()
        call_command("auth401_prune", "--older-than", "0", stdout=out)
        assert out.getvalue().startswith("Deleted 1 event older than 2026-11-25 12:30:00 UTC.\n")
    assert not AuthEvent.objects.exists()


@pytest.mark.parametrize("args", [["--older-than", "-1"], ["--batch-size", "0"]])
def test_prune_refuses_bad_arguments(args):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("auth401_prune", *args, stdout=StringIO())
