"""auth401 with the proposed hot-path changes applied from outside (benchmarks/proposed.py)."""

from .auth401 import *  # noqa: F403

BENCH_PROPOSED = True
