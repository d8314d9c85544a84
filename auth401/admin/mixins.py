"""The account actions on the project's own user admin.

Either add :class:`AccountActionsMixin` to the project's ``UserAdmin``::

    from django.contrib.auth.admin import UserAdmin
    from auth401.admin import AccountActionsMixin

    class MyUserAdmin(AccountActionsMixin, UserAdmin): ...

or leave ``AUTH401["ADMIN_USER_ACTIONS"]`` at True: once the admin has registered every
model (``Auth401Config.ready()``), :func:`extend_user_admin` registers a subclass of whatever
admin the default site has for the user model with the mixin added.  It does nothing when the
admin already has the actions, when no admin is registered for the user model, or with
``ADMIN_USER_ACTIONS = False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from auth401 import accounts, devices
from auth401.conf import app_settings
from auth401.forms import time_left
from auth401.models import AccountStatus, AuthEvent, Device

from .actions import ACTIONS, USER_ACTIONS, can_change_accounts
from .filters import CleanLookupsMixin
from .login_facts import RECENT_EVENTS, login_facts
from .status import account_action_url, admin_url

#: The user model's reverse relation to its ``AccountStatus``.
STATUS = "auth401_status"

#: The buttons a user's page offers in each state.
BUTTONS = {
    "active": ("lock", "suspend", "revoke_devices"),
    "locked": ("unlock", "suspend", "revoke_devices"),
    "suspended": ("reinstate",),
}
#: Shown only with ``DEVICES_ENABLED``.
DEVICE_ACTIONS = ("revoke_devices",)


class DeviceForm(forms.ModelForm):
    """One trusted device on its user's page: everything read-only but the revoke box."""

    revoke = forms.BooleanField(label=_("revoke"), required=False)

    class Meta:
        model = Device
        fields: list[str] = []

    def save(self, commit: bool = True) -> Any:
        device = super().save(commit=False)
        if self.cleaned_data.get("revoke") and device.revoked_at is None:
            device.revoked_at = timezone.now()
            if commit:
                devices.revoke(device, now=device.revoked_at)
        return device


class DeviceInline(admin.TabularInline):
    """A user's trusted devices, most recently seen first; tick "revoke" and save."""

    model = Device
    form = DeviceForm
    fk_name = "user"
    extra = 0
    can_delete = False
    ordering = ("-last_seen",)
    fields = ("first_seen", "last_seen", "ip", "user_agent", "revoked_at", "revoke")
    readonly_fields = ("first_seen", "last_seen", "ip", "user_agent", "revoked_at")
    verbose_name = _("trusted device")
    verbose_name_plural = _("trusted devices")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return can_change_accounts(request)


class AccountStateFilter(admin.SimpleListFilter):
    """The user list by the account's state in force: a lock whose end has passed is active.
    One join on the account status (its ``state`` is indexed), never a query per user."""

    title = _("account state")
    parameter_name = "auth401_state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("active", _("active")),
            ("locked", _("locked")),
            ("automatic", _("locked automatically")),
            ("manual", _("locked by an administrator")),
            ("suspended", _("suspended")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        now = timezone.now()
        locked = Q(**{f"{STATUS}__state": AccountStatus.State.LOCKED}) & (
            Q(**{f"{STATUS}__locked_until__isnull": True})
            | Q(**{f"{STATUS}__locked_until__gt": now})
        )
        suspended = Q(**{f"{STATUS}__state": AccountStatus.State.SUSPENDED})
        if value == "active":  # no row, an active row, or a lock whose end has passed
            return queryset.filter(
                Q(**{f"{STATUS}__isnull": True})
                | Q(**{f"{STATUS}__state": AccountStatus.State.ACTIVE})
                | Q(
                    **{
                        f"{STATUS}__state": AccountStatus.State.LOCKED,
                        f"{STATUS}__locked_until__lte": now,
                    }
                )
            )
        if value == "locked":
            return queryset.filter(locked)
        if value in ("automatic", "manual"):
            return queryset.filter(locked, **{f"{STATUS}__automatic": value == "automatic"})
        if value == "suspended":
            return queryset.filter(suspended)
        return queryset.none()


if TYPE_CHECKING:
    _UserAdminBase = admin.ModelAdmin[Any]
else:  # a mixin at run time: the user admin it is mixed into comes after it in the MRO
    _UserAdminBase = object


class AccountActionsMixin(CleanLookupsMixin, _UserAdminBase):
    """Adds "Lock / Unlock / Suspend / Reinstate selected accounts" and "Revoke trusted
    devices" to a user ModelAdmin, an "account" column and an "account state" filter to its
    list, and, at the top of a user's page, an "Account status" section that answers "why
    can't this person log in": the state, its reason, who set it and since when, its end
    (automatic locks included), the failure counters and the locks on the client addresses of
    the user's recent events, with the buttons.  Each change asks for a reason (and, for a
    lock, an end) before calling ``auth401.accounts``.  The user's trusted devices (first and
    last seen, address, user agent) are listed, each with a revoke box (``DEVICES_ENABLED``).
    Its list answers bad URL lookups and action selections as auth401's own admins do
    (``CleanLookupsMixin``), never with a 500."""

    def get_inlines(self, request: Any, obj: Any) -> Any:
        inlines = list(super().get_inlines(request, obj))
        if obj is not None and devices.enabled():
            inlines.append(DeviceInline)
        return inlines

    def get_fieldsets(self, request: Any, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [(_("Account status"), {"fields": ["auth401_account"]}), *fieldsets]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return fields if obj is None else [*fields, "auth401_account"]

    # --- the list: a state column and filter, joined (no query per row) ---

    def get_list_display(self, request: Any) -> Any:
        return [*super().get_list_display(request), "auth401_state"]

    def get_list_filter(self, request: Any) -> Any:
        return [*super().get_list_filter(request), AccountStateFilter]

    def get_list_select_related(self, request: Any) -> Any:
        """The admin's own joins, and the account status (the state column reads it)."""
        base = super().get_list_select_related(request)
        if isinstance(base, (list, tuple)):
            return (*base, STATUS)
        # True or False: Django would join the foreign keys itself (all non-null ones, or
        # those of list_display); a list must name them.
        shown = set(self.get_list_display(request))
        names = [
            f.name
            for f in self.model._meta.get_fields()
            if f.many_to_one and f.concrete and (not f.null if base else f.name in shown)
        ]
        return (*names, STATUS)

    @admin.display(description=_("account"), ordering="auth401_status__state")
    def auth401_state(self, obj: Any) -> str:
        """The state in force (a lock whose end has passed: active), from the joined row."""
        status = accounts.cached_status(obj)
        if status is None:
            return str(AccountStatus.State.ACTIVE)
        state = status.effective_state()
        if state == AccountStatus.State.LOCKED and status.automatic:
            return f"{state} ({_('automatic')})"
        return state

    # --- a user's page ---

    @admin.display(description=_("Login"))
    def auth401_account(self, obj: Any) -> str:
        site = self.admin_site
        now = timezone.now()
        facts = login_facts(obj, now)
        status = facts.status
        may_change = True
        try:
            buttons = format_html_join(
                " ",
                '<a class="button auth401-{}" href="{}">{}</a>',
                (
                    (name, account_action_url(site, obj.pk, name), ACTIONS[name].button)
                    for name in BUTTONS[facts.state]
                    if name not in DEVICE_ACTIONS or devices.enabled()
                ),
            )
            unlock_address = reverse(
                "admin:auth401_authevent_unlock_address", current_app=site.name
            )
        except NoReverseMatch:  # a site without auth401's admins
            buttons, unlock_address, may_change = format_html(""), "", False
        page = admin_url(site, get_user_model(), "change", obj.pk) or ""
        addresses = [
            {
                "facts": address,
                "unlock_url": (
                    f"{unlock_address}?" + urlencode({"address": address.counted_as, "next": page})
                )
                if may_change and address.address_counter and address.address_counter.locked
                else "",
            }
            for address in facts.addresses
        ]
        changelist = admin_url(site, AuthEvent, "changelist")
        actor = facts.actor
        context = {
            "facts": facts,
            "addresses": addresses,
            "pair_counted": "username+ip" in app_settings.LOCKOUT_KEYS,
            "recent_events": RECENT_EVENTS,
            "ends_in": time_left((facts.ends - now).total_seconds()) if facts.ends else "",
            "buttons": buttons,
            "status_url": admin_url(site, AccountStatus, "change", status.pk)
            if status is not None and status.pk
            else None,
            "events_url": f"{changelist}?{urlencode({'q': facts.username})}"
            if changelist
            else None,
            "actor_url": admin_url(site, get_user_model(), "change", actor.pk) if actor else None,
        }
        return render_to_string("admin/auth401/user_login_facts.html", context)

    def get_actions(self, request: Any) -> dict[str, Any]:
        """The admin's own actions, and auth401's for whoever may change users and accounts."""
        actions = super().get_actions(request)
        if self.has_change_permission(request) and can_change_accounts(request):
            for action in USER_ACTIONS:
                if action.__name__ == "auth401_revoke_devices" and not devices.enabled():
                    continue
                actions[action.__name__] = (
                    action,
                    action.__name__,
                    action.short_description,
                )
        return actions


def user_actions_enabled() -> bool:
    """``AUTH401["ADMIN_USER_ACTIONS"]`` (default True)."""
    return bool(app_settings.ADMIN_USER_ACTIONS)


def extend_user_admin(site: admin.AdminSite | None = None) -> bool:
    """Give the user model's registered admin the account actions; True when it did."""
    site = site or admin.site
    user_model = get_user_model()
    if not user_actions_enabled() or not site.is_registered(user_model):
        return False
    base = type(site.get_model_admin(user_model))
    if issubclass(base, AccountActionsMixin):
        return False
    site.unregister(user_model)
    extended = type(base.__name__, (AccountActionsMixin, base), {"__module__": base.__module__})
    site.register(user_model, extended)
    return True
