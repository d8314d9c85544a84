"""Compatibility names: auth401's audit events now live in ``auth401.events`` (build, log,
record) and ``auth401.drain`` (the stream -> ``AuthEvent``).  Import from there."""

from .events import clean, fingerprint, record_failure, record_success

__all__ = ["clean", "fingerprint", "record_failure", "record_success"]
