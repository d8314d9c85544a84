"""Signals for integrations, and auth401's own receivers.

``auth_failed(sender, request, failure, event)``: a request failed; ``failure`` is the
``Auth401Error``, ``event`` an unsaved ``AuthEvent`` with the values of the row being
recorded (the row itself is written separately: after the view, in a batch, or by the
lookup's statement), so changes to ``event`` are not stored and it has no ``pk``.
``account_locked(sender, user, until, by)``, ``account_unlocked(sender, user, by)`` and
``account_status_changed(sender, user, state, previous, by)``: sent by ``auth401.accounts``;
an automatic lock's ``account_locked`` also says which counter locked (``key_kind``:
"username"), after how many ``failures``, from which ``ip``.
``address_locked(sender, address, until, failures, key_kind)``: the lockout locked a client
address (``key_kind`` "ip") after ``failures`` failures, until ``until``.
``events_written(sender, rows)``: the drain wrote these ``AuthEvent`` rows (committed); the
admin dashboard forgets the counts it kept for the hours they land in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save
from django.dispatch import Signal, receiver
from django.utils import timezone

auth_failed = Signal()
account_locked = Signal()
address_locked = Signal()
account_unlocked = Signal()
account_status_changed = Signal()
events_written = Signal()

#: session key holding the login time (epoch seconds), compared with ``tokens_valid_after``.
SESSION_LOGIN_AT = "_auth401_login_at"


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="auth401_password_changed")
def _record_password_change(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    # AbstractBaseUser keeps the raw password in ``_password`` from set_password() until
    # just after this signal, so it tells a password change from any other save.
    if created or getattr(instance, "_password", None) is None:
        return
    from .models import AccountStatus

    now = timezone.now()
    # JWTs issued before this are revoked (failure_for's password_bound); sessions are
    # Django's own business (the session auth hash), and API tokens are not password-bound.
    AccountStatus.objects.update_or_create(user=instance, defaults={"password_changed_at": now})
    from .lockout import forget_passwords

    forget_passwords(instance)


def session_issued_at(session: Any) -> datetime:
    """When the session's user logged in.  A session from before auth401 recorded it counts
    as issued at the epoch: older than any lock, so a lock or suspension ends it too."""
    login_at = session.get(SESSION_LOGIN_AT)
    if not isinstance(login_at, int) or isinstance(login_at, bool):
        login_at = 0
    return datetime.fromtimestamp(login_at, UTC)


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
AUTH401_BACKEND = "auth401.backends.Auth401Backend"


@receiver(user_logged_in, dispatch_uid="auth401_login_time")
def _record_login_time(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    session[SESSION_LOGIN_AT] = int(time.time())
    # A login through plain ModelBackend (allauth, social logins, login(backend=...)) is served
    # from then on by Auth401Backend, which loads the same user with its AccountStatus joined.
    if session.get(BACKEND_SESSION_KEY) == MODEL_BACKEND and AUTH401_BACKEND in (
        settings.AUTHENTICATION_BACKENDS
    ):
        session[BACKEND_SESSION_KEY] = AUTH401_BACKEND
