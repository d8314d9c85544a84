"""Emails to an account's owner: its automatic lock (``NOTIFY_OWNER``, with a self-service
unlock link) and a new device's first login (``NOTIFY_NEW_DEVICE``).

Both go through Django's email backend (``EmailMultiAlternatives``: a text body and an HTML
alternative), from templates a project overrides by putting its own at the same path:

- ``auth401/email/account_locked_subject.txt``, ``account_locked.txt``, ``account_locked.html``
- ``auth401/email/new_device_subject.txt``, ``new_device.txt``, ``new_device.html``

They are sent from work that runs after the response (the lock's mirror, the device's row), so
no answer waits for the mail server and no answer changes: a lock is mailed only for a real
account with an email address, never for an unknown name.  A failure to send is logged.

The unlock link (``unlock_token`` / ``read_unlock_token``) is signed (its own salt), names the
user and the moment of the lock (``AccountStatus.changed_at``), and expires after
``LOCKOUT_MAX_DURATION`` (no lock lasts longer).  The view (``auth401.views.unlock``) accepts
it only while the account is under that same automatic lock: it works once, and never against
an admin lock or a suspension.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from .conf import app_settings
from .request_id import http_request

logger = logging.getLogger("auth401")

UNLOCK_SALT = "auth401.notify.unlock"
TEMPLATES = "auth401/email/"


def unlock_token(user: Any, changed_at: datetime) -> str:
    return signing.dumps(
        {"u": str(user.pk), "c": changed_at.isoformat()}, salt=UNLOCK_SALT, compress=False
    )


def read_unlock_token(token: str) -> tuple[Any, datetime] | None:
    """(the user, the moment of the lock) a good, unexpired token names; else None."""
    max_age = app_settings.LOCKOUT_MAX_DURATION
    try:
        data = signing.loads(token, salt=UNLOCK_SALT, max_age=max_age)
    except signing.BadSignature:  # also SignatureExpired
        return None
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "uc"):
        return None
    try:
        changed_at = datetime.fromisoformat(data["c"])
    except ValueError:
        return None
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=data["u"])
    except (model.DoesNotExist, ValueError, TypeError):
        return None
    return user, changed_at


def base_url(request: Any = None) -> str | None:
    """``NOTIFY_BASE_URL``, else the scheme and host of ``request``."""
    configured = app_settings.NOTIFY_BASE_URL
    if configured:
        return str(configured).rstrip("/")
    if request is None:
        return None
    try:
        return http_request(request).build_absolute_uri("/").rstrip("/")
    except Exception:  # DisallowedHost: no link rather than a guessed host
        return None


def unlock_url(
    user: Any, changed_at: datetime, request: Any = None, base: str | None = None
) -> str | None:
    base = base or base_url(request)
    if base is None:
        return None
    try:
        path = reverse("auth401:unlock", args=[unlock_token(user, changed_at)])
    except NoReverseMatch:
        return None
    return base + path


def _send(user: Any, name: str, context: dict[str, Any]) -> bool:
    address = getattr(user, "email", "") or ""
    if not address:
        return False
    context = {"user": user, "username": user.get_username(), **context}
    subject = " ".join(render_to_string(f"{TEMPLATES}{name}_subject.txt", context).split())
    text = render_to_string(f"{TEMPLATES}{name}.txt", context)
    html = render_to_string(f"{TEMPLATES}{name}.html", context)
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [address], alternatives=[(html, "text/html")]
    )
    try:
        message.send()
    except Exception:
        logger.exception("auth401: the %s email to user %s could not be sent", name, user.pk)
        return False
    return True


def account_locked_mail(
    user: Any, status: Any, *, ip: str | None, request: Any = None, base: str | None = None
) -> bool:
    """The owner's email about an automatic lock (``NOTIFY_OWNER``); True when sent.  ``base``:
    the site's address as the locking request saw it (the drain applies locks with no
    request)."""
    link = unlock_url(user, status.changed_at, request, base)
    if link is None:
        logger.warning(
            "auth401: the lock email to user %s has no unlock link (set NOTIFY_BASE_URL and "
            "include auth401.urls)",
            user.pk,
        )
    context = {
        "locked_at": status.changed_at,
        "locked_until": status.locked_until,
        "ip": ip,
        "unlock_url": link,
    }
    return _send(user, "account_locked", context)


def new_device_mail(device: Any) -> bool:
    """The owner's email about a device's first login (``NOTIFY_NEW_DEVICE``)."""
    context = {
        "seen_at": device.first_seen,
        "ip": device.ip,
        "user_agent": device.user_agent,
    }
    return _send(device.user, "new_device", context)
