"""auth401 as the example project configures it (middleware, backend, classes, handler)."""

from .base import *  # noqa: F403
from .base import AUTH401, UNREACHABLE_LIMIT

AUTH401 = {**AUTH401, "FAILURE_LIMIT": UNREACHABLE_LIMIT, "IP_FAILURE_LIMIT": UNREACHABLE_LIMIT}
