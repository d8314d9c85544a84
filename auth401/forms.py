"""Forms for people: the login forms that say why someone cannot log in, and the form that asks
an administrator why an account is locked, suspended, unlocked or reinstated.

``AuthenticationForm`` is for ``LoginView(authentication_form=...)``; ``AdminAuthenticationForm``
is what auth401 installs as the default admin site's login form when the project has not chosen
one.  The failure comes from ``Auth401Backend`` (left on the request) and passes through
``DISCLOSE_ACCOUNT_STATE`` like every API answer.  The catalogue's ``detail`` says what is
wrong; where its ``hint`` speaks to API clients (``retry_after``, tokens), a person reads the
sentence from ``PEOPLE_HINTS`` instead, with the time left when the lock has an end.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm as DjangoAdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm as DjangoAuthenticationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .backends import stashed_failure
from .codes import translated
from .exceptions import Auth401Error
from .responses import effective

#: What a person should do next, for the codes whose catalogue hint is written for API
#: clients.  ``None``: the sentence depends on the time left (see ``people_message``).
PEOPLE_HINTS: dict[str, Any] = {
    "credentials_invalid": _(
        "Check the username and password and try again. Repeated failures lock the account "
        "for a while."
    ),
    "account_locked": None,
    "address_locked": None,
    "login_busy": _("Too many logins are being checked at once. Try again in a moment."),
}
#: After the time left (or, for locks without an end, alone).
NO_END_HINTS: dict[str, Any] = {
    "account_locked": _("Ask an administrator to unlock the account."),
    "address_locked": _(
        "Too many failed logins came from your network. Ask an administrator to unlock it."
    ),
}
ENDS_HINTS: dict[str, Any] = {
    "account_locked": _("Try again in %(time)s, or ask an administrator to unlock the account."),
    "address_locked": _("Too many failed logins came from your network. Try again in %(time)s."),
}


def time_left(seconds: float) -> str:
    """The time left for a person: 45 seconds, 14 minutes, 3 hours, 2 days (rounded up)."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    hours = math.ceil(minutes / 60)
    if hours < 48:
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    days = math.ceil(hours / 24)
    return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}


def people_message(failure: Auth401Error) -> tuple[str, str]:
    """The failure's detail (the catalogue's) and hint as a login form shows them to a
    person."""
    code = failure.code
    detail = failure.render_detail()
    if code not in PEOPLE_HINTS:
        return detail, failure.render_hint()
    hint = PEOPLE_HINTS[code]
    if hint is not None:
        return detail, translated(hint)
    if failure.retry_after:
        return detail, translated(ENDS_HINTS[code]) % {"time": time_left(failure.retry_after)}
    return detail, translated(NO_END_HINTS[code])


if TYPE_CHECKING:
    _LoginFormBase = DjangoAuthenticationForm
else:  # a mixin at run time: the form it is mixed into comes after it in the MRO
    _LoginFormBase = object


class Auth401FormMixin(_LoginFormBase):
    def get_invalid_login_error(self) -> forms.ValidationError:
        failure = stashed_failure(getattr(self, "request", None))
        if failure is None:
            return super().get_invalid_login_error()
        detail, hint = people_message(effective(failure))
        return forms.ValidationError(
            "%(detail)s %(hint)s", code=failure.code, params={"detail": detail, "hint": hint}
        )


class AuthenticationForm(Auth401FormMixin, DjangoAuthenticationForm):
    pass


class AdminAuthenticationForm(Auth401FormMixin, DjangoAdminAuthenticationForm):
    pass


# --- the admin's reason form ----------------------------------------------------------------

#: Lock durations offered next to a free end time (key -> (duration, label)).
LOCK_DURATIONS: dict[str, tuple[timedelta, Any]] = {
    "15m": (timedelta(minutes=15), _("15 minutes")),
    "1h": (timedelta(hours=1), _("1 hour")),
    "24h": (timedelta(hours=24), _("24 hours")),
    "7d": (timedelta(days=7), _("7 days")),
    "30d": (timedelta(days=30), _("30 days")),
}


class AccountChangeForm(forms.Form):
    """Why an account is locked, suspended, unlocked or reinstated; for a lock, until when.

    ``reason_required``: locks and suspensions must say why.  ``asks_end``: a lock may end
    after a duration or at a time (neither: until unlocked)."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text=_("Recorded on the account and in the audit trail."),
    )
    duration = forms.ChoiceField(
        label=_("Lock for"),
        required=False,
        choices=[("", _("until unlocked"))]
        + [(key, label) for key, (_delta, label) in LOCK_DURATIONS.items()],
    )
    until = forms.DateTimeField(
        label=_("or until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("In the site's time zone. Leave both empty to lock until unlocked."),
    )

    def __init__(
        self, *args: Any, reason_required: bool = False, asks_end: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required
        if not asks_end:
            del self.fields["duration"]
            del self.fields["until"]

    def clean_reason(self) -> str:
        return " ".join(self.cleaned_data["reason"].split())

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is None:  # Form.clean() returns cleaned_data; a None would keep it as it is
            return data
        duration, until = data.get("duration"), data.get("until")
        if duration and until:
            raise forms.ValidationError(_("Choose a duration or an end time, not both."))
        if until is not None and until <= timezone.now():
            self.add_error("until", _("The end must be in the future."))
        return data

    def end(self) -> datetime | timedelta | None:
        """The lock's end for ``accounts.lock(until=...)``: a duration, a time or None."""
        duration = self.cleaned_data.get("duration")
        if duration:
            return LOCK_DURATIONS[duration][0]
        return self.cleaned_data.get("until")
