"""Trusted devices: a browser or client that has logged in with its owner's password keeps its
own failure budget while the username is locked for everyone else (OWASP's device cookies).

After a successful password login (``LoginView``, the admin login, simplejwt's token view, any
view that calls ``authenticate()``; not Basic, whose every request is a login), the response
sets a signed cookie (``DEVICE_COOKIE_NAME``; HttpOnly, ``SameSite=Lax``, ``Secure`` under
HTTPS) naming a ``Device`` row of that user.  A later login attempt that presents it for the
same account (``trusted``) counts on the device's own key (``DEVICE_FAILURE_LIMIT``) instead
of the username's, and is not refused by the username's automatic lock.  Admin locks and
suspensions still refuse it (``accounts.failure_for``).

The cookie carries the device id, the user's primary key and a short stamp of the user's
session auth hash (Django's HMAC of the password hash): a password change, however it is
saved, invalidates every cookie as it invalidates sessions; ``revoke_all`` also marks the rows
(a password change, an admin lock or suspension, an administrator), and ``revoke`` one.

One cookie binds one device to one user: logging in as someone else on the same browser binds
it to the new user.  Each user keeps at most ``DEVICES_PER_USER`` rows, the least recently
seen go first.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.http import HttpResponseBase
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from . import state
from .client_ip import client_ip
from .conf import app_settings
from .events import clean
from .lockout import device_key, get_store
from .models import Device
from .request_id import http_request

logger = logging.getLogger("auth401")

#: the signing salt of the cookie (a value signed for anything else never passes)
SALT = "auth401.devices.cookie"
#: how long a cookie (and its signature) lives; every password login renews it
COOKIE_AGE = timedelta(days=365)
#: the rows kept per user, the most recently seen
DEVICES_PER_USER = 50
#: hex characters of the session auth hash in the cookie: enough to tell a changed password,
#: useless offline (an HMAC keyed with SECRET_KEY)
STAMP_LENGTH = 16


@dataclass(frozen=True)
class Presented:
    """A device cookie that verified and names a live ``Device`` row."""

    device: Device
    user_pk: str
    stamp: str


def enabled() -> bool:
    return bool(app_settings.DEVICES_ENABLED)


def stamp(user: Any) -> str:
    return str(user.get_session_auth_hash())[:STAMP_LENGTH]


def cookie_value(device_id: uuid.UUID, user: Any) -> str:
    return signing.dumps(
        {"d": device_id.hex, "u": str(user.pk), "h": stamp(user)}, salt=SALT, compress=False
    )


def _parse(value: str) -> tuple[uuid.UUID, str, str] | None:
    try:
        data = signing.loads(value, salt=SALT, max_age=COOKIE_AGE)
    except signing.BadSignature:  # also SignatureExpired
        return None
    except ValueError:  # not JSON after a good signature: cannot happen, never a 500
        return None
    if not isinstance(data, dict):
        return None
    device, user_pk, user_stamp = data.get("d"), data.get("u"), data.get("h")
    if not (isinstance(device, str) and isinstance(user_pk, str) and isinstance(user_stamp, str)):
        return None
    try:
        return uuid.UUID(hex=device), user_pk, user_stamp
    except ValueError:
        return None


def presented(request: Any) -> Presented | None:
    """The request's device cookie when it verifies and its row is not revoked: read once per
    request (one query, only when a cookie is sent), cached on the request state."""
    if request is None:
        return None
    current = state.of(request)
    if current.device_read:
        return current.device
    current.device_read = True
    if not enabled():
        return None
    value = http_request(request).COOKIES.get(app_settings.DEVICE_COOKIE_NAME)
    parsed = _parse(value) if value else None
    if parsed is None:
        return None
    device_id, user_pk, user_stamp = parsed
    device = Device.objects.filter(pk=device_id, revoked_at__isnull=True).first()
    if device is None or str(device.user_id) != user_pk:
        return None
    current.device = Presented(device, user_pk, user_stamp)
    return current.device


def trusted(request: Any, user: Any) -> Device | None:
    """The device this request presents for ``user``'s login attempt, or None: no cookie, a
    bad or revoked one, another user's, or one from before the user's last password change."""
    if user is None or getattr(user, "pk", None) is None:
        return None
    found = presented(request)
    if found is None or found.user_pk != str(user.pk):
        return None
    if not constant_time_compare(found.stamp, stamp(user)):
        return None
    return found.device


def set_cookie(request: Any, response: HttpResponseBase) -> None:
    """Called by the middleware on every response: after a successful password login (not
    Basic), bind this device to the user: renew its cookie, or make a new device (its row is
    written after the response)."""
    if not enabled():
        return
    current = state.of(request)
    user = current.password_login
    if user is None or current.scheme == "Basic" or response.status_code >= 400:
        return
    req = http_request(request)
    device = trusted(request, user)
    now = timezone.now()
    ip = client_ip(req)
    user_agent = clean(req.META.get("HTTP_USER_AGENT"), 255)
    if device is None:
        device = Device(
            id=uuid.uuid4(), user=user, first_seen=now, last_seen=now, ip=ip, user_agent=user_agent
        )
        new = True
    else:
        new = False
    response.set_cookie(
        app_settings.DEVICE_COOKIE_NAME,
        cookie_value(device.pk, user),
        max_age=int(COOKIE_AGE.total_seconds()),
        secure=req.is_secure(),
        httponly=True,
        samesite="Lax",
    )
    current.after_response(lambda: _seen(device, new, now, ip, user_agent))


def _seen(device: Device, new: bool, now: datetime, ip: str | None, user_agent: str) -> None:
    if not new:
        Device.objects.filter(pk=device.pk).update(last_seen=now, ip=ip, user_agent=user_agent)
        return
    device.save(force_insert=True)
    stale = Device.objects.filter(user_id=device.user_id).order_by("-last_seen")[DEVICES_PER_USER:]
    Device.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    if app_settings.NOTIFY_NEW_DEVICE:
        from .notify import new_device_mail

        new_device_mail(device)


def clear_counters(user: Any) -> None:
    """Forget the failure counters and locks of ``user``'s live devices (an unlock)."""
    ids = Device.objects.filter(user=user, revoked_at__isnull=True).values_list("pk", flat=True)
    for device_id in ids:
        get_store().clear(device_key(device_id))


def revoke_all(user: Any, *, now: datetime | None = None) -> int:
    """Revoke every live device of ``user`` (in the caller's transaction); how many."""
    return Device.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )


def revoke(device: Device, *, now: datetime | None = None) -> bool:
    """Revoke one device; False when it already was."""
    done = Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )
    return bool(done)
