"""Admin: the AccountStatus admin, lock/unlock/suspend/reinstate actions on the user list too,
a read-only AuthEvent admin that stays fast at millions of rows, and a dashboard.

Every change goes through ``auth401.accounts``.

The AuthEvent changelist never counts the whole table (Django ticket #8408): its paginator
uses PostgreSQL's row estimate for the unfiltered list and otherwise counts at most
``COUNT_CAP`` rows; its filters offer fixed choices (or walk the ``code`` index) instead of a
``SELECT DISTINCT`` over the table; its search is an exact match on indexed columns.
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections, router
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Trunc
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

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

#: The most rows any AuthEvent changelist query counts; beyond it the list says "10,000+".
COUNT_CAP = 10_000
#: How many of a user's events the AccountStatus page shows.
RECENT_EVENTS = 20
#: Rows in each "top" table of the dashboard.
DASHBOARD_TOP = 10
#: The HTTP statuses of failures (CONTRACT §4; 429 with LOCKOUT_STATUS_CODE = 429).
FAILURE_STATUSES = (401, 403, 429)
#: Locked accounts listed on the dashboard (the AccountStatus list has them all).
DASHBOARD_LOCKED = 100


def _admin_url(admin_site: admin.AdminSite, model: Any, view: str, *args: Any) -> str | None:
    """The URL of ``view`` of ``model``'s admin, or None when the site does not register it."""
    opts = model._meta
    try:
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{view}",
            args=args,
            current_app=admin_site.name,
        )
    except NoReverseMatch:
        return None


def _has_perm(request: HttpRequest, model: Any, action: str) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


# --- Counting without COUNT(*) over the table (Django ticket #8408) -------------------------


def table_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows in ``queryset``'s table (kept by ANALYZE and
    autovacuum), or None on other databases and for never-analysed tables."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts more than ``count_cap`` rows.

    The unfiltered list on PostgreSQL takes the planner's estimate of the table size; any
    other list counts ``SELECT COUNT(*) FROM (SELECT ... LIMIT count_cap + 1)``, which
    stops after ``count_cap + 1`` index entries.  ``count_kind`` says which it was, and the
    changelist template says so under the pagination.
    """

    count_cap = COUNT_CAP

    #: "exact", "estimate" or "capped", set by ``count``
    count_kind = "exact"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        query = queryset.query
        if not query.where and not query.distinct and not query.is_sliced:
            estimate = table_estimate(queryset)
            if estimate is not None and estimate > self.count_cap:
                self.count_kind = "estimate"
                return estimate
        counted = queryset.order_by()[: self.count_cap + 1].count()
        if counted > self.count_cap:
            self.count_kind = "capped"
            return self.count_cap
        return counted

    @property
    def count_label(self) -> str:
        """The count for a sentence: "1,000,000", "10,000"."""
        return f"{self.count:,}"


# --- Cheap filters --------------------------------------------------------------------------


def distinct_codes(using: str, limit: int = 200) -> list[str]:
    """The codes present in the table, found with a few probes of the ``code`` index (a
    "loose index scan") instead of ``SELECT DISTINCT code`` over every row."""
    connection = connections[using]
    qn = connection.ops.quote_name
    table = qn(AuthEvent._meta.db_table)
    column = qn(AuthEvent._meta.get_field("code").column)
    sql = (
        f"WITH RECURSIVE walk(code, n) AS ("
        f" SELECT MIN({column}), 1 FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > walk.code), walk.n + 1"
        f" FROM walk WHERE walk.code IS NOT NULL AND walk.n < %s"
        f") SELECT code FROM walk WHERE code IS NOT NULL ORDER BY code"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class CodeFilter(admin.SimpleListFilter):
    title = _("code")
    parameter_name = "code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        using = model_admin.get_queryset(request).db
        return [(code, code) for code in distinct_codes(using)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(code=value) if value else queryset


NONE = "none"


class StatusCodeFilter(admin.SimpleListFilter):
    title = _("HTTP status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("401", "401"),
            ("403", "403"),
            ("429", "429"),
            (NONE, _("none (admin change, success)")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if value == NONE:
            return queryset.filter(status_code__isnull=True)
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(status_code=int(value))


class SchemeFilter(admin.SimpleListFilter):
    title = _("scheme")
    parameter_name = "scheme"
    #: the schemes auth401 records; any other value still filters when given in the URL
    schemes = ("Basic", "Bearer", "Token", "Session", "Password")

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(s, s) for s in self.schemes] + [(NONE, _("none"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(scheme="" if value == NONE else value)


class CreatedFilter(admin.SimpleListFilter):
    """Recent windows over the ``created_at`` index.  Django's ``date_hierarchy`` would run
    ``SELECT DISTINCT date_trunc(...)`` over every row of the year or month on each page."""

    title = _("time")
    parameter_name = "created"
    windows = {
        "1h": (timedelta(hours=1), _("Last hour")),
        "24h": (timedelta(hours=24), _("Last 24 hours")),
        "7d": (timedelta(days=7), _("Last 7 days")),
        "30d": (timedelta(days=30), _("Last 30 days")),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(key, label) for key, (_delta, label) in self.windows.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        window = self.windows.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(created_at__gte=timezone.now() - window[0])


# --- CSV export -----------------------------------------------------------------------------

#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "id",
    "created_at",
    "code",
    "status_code",
    "username",
    "user",
    "ip",
    "user_agent",
    "method",
    "path",
    "scheme",
    "request_id",
    "token_fingerprint",
    "actor",
    "note",
)


def csv_cell(value: Any) -> Any:
    """One CSV cell: UTC ISO 8601 times, '' for None, and text that a spreadsheet would run
    as a formula prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose ``write`` hands the line back, for a streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_rows(queryset: QuerySet) -> Iterator[str]:
    username = get_user_model().USERNAME_FIELD
    related = {"user": f"user__{username}", "actor": f"actor__{username}"}
    fields = [related.get(column, column) for column in CSV_COLUMNS]
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = queryset.order_by("-created_at", "-pk").values_list(*fields)
    for row in rows.iterator(chunk_size=2000):
        yield writer.writerow([csv_cell(value) for value in row])


@admin.action(description=_("Export selected events as CSV"), permissions=["view"])
def export_csv(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> StreamingHttpResponse:
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(csv_rows(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="auth401-events-{stamp}.csv"'
    return response


# --- The admins -----------------------------------------------------------------------------


@admin.register(AccountStatus)
class AccountStatusAdmin(admin.ModelAdmin):
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
    search_fields = ("user__username", "reason")
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
    # Nothing is edited in the form: changes go through the actions, that is through
    # auth401.accounts, which records who did what and revokes what it must.
    readonly_fields = fields
    actions = STATUS_ACTIONS

    def has_add_permission(self, request: HttpRequest) -> bool:
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
            AuthEvent.objects.filter(Q(user_id=obj.user_id) | Q(username=username))
            .select_related("actor")
            .order_by("-created_at", "-pk")[:RECENT_EVENTS]
        )
        if not events:
            return _("No events.")
        rows = format_html_join(
            "\n",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _admin_url(self.admin_site, AuthEvent, "change", event.pk) or "#",
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
        changelist = _admin_url(self.admin_site, AuthEvent, "changelist")
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


@admin.register(AuthEvent)
class AuthEventAdmin(admin.ModelAdmin):
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
    )
    list_display_links = ("time",)
    list_filter = (CreatedFilter, CodeFilter, StatusCodeFilter, SchemeFilter)
    search_fields = ("=username", "=ip", "=request_id")
    search_help_text = _("Exact username (as typed), client IP address or request id.")
    list_select_related = ("user", "actor", "user__auth401_status")
    ordering = ("-created_at", "-pk")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = [export_csv]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # One row at a time, from its page; bulk removal is auth401_prune's job.
        return bool(request.user.is_superuser)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the CSV export is the only action
        return actions

    def action_checkbox(self, obj: AuthEvent) -> str:
        """Django's checkbox without rendering a form widget template per row (that was a
        quarter of the changelist's time)."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(_("Select this object for an action - {}"), str(obj)),
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact, case-sensitive matches on indexed columns (``=`` in ``search_fields``); the
        whole term is one value.  Django's own ``=`` is ``iexact``, which no index serves."""
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q()
        for name in self.get_search_fields(request):
            field = name.lstrip("=^@")
            if field == "ip":
                try:
                    term_ip = str(ipaddress.ip_address(term))
                except ValueError:
                    continue
                condition |= Q(ip=term_ip)
            else:
                condition |= Q(**{field: term})
        return queryset.filter(condition), False

    @admin.display(description=_("time"), ordering="created_at")
    def time(self, obj: AuthEvent) -> str:
        """To the second, in the site's time zone (Django's default format stops at minutes)."""
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description=_("user"), ordering="user")
    def user_link(self, obj: AuthEvent) -> str:
        if obj.user_id is None:
            return "-"
        url = _admin_url(self.admin_site, get_user_model(), "change", obj.user_id)
        return format_html('<a href="{}">{}</a>', url, obj.user) if url else str(obj.user)

    @admin.display(description=_("account"))
    def account_link(self, obj: AuthEvent) -> str:
        if obj.user_id is None:
            return "-"
        status = accounts.cached_status(obj.user)
        if status is None:
            return str(AccountStatus.State.ACTIVE)
        url = _admin_url(self.admin_site, AccountStatus, "change", status.pk)
        label = status.effective_state()
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    # --- the dashboard ---

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name=f"{prefix}_dashboard",
            ),
            path(
                "dashboard/unlock/",
                self.admin_site.admin_view(require_POST(self.dashboard_unlock_view)),
                name=f"{prefix}_dashboard_unlock",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Authentication failures dashboard"),
            "subtitle": None,
            "opts": self.opts,
            "now": now,
            **dashboard_data(now, changelist=self._changelist_url()),
            "locked": self._locked_accounts(request, now),
            "can_unlock": _has_perm(request, AccountStatus, "change"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/auth401/authevent/dashboard.html", context)

    def dashboard_unlock_view(self, request: HttpRequest) -> HttpResponse:
        if not _has_perm(request, AccountStatus, "change"):
            raise PermissionDenied
        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(request.POST.get("user", ""))
            user = model._default_manager.get(pk=pk)
        except (ValidationError, ValueError, model.DoesNotExist) as exc:
            raise Http404(_("No such user.")) from exc
        before = accounts.cached_status(user)
        was_locked = before is not None and before.effective_state() == AccountStatus.State.LOCKED
        accounts.unlock(user, by=request.user)
        name = user.get_username()
        if was_locked:
            self.message_user(request, _("Unlocked %(name)s.") % {"name": name}, messages.SUCCESS)
        else:
            self.message_user(
                request,
                _("Account %(name)s was not locked; its failure counter was cleared.")
                % {"name": name},
                messages.WARNING,
            )
        return HttpResponseRedirect(
            reverse("admin:auth401_authevent_dashboard", current_app=self.admin_site.name)
        )

    def _changelist_url(self) -> str:
        return reverse("admin:auth401_authevent_changelist", current_app=self.admin_site.name)

    def _locked_accounts(self, request: HttpRequest, now: datetime) -> dict[str, Any]:
        locked = AccountStatus.objects.filter(state=AccountStatus.State.LOCKED).filter(
            Q(locked_until__isnull=True) | Q(locked_until__gt=now)
        )
        rows = list(
            locked.select_related("user", "changed_by").order_by("-changed_at", "-pk")[
                : DASHBOARD_LOCKED + 1
            ]
        )
        user_model = get_user_model()
        return {
            "rows": [
                {
                    "status": row,
                    "user_url": _admin_url(self.admin_site, user_model, "change", row.user_id),
                    "status_url": _admin_url(self.admin_site, AccountStatus, "change", row.pk),
                }
                for row in rows[:DASHBOARD_LOCKED]
            ],
            "more": len(rows) > DASHBOARD_LOCKED,
            "all_url": (_admin_url(self.admin_site, AccountStatus, "changelist") or "")
            + "?state__exact=locked",
        }


def _bars(hours: list[tuple[datetime, int]], width: int = 720, height: int = 160) -> dict:
    """Geometry of the per-hour SVG chart: one bar per hour, a label every third hour.

    Coordinates are strings, so that no locale's decimal comma reaches the SVG."""
    top = max((count for _hour, count in hours), default=0)
    slot = width / len(hours)
    pad = 16  # room above the bars for the "max" label

    def num(value: float) -> str:
        return f"{value:.1f}"

    bars = []
    for i, (hour, count) in enumerate(hours):
        bar_height = count / top * height if top else 0
        local = timezone.localtime(hour)
        bars.append(
            {
                "hour": local,
                "count": count,
                "x": num(i * slot + 1),
                "y": num(pad + height - bar_height),
                "width": num(slot - 2),
                "height": num(bar_height),
                "label_x": num(i * slot + slot / 2),
                "label": local.strftime("%H:%M") if i % 3 == 0 else "",
            }
        )
    return {
        "bars": bars,
        "max": top,
        "width": str(width),
        "view_height": str(pad + height + 20),
        "axis_y": str(pad + height),
        "label_y": str(pad + height + 15),
    }


def dashboard_data(now: datetime, *, changelist: str = "") -> dict[str, Any]:
    """The dashboard's numbers for the last 24 hours, counted in whole clock hours (from the
    start of the hour 23 hours ago until now): failures per hour and the top codes, client
    IPs and usernames."""
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    since = this_hour - timedelta(hours=23)
    per_hour, tops = failure_counts(since)
    hours = [since + timedelta(hours=i) for i in range(24)]
    hours_counted = [(hour, per_hour.get(hour, 0)) for hour in hours]

    def links(field: str) -> list[dict[str, Any]]:
        param = "code" if field == "code" else "q"
        return [
            {
                "value": value,
                "count": count,
                "url": f"{changelist}?{urlencode({param: value, 'created': '24h'})}",
            }
            for value, count in tops[field]
        ]

    return {
        "chart": _bars(hours_counted),
        "total": sum(n for _hour, n in hours_counted),
        "top_codes": links("code"),
        "top_ips": links("ip"),
        "top_usernames": links("username"),
        "window_start": since,
    }


def failure_counts(since: datetime) -> tuple[dict[datetime, int], dict[str, list]]:
    """Failures (rows with a failure's HTTP status) since ``since``: a count per UTC hour,
    and the ``DASHBOARD_TOP`` most frequent codes, client IPs and usernames with their counts
    (most frequent first, ties by value).

    Three aggregate queries over the window: one per (hour, code), whose few hundred rows
    give both the hours and the codes, then one per client IP and one per username.  (One
    GROUPING SETS query measured slower on PostgreSQL: it sorts the window.)"""
    using = router.db_for_read(AuthEvent)
    failures = AuthEvent.objects.using(using).filter(
        created_at__gte=since, status_code__in=FAILURE_STATUSES
    )
    per_hour: dict[datetime, int] = {}
    per_code: dict[str, int] = {}
    for hour, code, n in (
        failures.annotate(hour=Trunc("created_at", "hour", tzinfo=UTC))
        .order_by()
        .values_list("hour", "code")
        .annotate(n=Count("pk"))
        .values_list("hour", "code", "n")
    ):
        hour = hour.astimezone(UTC)
        per_hour[hour] = per_hour.get(hour, 0) + n
        if code:
            per_code[code] = per_code.get(code, 0) + n
    tops: dict[str, list] = {
        "code": sorted(per_code.items(), key=lambda item: (-item[1], item[0]))[:DASHBOARD_TOP]
    }
    skip = {"ip": Q(ip__isnull=True), "username": Q(username="")}
    for field, empty in skip.items():
        tops[field] = list(
            failures.exclude(empty)
            .order_by()
            .values_list(field)
            .annotate(n=Count("pk"))
            .order_by("-n", field)[:DASHBOARD_TOP]
        )
    return per_hour, tops


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
