from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AccountStatus(models.Model):
    """The auth401 state of one user; created lazily, no row means an active account.

    Change it only through ``auth401.accounts`` (lock, suspend, unlock, reinstate), which
    records an ``AuthEvent`` and sends the signals.
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        LOCKED = "locked", _("locked")
        SUSPENDED = "suspended", _("suspended")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="auth401_status",
        verbose_name=_("user"),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.ACTIVE, db_index=True
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    locked_until = models.DateTimeField(
        _("locked until"), null=True, blank=True, help_text=_("Empty: until unlocked.")
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    automatic = models.BooleanField(
        _("locked automatically"),
        default=False,
        help_text=_(
            "Locked by the lockout after failed logins: refuses password logins only, so an "
            "attacker cannot end the owner's existing sessions and tokens."
        ),
    )
    password_changed_at = models.DateTimeField(_("password changed at"), null=True, blank=True)
    tokens_valid_after = models.DateTimeField(
        _("credentials valid after"),
        null=True,
        blank=True,
        help_text=_(
            "Tokens and sessions issued before this moment are revoked (set by a lock, a "
            "suspension or a password change)."
        ),
    )

    class Meta:
        verbose_name = _("account status")
        verbose_name_plural = _("account statuses")

    def __str__(self) -> str:
        return f"{self.user}: {self.effective_state()}"

    def effective_state(self, now: datetime | None = None) -> str:
        """The state in force now: a lock whose end has passed counts as active."""
        ended = self.locked_until is not None and self.locked_until <= (now or timezone.now())
        if self.state == self.State.LOCKED and ended:
            return self.State.ACTIVE
        return self.state


class FailureCounter(models.Model):
    """Failed-login counters, checks in flight and automatic locks, one row per counter key
    (account, unknown name, client address, pair); with Redis counters, the mirror of their
    failures and automatic locks (written through before each answer: what holds while Redis is
    down or after it lost them).  Times are epoch milliseconds so that one portable upsert
    statement can compare them everywhere.
    """

    counter_key = models.CharField(max_length=80, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_ends = models.BigIntegerField(default=0)
    locked_until = models.BigIntegerField(default=0)
    lock_level = models.PositiveSmallIntegerField(default=0)
    #: password checks in flight (admitted, outcome not known yet); they stop counting at
    #: ``in_flight_until`` (10 s after the last admission), so a killed worker's place frees
    in_flight = models.PositiveIntegerField(default=0, db_default=0)
    in_flight_until = models.BigIntegerField(default=0, db_default=0)
    #: the last attempt admitted (tells an attempt whether the upsert admitted it)
    last_attempt = models.CharField(max_length=32, blank=True, default="", db_default="")
    #: the last ``REPEATED_PASSWORD_MEMORY`` wrong passwords' fingerprints (32-bit keyed
    #: HMACs, comma-separated, newest first; never a password): a repeat is not counted again
    recent = models.CharField(max_length=99, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("failure counter")
        verbose_name_plural = _("failure counters")
        indexes = [models.Index(fields=["window_ends"], name="auth401_counter_window")]

    def __str__(self) -> str:
        return f"{self.counter_key}: {self.failures}"


class AuthEvent(models.Model):
    """The audit trail: one row per failure, per admin status change, per audited success.

    Never a password, a token or a session key: tokens are kept as a short keyed fingerprint.
    """

    created_at = models.DateTimeField(_("time"), default=timezone.now)
    code = models.CharField(_("code"), max_length=40)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    username = models.CharField(_("username as typed"), max_length=150, blank=True)
    username_normalised = models.CharField(
        _("username (normalised)"),
        max_length=150,
        blank=True,
        default="",
        db_default="",  # rows inserted without it (raw SQL, older writers) get ""
        help_text=_("Case-folded NFKC, as the lockout counts it."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    method = models.CharField(_("method"), max_length=10, blank=True)
    path = models.CharField(_("path"), max_length=255, blank=True)
    scheme = models.CharField(_("scheme"), max_length=20, blank=True)
    request_id = models.CharField(_("request id"), max_length=128, blank=True)
    token_fingerprint = models.CharField(_("token fingerprint"), max_length=16, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    note = models.CharField(_("note"), max_length=255, blank=True)
    count = models.PositiveIntegerField(
        _("count"),
        default=1,
        db_default=1,
        help_text=_(
            "Failures this row stands for: failures that name no one (no credentials, a bad "
            "token) are summed per code, address and path over a short window."
        ),
    )
    last_seen = models.DateTimeField(
        _("last seen"),
        null=True,
        blank=True,
        help_text=_("The last of the failures this row counts (the first is its time)."),
    )
    event_id = models.UUIDField(
        _("event id"),
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text=_("Made where the failure happened: the drain writes each event once."),
    )

    class Meta:
        verbose_name = _("authentication event")
        verbose_name_plural = _("authentication events")
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["-created_at"], name="auth401_event_created"),
            models.Index(fields=["username", "-created_at"], name="auth401_event_username"),
            models.Index(fields=["ip", "-created_at"], name="auth401_event_ip"),
            models.Index(fields=["code", "-created_at"], name="auth401_event_code"),
            # The admin's exact search and its status and scheme filters.
            models.Index(fields=["request_id"], name="auth401_event_request_id"),
            models.Index(fields=["status_code", "-created_at"], name="auth401_event_status"),
            models.Index(fields=["scheme", "-created_at"], name="auth401_event_scheme"),
            models.Index(
                fields=["username_normalised", "-created_at"], name="auth401_event_normalised"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.code} {self.username}"


class Device(models.Model):
    """A browser or client that logged in with its owner's password (a trusted device): it
    holds a signed cookie naming this row.  An attempt that presents it for its owner's
    username counts on the device's own failure counter and is not refused by the username's
    automatic lock.  A password change, an admin lock or suspension, or an administrator
    revokes it (``revoked_at``)."""

    id = models.UUIDField(primary_key=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="auth401_devices",
        verbose_name=_("user"),
    )
    first_seen = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen = models.DateTimeField(_("last seen"), default=timezone.now)
    ip = models.GenericIPAddressField(_("address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("trusted device")
        verbose_name_plural = _("trusted devices")
        indexes = [models.Index(fields=["user", "-last_seen"], name="auth401_device_user")]

    def __str__(self) -> str:
        return f"{self.user}: {self.user_agent[:40] or self.ip or self.pk}"
