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

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        counted = queryset.order_by()[: self.count_cap + 1].count()
        if counted > self.count_cap:
            self.count_kind = "capped"
            return self.count_cap
        return counted

    @property
    def count_label(self) -> str:
        """The count for a sentence: "10,000"."""
        return f"{self.count:,}"


@admin.register(AuthEvent)
class AuthEventAdmin(CleanLookupsMixin, admin.ModelAdmin):
    list_display = (
        "time",
        "code",
        "status_code",
        "username",
        "user_link",
        "account_link",
        "ip",
        "scheme",
        "path",
        "actor",
        "note",
    )
    list_display_links = ("time",)
    list_filter = (CreatedFilter, KindFilter, CodeFilter, StatusCodeFilter, SchemeFilter)
    search_fields = ("username", "ip", "request_id")  # see get_search_results
    search_help_text = _(
        "A username (any case, as the lockout counts it), a client IP address or a request id."
    )
    list_select_related = ("user", "actor", "user__auth401_status")
    ordering = ("-created_at", "-pk")
    paginator = CappedCountPaginator
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

    @admin.display(description=_("user"), ordering="user")
    def user_link(self, obj: AuthEvent) -> str:
        user = obj.user  # None without a query when user_id is None
        if user is None:
            return "-"
        name = user.get_username()
        url = admin_url(self.admin_site, get_user_model(), "change", obj.user_id)
        return format_html('<a href="{}">{}</a>', url, name) if url else name

    @admin.display(description=_("account"))
    def account_link(self, obj: AuthEvent) -> str:
        if obj.user_id is None:
            return "-"
        status = accounts.cached_status(obj.user)
        if status is None:
            return str(AccountStatus.State.ACTIVE)
        url = admin_url(self.admin_site, AccountStatus, "change", status.pk)
        label = status.effective_state()
        return format_html('<a href="{}">{}</a>', url, label) if url else label

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
