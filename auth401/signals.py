"""Signals for integrations, and auth401's own receivers.

``auth_failed(sender, request, failure, event)``: a request failed; ``failure`` is the
``Auth401Error``, ``event`` the ``AuthEvent`` being recorded (maybe not yet saved).
``account_locked(sender, user, until, by)``, ``account_unlocked(sender, user, by)`` and
``account_status_changed(sender, user, state, previous, by)``: sent by ``auth401.accounts``.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save
from django.dispatch import Signal, receiver
from django.utils import timezone

auth_failed = Signal()
account_locked = Signal()
account_unlocked = Signal()
account_status_changed = Signal()

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


@receiver(user_logged_in, dispatch_uid="auth401_login_time")
def _record_login_time(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_LOGIN_AT] = int(time.time())
