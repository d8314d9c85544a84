"""auth401 with a reachable account lock (``FAILURE_LIMIT`` 5) for the timing-parity scenario:
locked real accounts against locked unknown names.  The address limit stays out of reach, so
every refusal is the account lock, not the address lock (all requests come from 127.0.0.1)."""

from datetime import timedelta

from .base import *  # noqa: F403
from .base import AUTH401, UNREACHABLE_LIMIT

LOCKING_FAILURE_LIMIT = 5

AUTH401 = {
    **AUTH401,
    "FAILURE_LIMIT": LOCKING_FAILURE_LIMIT,
    "IP_FAILURE_LIMIT": UNREACHABLE_LIMIT,
    "LOCKOUT_DURATION": timedelta(hours=2),
}
