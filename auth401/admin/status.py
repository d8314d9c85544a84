"""The AccountStatus admin: a view of each account's auth401 state and recent events, and the
lock, suspend, unlock and reinstate buttons and actions, which ask why first."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from auth401.models import AccountStatus, AuthEvent

from .actions import (
    ACTIONS,
    STATUS_ACTIONS,
    can_change_accounts,
    may_change_account,
    perform,
    render_form,
)
from .filters import CleanLookupsMixin, username_match

#: How many of a user's events the AccountStatus page shows.
RECENT_EVENTS = 20


def admin_url(site: admin.AdminSite, model: Any, view: str, *args: Any) -> str | None:
    """The URL of ``view`` of ``model``'s admin, or None when the site does not register it."""
    opts = model._meta
    try:
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args, current_app=site.name
        )
    except NoReverseMatch:
        return None


def account_action_url(site: admin.AdminSite, user_pk: Any, name: str, next_url: str = "") -> str:
    url = reverse(
        "admin:auth401_accountstatus_account_action",
        args=[user_pk, name],
        current_app=site.name,
    )
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


@admin.register(AccountStatus)
class AccountStatusAdmin(CleanLookupsMixin, admin.ModelAdmin):
    list_display = (
        "user",
        "current_state",
        "reason",
        "locked_until",
        "automatic",
        "changed_by",
        "changed_at",
    )
    list_filter = ("state", "automatic")
    list_select_related = ("user", "changed_by")
    raw_id_fields = ("user", "changed_by")
    fields = (
        "user",
        "state",
        "reason",
        "locked_until",
        "automatic",
        "changed_by",
        "changed_at",
        "password_changed_at",
        "tokens_valid_after",
        "recent_events",
    )
    # Nothing is edited in a form: changes go through the buttons and actions, that is through
    # auth401.accounts, which records who did what and why, and revokes what it must.
    readonly_fields = fields
    actions = STATUS_ACTIONS
    change_form_template = "admin/auth401/accountstatus/change_form.html"

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        """The user model's own username field (a custom model may have no ``username``)."""
        return (f"user__{get_user_model().USERNAME_FIELD}", "reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The list's actions need it; an account's page is a view page (nothing to save).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("state"), ordering="state")
    def current_state(self, obj: AccountStatus) -> str:
        """The state in force: a lock whose end has passed shows as active."""
        state = obj.effective_state()
        if state != obj.state:
            return f"{state} ({_('lock ended')})"
        return state

    @admin.display(description=_("recent events"))
    def recent_events(self, obj: AccountStatus) -> str:
        """The user's last ``RECENT_EVENTS`` AuthEvents (linked by user or by username)."""
        if obj.pk is None:
            return "-"
        username = obj.user.get_username()
        events = list(
            AuthEvent.objects.filter(Q(user_id=obj.user_id) | username_match(username))
            .select_related("actor")
            .order_by("-created_at", "-pk")[:RECENT_EVENTS]
        )
        if not events:
            return gettext("No events.")
        rows = format_html_join(
            "\n",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_url(self.admin_site, AuthEvent, "change", event.pk) or "#",
                    timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    event.code,
                    event.status_code or "-",
                    event.ip or "-",
                    event.scheme or "-",
                    event.path or "-",
                    event.actor or "-",
                    event.note or "-",
                )
                for event in events
            ),
        )
        changelist = admin_url(self.admin_site, AuthEvent, "changelist")
        more = (
            format_html(
                '<p><a href="{}?{}">{}</a></p>',
                changelist,
                urlencode({"q": username}),
                _("All events of this user"),
            )
            if changelist
            else ""
        )
        return format_html(
            '<table class="auth401-recent-events"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>{}",
            _("time"),
            _("code"),
            _("HTTP status"),
            _("client IP"),
            _("scheme"),
            _("path"),
            _("actor"),
            _("note"),
            rows,
            more,
        )

    # --- an account's buttons ---

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra: dict[str, Any] = {"auth401_buttons": []}
        obj = self.get_object(request, object_id)
        if obj is not None and can_change_accounts(request):
            state = obj.effective_state()
            names = {
                "active": ("lock", "suspend", "unlock"),
                "locked": ("unlock", "suspend"),
                "suspended": ("reinstate",),
            }[state]
            extra["auth401_buttons"] = [
                {"label": ACTIONS[name].button, "name": name,
                 "url": account_action_url(self.admin_site, obj.user_id, name)}
                for name in names
            ]  # fmt: skip
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self) -> list[Any]:
        return [
            path(
                "user/<str:user_pk>/<str:name>/",
                self.admin_site.admin_view(self.account_action_view),
                name="auth401_accountstatus_account_action",
            ),
            *super().get_urls(),
        ]

    def account_action_view(self, request: HttpRequest, user_pk: str, name: str) -> HttpResponse:
        """Lock, suspend, unlock or reinstate one account (by its user's pk), asking why."""
        action = ACTIONS.get(name)
        if action is None:
            raise Http404(_("No such action."))
        if not can_change_accounts(request):
            raise PermissionDenied
        model = get_user_model()
        try:
            user = model._default_manager.get(pk=model._meta.pk.to_python(user_pk))
        except (ValidationError, ValueError, model.DoesNotExist) as exc:
            raise Http404(_("No such user.")) from exc
        if not may_change_account(request, user):
            raise PermissionDenied
        next_url = request.POST.get("next") or request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = ""
        if request.method == "POST":
            form = action.form(request.POST)
            if form.is_valid():
                perform(request, action, [user], form)
                return HttpResponseRedirect(next_url or self._account_url(user))
        else:
            form = action.form()
        return render_form(
            request,
            self,
            action,
            form,
            subjects=[user.get_username()],
            hidden=[("next", next_url)] if next_url else [],
            cancel_url=next_url or self._account_url(user),
        )

    def _account_url(self, user: Any) -> str:
        status = AccountStatus.objects.filter(user=user).only("pk").first()
        if status is not None:
            return admin_url(self.admin_site, AccountStatus, "change", status.pk) or ""
        return admin_url(self.admin_site, AccountStatus, "changelist") or ""
