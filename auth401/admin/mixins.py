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
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from auth401 import devices
from auth401.conf import app_settings
from auth401.models import AccountStatus, Device

from .actions import ACTIONS, USER_ACTIONS, can_change_accounts
from .filters import CleanLookupsMixin
from .status import account_action_url, admin_url

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


if TYPE_CHECKING:
    _UserAdminBase = admin.ModelAdmin[Any]
else:  # a mixin at run time: the user admin it is mixed into comes after it in the MRO
    _UserAdminBase = object


class AccountActionsMixin(CleanLookupsMixin, _UserAdminBase):
    """Adds "Lock / Unlock / Suspend / Reinstate selected accounts" and "Revoke trusted
    devices" to a user ModelAdmin, an "Account status" section to a user's page with the
    state, the reason and the buttons (each change asks for a reason, and for a lock an end,
    before calling ``auth401.accounts``), and the user's trusted devices (first and last seen,
    address, user agent), each with a revoke box (``DEVICES_ENABLED``).  Its list answers bad
    URL lookups and action selections as auth401's own admins do (``CleanLookupsMixin``),
    never with a 500."""

    def get_inlines(self, request: Any, obj: Any) -> Any:
        inlines = list(super().get_inlines(request, obj))
        if obj is not None and devices.enabled():
            inlines.append(DeviceInline)
        return inlines

    def get_fieldsets(self, request: Any, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [*fieldsets, (_("Account status"), {"fields": ["auth401_account"]})]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return fields if obj is None else [*fields, "auth401_account"]

    @admin.display(description=_("state"))
    def auth401_account(self, obj: Any) -> str:
        site = self.admin_site
        status = AccountStatus.objects.filter(user=obj).select_related("changed_by").first()
        state = status.effective_state() if status else AccountStatus.State.ACTIVE
        buttons: str
        try:
            buttons = format_html_join(
                " ",
                '<a class="button auth401-{}" href="{}">{}</a>',
                (
                    (name, account_action_url(site, obj.pk, name), ACTIONS[name].button)
                    for name in BUTTONS[state]
                    if name not in DEVICE_ACTIONS or devices.enabled()
                ),
            )
        except NoReverseMatch:  # a site without auth401's admins
            buttons = ""
        details = ""
        if status is not None and state != AccountStatus.State.ACTIVE:
            details = format_html(
                " &middot; {}: {}",
                _("reason"),
                status.reason or "-",
            )
        page = admin_url(site, AccountStatus, "change", status.pk) if status else None
        link = format_html(' &middot; <a href="{}">{}</a>', page, _("details")) if page else ""
        return format_html(
            '<span class="auth401-state">{}</span>{}{}<div class="auth401-buttons">{}</div>',
            state,
            details,
            link,
            buttons,
        )

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
