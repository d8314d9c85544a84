"""Admin: the AccountStatus admin, lock/unlock/suspend/reinstate actions on the user list too,
and a read-only AuthEvent admin.  Every change goes through ``auth401.accounts``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import accounts
from .models import AccountStatus, AuthEvent

# action name -> (accounts function, label, past tense for the message)
ACCOUNT_ACTIONS: dict[str, tuple[Any, Any, Any]] = {
    "lock": (accounts.lock, _("Lock selected accounts"), _("locked")),
    "unlock": (accounts.unlock, _("Unlock selected accounts"), _("unlocked")),
    "suspend": (accounts.suspend, _("Suspend selected accounts"), _("suspended")),
    "reinstate": (accounts.reinstate, _("Reinstate selected accounts"), _("reinstated")),
}


def _make_action(name: str, users_of: Any) -> Any:
    change, label, done = ACCOUNT_ACTIONS[name]

    @admin.action(description=label, permissions=["change"])
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        users = users_of(queryset)
        for user in users:
            change(user, by=request.user)
        count = len(users)
        modeladmin.message_user(
            request,
            ngettext("%(count)d account %(done)s.", "%(count)d accounts %(done)s.", count)
            % {"count": count, "done": done},
            messages.SUCCESS,
        )

    action.__name__ = f"auth401_{name}"
    return action


def _users(queryset: QuerySet) -> list[Any]:
    return list(queryset)


def _status_users(queryset: QuerySet) -> list[Any]:
    return [status.user for status in queryset.select_related("user")]


USER_ACTIONS = [_make_action(name, _users) for name in ACCOUNT_ACTIONS]
STATUS_ACTIONS = [_make_action(name, _status_users) for name in ACCOUNT_ACTIONS]


@admin.register(AccountStatus)
class AccountStatusAdmin(admin.ModelAdmin):
    list_display = ("user", "state", "reason", "locked_until", "changed_by", "changed_at")
    list_filter = ("state",)
    search_fields = ("user__username", "reason")
    list_select_related = ("user", "changed_by")
    raw_id_fields = ("user", "changed_by")
    readonly_fields = (
        "state",
        "locked_until",
        "changed_by",
        "changed_at",
        "password_changed_at",
        "tokens_valid_after",
    )
    actions = STATUS_ACTIONS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuthEvent)
class AuthEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "code", "status_code", "username", "ip", "scheme", "path")
    list_filter = ("code", "status_code", "scheme")
    search_fields = ("=username", "=ip", "=request_id")
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    show_full_result_count = False
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


def extend_user_admin() -> None:
    """Add the account actions to whatever admin the project registered for its user model.

    Runs when this module is imported by the admin's autodiscovery and again from
    ``Auth401Config.ready()``, so the order of INSTALLED_APPS does not matter."""
    user_model = get_user_model()
    if not admin.site.is_registered(user_model):
        return
    base = type(admin.site.get_model_admin(user_model))
    if getattr(base, "auth401_extended", False):
        return
    base_actions = list(base.actions or [])
    admin.site.unregister(user_model)
    admin.site.register(
        user_model,
        type(
            base.__name__,
            (base,),
            {"actions": base_actions + USER_ACTIONS, "auth401_extended": True},
        ),
    )


extend_user_admin()
