"""Settings of a test server run as a separate process (durability tests): the test
settings, on the test database, with the counters in the Redis the test names."""

import os
from datetime import timedelta

from tests.settings import *  # noqa: F403
from tests.settings import AUTH401, CACHES, DATABASES

DATABASES["default"]["NAME"] = os.environ["AUTH401_TEST_DB_NAME"]
DATABASES["default"]["TEST"] = {}
CACHES["counters"] = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": os.environ["AUTH401_TEST_COUNTERS"],
    "KEY_PREFIX": os.environ["AUTH401_TEST_COUNTERS_PREFIX"],
}
AUTH401 = {
    **AUTH401,
    "COUNTER_STORE": "cache",
    "COUNTER_CACHE": "counters",
    "FAILURE_LIMIT": 3,
    "IP_FAILURE_LIMIT": 1000,
    # no drain after responses: the events stay in the stream until the test drains them
    "AUDIT_BATCH_DELAY": timedelta(seconds=60),
}
