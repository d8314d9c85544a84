"""The drain: events recorded in the counter store's stream -> ``AuthEvent`` rows.

Rows are written with ``bulk_create(..., ignore_conflicts=True)`` on the unique
``event_id``, so a drain that dies between its insert and its acknowledgement and runs again
never writes a row twice.  Several drains at once (several servers, a ``--follow`` worker)
share one Redis consumer group, so each event is handed to one of them; entries a dead
consumer left unacknowledged are claimed after ``CLAIM_IDLE_MS``.  Entries are acknowledged
(and deleted) only after their rows are committed.

The failures an event counted are also added to the database's counters, so that counting
goes on from them when Redis is down.

It runs after a response in whichever process finds events waiting (a cheap check, at most
once per ``AUDIT_BATCH_DELAY`` per process), and as ``manage.py auth401_drain [--follow]``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from . import signals
from .conf import app_settings
from .models import AuthEvent

logger = logging.getLogger("auth401")

GROUP = "auth401-drain"
#: entries a consumer has held this long unacknowledged are claimed by another
CLAIM_IDLE_MS = 60_000
BATCH = 500


def consumer_name() -> str:
    # One per thread: two drains at once never read the same entries.  Entries one could not
    # write (the database refused) are drained again by it at its next run, or by any other
    # drain once they have waited CLAIM_IDLE_MS.
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def write_events(events: list[dict]) -> int:
    """Insert the rows of ``events`` not written yet (by ``event_id``); apply the failures
    they counted to the database counters.  Answers how many rows were new."""
    from .counters import get_store
    from .counters.database import event_row

    if not events:
        return 0
    ids = {e["event_id"] for e in events if e.get("event_id")}
    user_ids = {e[f] for e in events for f in ("user_id", "actor_id") if e.get(f) is not None}
    with transaction.atomic():
        known = {
            u.hex
            for u in AuthEvent.objects.filter(event_id__in=ids).values_list("event_id", flat=True)
            if u is not None
        }
        live = set(
            get_user_model()._default_manager.filter(pk__in=user_ids).values_list("pk", flat=True)
        )
        rows = []
        counts: Counter[str] = Counter()
        seen: set[str] = set()
        for event in events:
            event_id = str(event.get("event_id") or "")
            if event_id in known or event_id in seen:
                continue
            if event_id:
                seen.add(event_id)
            event = {**event}
            for name in ("user_id", "actor_id"):
                if event.get(name) is not None and event[name] not in live:
                    event[name] = None  # the user was deleted meanwhile
            counts.update(event.pop("counted", None) or ())
            rows.append(event_row(event))
        AuthEvent.objects.bulk_create(rows, ignore_conflicts=True)
    signals.events_written.send_robust(sender=AuthEvent, rows=rows)
    if counts:
        try:
            get_store().add_failures(dict(counts))
        except Exception:
            logger.exception("auth401: drained failure counts could not be added")
    return len(rows)


def apply(events: list[dict]) -> None:
    """Write drained events; an automatic lock of a real account (``account_lock``) is
    applied to its ``AccountStatus`` here, off the request that locked it.  Raises when the
    database refuses (the entries then stay in the stream and are drained again)."""
    from .accounts import apply_auto_locks

    locks = [e for e in events if e.get("account_lock")]
    write_events([e for e in events if not e.get("account_lock")])
    if locks:
        apply_auto_locks(locks)


def _decode(entries: list[Any]) -> tuple[list[Any], list[dict]]:
    ids, events = [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        if not fields:
            continue  # deleted meanwhile
        data = (
            dict(zip(fields[::2], fields[1::2], strict=False))
            if isinstance(fields, list)
            else fields
        )
        payload = data.get(b"e") or data.get("e")
        try:
            event = json.loads(payload or "")
        except (TypeError, ValueError):
            logger.error("auth401: an unreadable event was dropped from the stream")
            continue
        if event:
            events.append(event)
    return ids, events


def drain_once(count: int = BATCH, claim_idle_ms: int = CLAIM_IDLE_MS) -> int:
    """Move up to about ``count`` events (this consumer's own unacknowledged ones, those of
    consumers idle for ``claim_idle_ms``, then new ones) into ``AuthEvent``.  Answers how
    many events were handled; 0 without Redis."""
    from .counters import stream

    store = stream()
    if store is None:
        return 0
    store.ensure_group(GROUP)
    consumer = consumer_name()
    handled = 0
    entries = store.pending(GROUP, consumer, count, claim_idle_ms)
    dropped, fresh = store.read(GROUP, consumer, count)
    entries += fresh
    if dropped:
        logger.error(
            "auth401: %d audit events were trimmed from the stream before any drain read "
            "them (run manage.py auth401_drain, or drain more often)",
            dropped,
        )
    if not entries:
        return 0
    ids, events = _decode(entries)
    apply(events)
    store.ack(GROUP, ids)
    handled += len(ids)
    return handled


#: consumers (one per process and thread that drained) idle this long with nothing pending
#: are removed from the group
FORGET_IDLE_MS = 3_600_000


def forget_idle_consumers() -> int:
    """Remove consumers of exited processes (nothing pending, idle for an hour)."""
    from .counters import stream

    store = stream()
    if store is None:
        return 0
    return store.forget_idle_consumers(GROUP, FORGET_IDLE_MS)


def drain(limit: int | None = None, claim_idle_ms: int = CLAIM_IDLE_MS) -> int:
    """Drain until the stream is empty (or ``limit`` events were handled)."""
    total = 0
    while limit is None or total < limit:
        done = drain_once(claim_idle_ms=claim_idle_ms)
        if not done:
            break
        total += done
    if total:
        forget_idle_consumers()
    return total


_last = [time.monotonic()]  # the first check comes one AUDIT_BATCH_DELAY after start


def after_response() -> None:
    """The cheap check after a response: at most once per ``AUDIT_BATCH_DELAY`` per
    process, drain when events are waiting.  Errors are logged (the events stay)."""
    from .counters import redis_available, stream

    delay = app_settings.AUDIT_BATCH_DELAY.total_seconds()
    now = time.monotonic()
    if now - _last[0] < delay or not redis_available():
        return
    _last[0] = now
    store = stream()
    if store is None:
        return
    try:
        if store.waiting():
            drain(limit=5 * BATCH)
    except Exception:
        logger.exception("auth401: the audit drain failed; the events stay in the stream")
