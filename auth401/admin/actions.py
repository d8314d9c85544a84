"""Lock, suspend, unlock and reinstate from the admin, each through a form that asks why.

The same form serves the user list's and the AccountStatus list's actions (Django's
intermediate-page pattern: the action answers a page, whose form posts back to the
changelist), the buttons of an account's page, and the dashboard's Unlock.  Every change goes
through ``auth401.accounts`` with the administrator as ``by`` and the reason given; an error
there is logged with the request id and shown as an error message, never as a 500 and never
as a success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename, get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from auth401 import accounts
from auth401.forms import AccountChangeForm
from auth401.models import AccountStatus
from auth401.request_id import get_request_id

logger = logging.getLogger("auth401")


@dataclass(frozen=True)
class AccountAction:
    name: str
    #: the action's label in a changelist's action menu
    label: Any
    #: the form page's title and its button
    title: Any
    button: Any
    #: past tense for the message ("2 accounts locked.")
    done: Any
    #: the message when ``accounts`` raised (``names``, ``request_id``)
    failed: Any
    #: what the change records where (the form page says it above the button)
    records: Any = ""
    #: where the reason goes (the reason field's help text)
    reason_goes: Any = ""
    reason_required: bool = False
    asks_end: bool = False

    @property
    def action_name(self) -> str:
        return f"auth401_{self.name}"

    def form(self, data: Any = None, *, reason_goes: Any = None) -> AccountChangeForm:
        form = AccountChangeForm(data, reason_required=self.reason_required, asks_end=self.asks_end)
        form.fields["reason"].help_text = reason_goes or self.reason_goes
        return form

    def apply(self, user: Any, *, by: Any, form: AccountChangeForm) -> Any:
        """``accounts.lock / suspend / unlock / reinstate`` with the form's reason (and end)."""
        change = getattr(accounts, self.name)
        kwargs: dict[str, Any] = {"by": by, "reason": form.cleaned_data["reason"]}
        if self.asks_end:
            kwargs["until"] = form.end()
        return change(user, **kwargs)


ACTIONS: dict[str, AccountAction] = {
    action.name: action
    for action in (
        AccountAction(
            "lock",
            _("Lock selected accounts"),
            _("Lock accounts"),
            _("Lock"),
            _("locked"),
            _(
                "Could not lock %(names)s: the change was not recorded. The error is in the "
                "server log with request id %(request_id)s."
            ),
            records=_(
                "Each account's status becomes “locked” with this reason, the end, you and the "
                "time; its sessions and tokens issued before now stop working; the audit trail "
                "gets an admin_lock event naming the account and you, with the reason as its "
                "note."
            ),
            reason_goes=_(
                "Recorded as the reason on each account's status and as the note of its "
                "admin_lock event."
            ),
            reason_required=True,
            asks_end=True,
        ),
        AccountAction(
            "unlock",
            _("Unlock selected accounts"),
            _("Unlock accounts"),
            _("Unlock"),
            _("unlocked"),
            _(
                "Could not unlock %(names)s: the change was not recorded. The error is in the "
                "server log with request id %(request_id)s."
            ),
            records=_(
                "Each locked account's status becomes “active” with this reason, you and the "
                "time, its failure counters are cleared, and the audit trail gets an "
                "admin_unlock event naming the account and you, with the reason as its note. "
                "An account that is not locked only has its failure counters cleared; nothing "
                "is recorded for it."
            ),
            reason_goes=_(
                "Recorded as the reason on each unlocked account's status and as the note of "
                "its admin_unlock event."
            ),
        ),
        AccountAction(
            "suspend",
            _("Suspend selected accounts"),
            _("Suspend accounts"),
            _("Suspend"),
            _("suspended"),
            _(
                "Could not suspend %(names)s: the change was not recorded. The error is in the "
                "server log with request id %(request_id)s."
            ),
            records=_(
                "Each account's status becomes “suspended” with this reason, you and the time; "
                "its sessions and tokens issued before now stop working; the audit trail gets "
                "an admin_suspend event naming the account and you, with the reason as its "
                "note."
            ),
            reason_goes=_(
                "Recorded as the reason on each account's status and as the note of its "
                "admin_suspend event."
            ),
            reason_required=True,
        ),
        AccountAction(
            "reinstate",
            _("Reinstate selected accounts"),
            _("Reinstate accounts"),
            _("Reinstate"),
            _("reinstated"),
            _(
                "Could not reinstate %(names)s: the change was not recorded. The error is in the "
                "server log with request id %(request_id)s."
            ),
            records=_(
                "Each account's status becomes “active”, whatever it was, with this reason, you "
                "and the time; its failure counters are cleared; the audit trail gets an "
                "admin_reinstate event naming the account and you, with the reason as its "
                "note. Sessions and tokens that a lock or suspension ended stay ended."
            ),
            reason_goes=_(
                "Recorded as the reason on each account's status and as the note of its "
                "admin_reinstate event."
            ),
        ),
        AccountAction(
            "revoke_devices",
            _("Revoke trusted devices of selected users"),
            _("Revoke trusted devices"),
            _("Revoke devices"),
            _("had their trusted devices revoked"),
            _(
                "Could not revoke the devices of %(names)s: nothing was changed. The error is "
                "in the server log with request id %(request_id)s."
            ),
        ),
    )
}


def has_perm(request: HttpRequest, model: Any, action: str) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def can_change_accounts(request: HttpRequest) -> bool:
    """Locking, suspending, unlocking and reinstating need ``change_accountstatus`` and the
    change permission of the user model (they end the user's sessions and tokens), wherever
    they are offered: the user list, an account's page, the dashboard."""
    return has_perm(request, AccountStatus, "change") and has_perm(
        request, get_user_model(), "change"
    )


def may_change_account(request: HttpRequest, user: Any) -> bool:
    """``can_change_accounts``, and only a superuser acts on a superuser's account (a staff
    member must not be able to suspend the people who grant permissions)."""
    acting = request.user
    return can_change_accounts(request) and (
        not getattr(user, "is_superuser", False) or getattr(acting, "is_superuser", False)
    )


def _effective_state(user: Any) -> str:
    status = AccountStatus.objects.filter(user=user).first()
    return status.effective_state() if status else AccountStatus.State.ACTIVE


def perform(
    request: HttpRequest, action: AccountAction, users: Iterable[Any], form: AccountChangeForm
) -> bool:
    """Apply ``action`` to each user and say how it went; True when every change was made."""
    done: list[str] = []
    not_locked: list[str] = []
    failed: list[str] = []
    refused: list[str] = []
    for user in users:
        name = user.get_username()
        if not may_change_account(request, user):
            refused.append(name)
            continue
        was_locked = action.name != "unlock" or _effective_state(user) == "locked"
        try:
            action.apply(user, by=request.user, form=form)
        except Exception:
            logger.exception(
                "auth401 admin: %s of user %s failed (request %s)",
                action.name,
                user.pk,
                get_request_id(request),
            )
            failed.append(name)
        else:
            (done if was_locked else not_locked).append(name)
    if done:
        messages.success(
            request,
            ngettext("%(count)d account %(done)s.", "%(count)d accounts %(done)s.", len(done))
            % {"count": len(done), "done": action.done},
        )
    if not_locked:
        messages.warning(
            request,
            ngettext(
                "%(names)s was not locked; its failure counter was cleared.",
                "%(names)s were not locked; their failure counters were cleared.",
                len(not_locked),
            )
            % {"names": ", ".join(not_locked)},
        )
    if refused:
        messages.error(
            request,
            ngettext(
                "%(names)s was not changed: only a superuser may change a superuser's account.",
                "%(names)s were not changed: only a superuser may change a superuser's account.",
                len(refused),
            )
            % {"names": ", ".join(refused)},
        )
    if failed:
        messages.error(
            request,
            action.failed % {"names": ", ".join(failed), "request_id": get_request_id(request)},
        )
    return not failed and not refused


#: Accounts named on the form page (the rest are counted).
SHOWN_SUBJECTS = 100


def render_form(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    action: AccountAction,
    form: AccountChangeForm,
    *,
    subjects: list[str],
    hidden: list[tuple[str, str]],
    cancel_url: str,
    post_url: str = "",
    title: Any = None,
    records: Any = None,
) -> TemplateResponse:
    """The page that asks why (and, for a lock, until when)."""
    site = model_admin.admin_site
    context = {
        **site.each_context(request),
        "title": title or action.title,
        "subtitle": None,
        "opts": model_admin.opts,
        "action": action,
        "records": records or action.records,
        "form": form,
        "subjects": subjects[:SHOWN_SUBJECTS],
        "more_subjects": max(0, len(subjects) - SHOWN_SUBJECTS),
        "hidden": hidden,
        "cancel_url": cancel_url,
        "post_url": post_url,
        "media": model_admin.media + form.media,
    }
    request.current_app = site.name
    return TemplateResponse(request, "admin/auth401/account_action.html", context)


def list_action(action: AccountAction, users_of: Callable[[QuerySet], list[Any]]) -> Any:
    """A changelist action that asks for the reason on an intermediate page first."""

    @admin.action(description=action.label, permissions=["change"])
    def run(
        model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        users = users_of(queryset)
        if "apply" in request.POST:
            form = action.form(request.POST)
            if form.is_valid():
                perform(request, action, users, form)
                return None  # back to the changelist, with the messages
        else:
            form = action.form()
        hidden = [("action", action.action_name)] + [
            (helpers.ACTION_CHECKBOX_NAME, str(pk)) for pk in queryset.values_list("pk", flat=True)
        ]
        return render_form(
            request,
            model_admin,
            action,
            form,
            subjects=[user.get_username() for user in users],
            hidden=hidden,
            cancel_url=request.get_full_path(),
        )

    run.__name__ = action.action_name
    return run


def users_of_users(queryset: QuerySet) -> list[Any]:
    return list(queryset)


def users_of_statuses(queryset: QuerySet) -> list[Any]:
    return [status.user for status in queryset.select_related("user")]


USER_ACTIONS = [list_action(action, users_of_users) for action in ACTIONS.values()]
STATUS_ACTIONS = [list_action(action, users_of_statuses) for action in ACTIONS.values()]
