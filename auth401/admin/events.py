"""The AuthEvent admin: an append-only audit trail, fast at millions of rows.

Nobody adds, changes or deletes an event here, superusers included: an event's page is
Django's read-only view page, and rows leave only through ``auth401_prune`` and the retention
setting.  The changelist never counts the whole table (``CappedCountPaginator``), its filters
offer fixed choices from the catalogue, and its search matches indexed columns exactly: the
username as the lockout counts it, the client IP in any spelling, or the request id.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from auth401 import accounts
from auth401.models import AccountStatus, AuthEvent

from . import dashboard
from .export import export_csv
from .filters import (
    CleanLookupsMixin,
    CodeFilter,
    CreatedFilter,
    KindFilter,
    SchemeFilter,
    StatusCodeFilter,
    username_match,
)
from .status import admin_url

#: The most rows a changelist query counts; beyond it the list says "10,000+".
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """A ``Paginator`` whose ``count`` stops at ``count_cap`` rows.

    ``SELECT COUNT(*) FROM (SELECT ... LIMIT count_cap + 1)`` reads at most that many index
    entries, where a plain ``COUNT(*)`` reads the whole table (Django ticket #8408).  Pages
    past the cap are still reachable by number.  ``count_kind`` ("exact" or "capped") lets the
    changelist template say which it was.
    """

    count_cap = COUNT_CAP
    count_kind = "exact"
    #: The column the capped count selects (None: the primary key).  One that ends every index
    #: of the table lets PostgreSQL count from the index alone, without visiting the rows.
    count_field: str | None = None

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        rows = queryset.order_by()
        if self.count_field is not None:
            rows = rows.values(self.count_field)
        counted = rows[: self.count_cap + 1].count()
        if counted > self.count_cap:
            self.count_kind = "capped"
            return self.count_cap
        return counted

    @property
    def count_label(self) -> str:
        """The count for a sentence: "10,000"."""
        return f"{self.count:,}"


class EventPaginator(CappedCountPaginator):
    """Every index of ``AuthEvent`` ends with ``created_at``: counted from the index."""

    count_field = "created_at"


@admin.register(AuthEvent)
class AuthEventAdmin(CleanLookupsMixin, admin.ModelAdmin):
    # Seven narrow columns, each free to wrap, so that the list with its filters fits a
    # 1280-pixel screen without a horizontal scroll (the CSV export has every field apart).
    list_display = ("time", "code_status", "who", "ip", "request", "actor_note")
    list_display_links = ("time",)
    list_filter = (CreatedFilter, KindFilter, CodeFilter, StatusCodeFilter, SchemeFilter)
    search_fields = ("username", "ip", "request_id")  # see get_search_results
    search_help_text = _(
        "A username (any case, as the lockout counts it), a client IP address or a request id."
    )
    list_select_related = ("user", "actor", "user__auth401_status")
    ordering = ("-created_at", "-pk")
    paginator = EventPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = [export_csv]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    # The trail is append-only: the view permission shows it, nothing changes it.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """The whole term is one value: a username as the lockout counts it, an IP address
        (any spelling), or a request id; each an exact match on an indexed column."""
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = username_match(term) | Q(request_id=term[:128])
        with contextlib.suppress(ValueError):
            condition |= Q(ip=str(ipaddress.ip_address(term)))
        return queryset.filter(condition), False

    @admin.display(description=_("time"), ordering="created_at")
    def time(self, obj: AuthEvent) -> str:
        """To the second, in the site's time zone (Django's default format stops at minutes)."""
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description=_("code"), ordering="code")
    def code_status(self, obj: AuthEvent) -> str:
        """The code, the HTTP status it was answered with (none for account changes), and
        how many failures the row stands for when it sums several (``× 12``: failures that
        name no one, summed per code, address and path over a short window)."""
        if obj.status_code is None:
            shown = format_html('<span class="auth401-code">{}</span>', obj.code)
        else:
            shown = format_html(
                '<span class="auth401-code">{}</span> <span class="auth401-status">{}</span>',
                obj.code,
                obj.status_code,
            )
        if obj.count > 1:
            shown = format_html(
                '{} <span class="auth401-count" title="{}">× {}</span>',
                shown,
                _("failures this row stands for"),
                obj.count,
            )
        return shown

    @admin.display(description=_("username · account"), ordering="username")
    def who(self, obj: AuthEvent) -> str:
        """The username as typed, the user it named (linked, when it is spelt otherwise) and
        that account's state now (linked to its status)."""
        typed = obj.username
        user = obj.user  # None without a query when user_id is None
        if user is None:
            return typed or "-"
        name = user.get_username()
        url = admin_url(self.admin_site, get_user_model(), "change", obj.user_id)
        shown = typed if typed and typed != name else ""
        link = format_html('<a href="{}">{}</a>', url, name) if url else name
        status = accounts.cached_status(user)
        if status is None:
            state = str(AccountStatus.State.ACTIVE)
        else:
            state_url = admin_url(self.admin_site, AccountStatus, "change", status.pk)
            label = status.effective_state()
            state = format_html('<a href="{}">{}</a>', state_url, label) if state_url else label
        if shown:
            return format_html(
                '{} &rarr; {} <span class="auth401-account">({})</span>', shown, link, state
            )
        return format_html('{} <span class="auth401-account">({})</span>', link, state)

    @admin.display(description=_("request"), ordering="path")
    def request(self, obj: AuthEvent) -> str:
        """Scheme, method and path: ``Basic GET /api/me/``."""
        return " ".join(part for part in (obj.scheme, obj.method, obj.path) if part) or "-"

    @admin.display(description=_("actor · note"))
    def actor_note(self, obj: AuthEvent) -> str:
        """Who made an account change, and its note (the reason)."""
        actor = obj.actor  # None without a query when actor_id is None
        if actor is None:
            return obj.note or "-"
        if not obj.note:
            return format_html('<span class="auth401-actor">{}</span>', actor)
        return format_html('<span class="auth401-actor">{}</span>: {}', actor, obj.note)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="auth401_authevent_dashboard",
            ),
            path(
                "dashboard/unlock-address/",
                self.admin_site.admin_view(self.unlock_address_view),
                name="auth401_authevent_unlock_address",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard.dashboard_view(self, request)

    def unlock_address_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard.unlock_address_view(self, request)
