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

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from auth401.conf import app_settings
from auth401.models import AccountStatus

from .actions import ACTIONS, USER_ACTIONS, can_change_accounts
from .filters import CleanLookupsMixin
from .status import account_action_url, admin_url

#: The buttons a user's page offers in each state.
BUTTONS = {
    "active": ("lock", "suspend"),
    "locked": ("unlock", "suspend"),
    "suspended": ("reinstate",),
}

if TYPE_CHECKING:
    _UserAdminBase = admin.ModelAdmin[Any]
else:  # a mixin at run time: the user admin it is mixed into comes after it in the MRO
    _UserAdminBase = object


class AccountActionsMixin(CleanLookupsMixin, _UserAdminBase):
    """Adds "Lock / Unlock / Suspend / Reinstate selected accounts" to a user ModelAdmin, and
    an "Account status" section to a user's page with the state, the reason and the buttons;
    each change asks for a reason (and, for a lock, an end) before calling
    ``auth401.accounts``.  Its list answers bad URL lookups and action selections as
    auth401's own admins do (``CleanLookupsMixin``), never with a 500."""

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
