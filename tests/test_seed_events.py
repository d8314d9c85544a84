"""``benchmarks/seed_events.py``: realistic AuthEvent rows for benchmarks and for trying the admin
on a big table (a benchmark tool, not part of the auth401 package)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count, F
from django.utils import timezone

from auth401.models import AuthEvent
from benchmarks import seed_events

pytestmark = pytest.mark.django_db


def seed(*args):
    out = StringIO()
    call_command(seed_events.Command(), *args, stdout=out)
    return out.getvalue()


def test_seed_events():
    out = seed(3000, "--users", "20", "--seed", "7")
    assert out.startswith("Inserted 3,000 events over the last 90 days in ")
    rows = AuthEvent.objects.all()
    assert rows.count() == 3000
    now = timezone.now()
    oldest = rows.order_by("created_at").first().created_at
    assert now - timedelta(days=90, minutes=1) < oldest < now - timedelta(days=60)
    recent = rows.filter(created_at__gte=now - timedelta(days=1)).count()
    assert 0.02 * 3000 < recent < 0.10 * 3000  # denser towards now: about 5 % in the last day
    codes = dict(rows.values_list("code").annotate(n=Count("pk")).values_list("code", "n"))
    assert max(codes, key=codes.get) == "credentials_invalid"
    assert {"token_expired", "credentials_missing", "account_locked"} <= set(codes)
    assert 200 < rows.values("username").distinct().count() <= 5000
    # normalised as the lockout counts them: the admin's search and dashboard group by it
    assert not rows.exclude(username_normalised=F("username")).exists()
    assert 100 < rows.values("ip").distinct().count() <= 2000
    linked = rows.filter(user__isnull=False)
    assert linked.exists()
    assert all(e.user.username == e.username for e in linked.select_related("user")[:50])
    assert not rows.filter(code="token_expired").exclude(status_code=401).exists()
    assert not rows.filter(scheme="Bearer", token_fingerprint="").exists()
    assert not rows.filter(scheme="Basic").exclude(token_fingerprint="").exists()
    # ids follow time, as in a real audit trail
    by_id = list(rows.order_by("pk").values_list("created_at", flat=True))
    assert by_id == sorted(by_id)


def test_seed_events_zero_and_users_reused():
    seed(10, "--users", "3")
    seed(0, "--users", "3")
    from django.contrib.auth import get_user_model

    names = (
        get_user_model()
        .objects.filter(username__startswith="user")
        .values_list("username", flat=True)
    )
    assert sorted(names) == ["user0000", "user0001", "user0002"]
    assert AuthEvent.objects.count() == 10
