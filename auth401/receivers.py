"""auth401's receivers of its own and Django's signals, for trusted devices and the owner's
email (connected in ``Auth401Config.ready()``).

- ``account_locked`` from the lockout (``accounts.auto_lock``: no ``by``, the row's
  ``automatic``): with ``NOTIFY_OWNER``, one email to the owner per lock.  The signal is sent
  once per lock (only the change from active to locked sends it), after the response, wherever
  the lock is applied.
- ``post_save`` of the user model with a new password: the user's trusted devices are
  revoked.  Django has no password-changed signal; ``set_password()`` leaves the raw password
  on the instance until just after this signal (as ``auth401.signals`` reads it), so every
  change through the ORM is seen: the admin's form, ``PasswordChangeView``, a password reset,
  ``changepassword``.  A change that bypasses ``save()`` still ends the devices: their cookies
  carry a stamp of the password hash (``devices.stamp``), checked on every login attempt.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import devices, notify
from .accounts import cached_status
from .conf import app_settings
from .signals import account_locked


@receiver(account_locked, dispatch_uid="auth401_notify_owner")
def notify_owner(sender: Any, user: Any, by: Any = None, **kwargs: Any) -> None:
    if not app_settings.NOTIFY_OWNER or by is not None:
        return
    status = cached_status(user)
    if status is None or not status.automatic or status.changed_at is None:
        return
    notify.account_locked_mail(
        user,
        status,
        ip=kwargs.get("ip"),
        request=kwargs.get("request"),
        base=kwargs.get("base_url"),
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="auth401_devices_password")
def revoke_devices_on_password_change(
    sender: Any, instance: Any, created: bool, **kwargs: Any
) -> None:
    if created or getattr(instance, "_password", None) is None:
        return
    devices.revoke_all(instance)
