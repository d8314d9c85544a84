"""``benchmarks/seed_events.py``: realistic AuthEvent rows for benchmarks and for trying the admin
on a big table (a benchmark tool, not part of the auth401 package)."""

from io import StringIO

import pytest
from django.core.management import call_command

from benchmarks import seed_events

pytestmark = pytest.mark.django_db


def seed(*args):
    out = StringIO()
    call_command(seed_events.Command(), *args, stdout=out)
    return out.getvalue()
