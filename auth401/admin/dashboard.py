"""The failures dashboard: the last 24 hours in two panels (password guessing and locks, and
routine failures such as expired tokens), the locked accounts and the locked addresses, each
with an Unlock button that asks why.

The locked addresses come from ``auth401.lockout.locked_addresses()`` and are unlocked with
``auth401.accounts.unlock_address()``; both are looked up when a page is drawn, so the table
shows only where the lockout provides them.

The counts of the window up to a settled ten-minute mark are kept in the default cache and
moved forward (``kept_counts``): a view counts at most the last twelve minutes itself, so the
page stays fast at millions of events.
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import Q, Sum
from django.db.models.functions import Trunc
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _

from auth401 import accounts, lockout, signals
from auth401.conf import app_settings
from auth401.forms import time_left
from auth401.models import AccountStatus, AuthEvent
from auth401.request_id import get_request_id

from .actions import ACTIONS, can_change_accounts, render_form
from .filters import guessing_codes, username_group
from .status import account_action_url, admin_url

logger = logging.getLogger("auth401")

#: Rows in each "top" table of the dashboard.
DASHBOARD_TOP = 10
#: The HTTP statuses of failures (429 with LOCKOUT_STATUS_CODE = 429, and login_busy; 503:
#: lockout_unavailable).
FAILURE_STATUSES = (401, 403, 429, 503)
#: Locked accounts listed on the dashboard (the AccountStatus list has them all).
DASHBOARD_LOCKED = 100


def bars(hours: list[tuple[datetime, int]], width: int = 720, height: int = 120) -> dict:
    """Geometry of a per-hour SVG chart: one bar per hour, a label every third hour.

    Coordinates are strings, so that no locale's decimal comma reaches the SVG."""
    top = max((count for _hour, count in hours), default=0)
    slot = width / len(hours)
    pad = 16  # room above the bars for the "max" label

    def num(value: float) -> str:
        return f"{value:.1f}"

    result = []
    for i, (hour, count) in enumerate(hours):
        bar_height = count / top * height if top else 0
        local = timezone.localtime(hour)
        result.append(
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
        "bars": result,
        "max": top,
        "width": str(width),
        "view_height": str(pad + height + 20),
        "axis_y": str(pad + height),
        "label_y": str(pad + height + 15),
    }


#: Counts of the window up to a boundary at least this old are kept in the default cache:
#: every writer but the drain records an event within ``AUDIT_BATCH_DELAY`` (at most a minute)
#: of its time, and the drain says when it writes older rows (``signals.events_written``,
#: received by ``forget_counts``).
SETTLE = timedelta(minutes=2)
#: The kept counts move forward in steps of this much: each view counts at most the last
#: ``STEP + SETTLE`` itself.
STEP = timedelta(minutes=10)
#: How long kept counts live without a view.
COUNTS_TIMEOUT = 24 * 3600
#: Kept counts first counted this long ago are counted afresh: with a cache each process keeps
#: to itself, the drain's ``forget_counts`` reaches only its own process.
RECOUNT_AFTER = timedelta(hours=6)
COUNTS_KEY = "auth401:dashboard:v2:counts"
#: Bumped by ``forget_counts``: kept counts of another generation are counted again.
GENERATION_KEY = "auth401:dashboard:v2:generation"


def _counts(start: datetime, end: datetime | None) -> dict[str, Any]:
    """Failures from ``start`` until ``end`` (None: until now): per (UTC hour, code), and
    for guessing per client IP and per username (normalised as the lockout counts them),
    each ranked by count.  Three aggregate queries over the range; a row that sums several
    failures (``AuthEvent.count``) counts as that many."""
    using = router.db_for_read(AuthEvent)
    window = AuthEvent.objects.using(using).filter(created_at__gte=start)
    if end is not None:
        window = window.filter(created_at__lt=end)
    failures = window.filter(Q(status_code__in=FAILURE_STATUSES) | Q(code__in=guessing_codes()))
    hours = {
        (hour.astimezone(UTC), code): n
        for hour, code, n in (
            failures.annotate(hour=Trunc("created_at", "hour", tzinfo=UTC))
            .order_by()
            .values_list("hour", "code")
            .annotate(n=Sum("count"))
            .values_list("hour", "code", "n")
        )
    }
    guesses = window.filter(code__in=guessing_codes())
    ips = guesses.exclude(ip__isnull=True).order_by().values_list("ip").annotate(n=Sum("count"))
    names = (
        guesses.exclude(username="")
        .annotate(name=username_group())
        .order_by()
        .values_list("name")
        .annotate(n=Sum("count"))
    )
    return {
        "hours": hours,
        "ip": _ranked(dict(ips), _ip_order),
        "username": _ranked(dict(names), str),
    }


def _ip_order(value: str) -> Any:
    """IP addresses in the database's order: IPv4 before IPv6, then by number."""
    address = ipaddress.ip_address(value)
    return (address.version, int(address))


def _ranked(counts: dict[Any, int], order: Any) -> list[tuple[Any, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], order(item[0])))


def _top(past: list[tuple[Any, int]], live: list[tuple[Any, int]], order: Any) -> list:
    """The ``DASHBOARD_TOP`` of past + live counts, exact, without adding up every value:
    a value not seen live keeps its past count, so the best of those are the first of
    ``past`` that are not live."""
    live_counts = dict(live)
    past_counts = dict(past)
    candidates = {value: n + past_counts.get(value, 0) for value, n in live_counts.items()}
    taken = 0
    for value, n in past:
        if taken == DASHBOARD_TOP:
            break
        if value not in live_counts:
            candidates[value] = n
            taken += 1
    return _ranked(candidates, order)[:DASHBOARD_TOP]


def settled_until(now: datetime) -> datetime:
    """The boundary up to which the counts no longer change: ``SETTLE`` ago, down to a
    ``STEP``."""
    settled = now.astimezone(UTC) - SETTLE
    step = int(STEP.total_seconds())
    return datetime.fromtimestamp(int(settled.timestamp()) // step * step, UTC)


def _add(kept: dict[str, Any], counts: dict[str, Any], sign: int = 1) -> None:
    """Add (``sign`` 1) or take away (-1) ``counts`` to or from ``kept``, in place."""
    hours = kept["hours"]
    for key, n in counts["hours"].items():
        total = hours.get(key, 0) + sign * n
        if total:
            hours[key] = total
        else:
            hours.pop(key, None)
    for name, order in (("ip", _ip_order), ("username", str)):
        merged = dict(kept[name])
        for value, n in counts[name]:
            total = merged.get(value, 0) + sign * n
            if total:
                merged[value] = total
            else:
                merged.pop(value, None)
        kept[name] = _ranked(merged, order)


def kept_counts(since: datetime, until: datetime) -> dict[str, Any]:
    """The counts of ``[since, until)``: those kept in the default cache, moved forward (the
    rows between their end and ``until`` added, those before ``since`` taken away, each a
    count over that stretch only), or counted afresh when none are kept for an overlapping
    window, or they are of another generation (``forget_counts``), or were first counted
    ``RECOUNT_AFTER`` ago.  Nothing is kept when
    ``AUDIT_RETENTION`` is a day or less (pruning would change the counts kept)."""
    retention = app_settings.AUDIT_RETENTION
    if retention <= timedelta(days=1):
        return {"since": since, "until": until, **_counts(since, until)}
    try:
        generation = cache.get(GENERATION_KEY, 0)
        kept = cache.get(COUNTS_KEY)
    except Exception:
        logger.exception("auth401: the dashboard's kept counts could not be read")
        generation, kept = None, None
    usable = (
        kept is not None
        and kept.get("generation") == generation
        and kept["since"] <= since < kept["until"] <= until
        and kept.get("counted", until) > until - RECOUNT_AFTER
    )
    if not usable:
        kept = {"since": since, "until": until, "counted": until, **_counts(since, until)}
    else:
        if kept["since"] == since and kept["until"] == until:
            return kept
        if kept["since"] < since:
            _add(kept, _counts(kept["since"], since), -1)
            kept["since"] = since
        if kept["until"] < until:
            _add(kept, _counts(kept["until"], until))
            kept["until"] = until
    if generation is not None:
        kept["generation"] = generation
        try:
            cache.set(COUNTS_KEY, kept, COUNTS_TIMEOUT)
        except Exception:
            logger.exception("auth401: the dashboard's counts could not be kept")
    return kept


def failure_counts(since: datetime, now: datetime | None = None) -> dict[str, Any]:
    """Failures since ``since`` (a whole UTC hour), split into password guessing and locks
    (``guessing``) and the rest (``routine``): per kind a count per UTC hour and per code;
    for guessing also the ``DASHBOARD_TOP`` client IPs and usernames.

    The counts up to ``settled_until(now)`` are kept in the default cache and moved forward
    (``kept_counts``); each view counts only the rows after that itself."""
    now = now or timezone.now()
    settled = max(since, settled_until(now))
    past = kept_counts(since, settled) if settled > since else None
    live = _counts(settled, None)
    if past is None:
        past = {"hours": {}, "ip": [], "username": []}
    guessing = guessing_codes()
    kinds: dict[str, dict[str, Any]] = {
        kind: {"hours": {}, "codes": {}} for kind in ("guessing", "routine")
    }
    for (hour, code), n in [*past["hours"].items(), *live["hours"].items()]:
        kind = kinds["guessing" if code in guessing else "routine"]
        kind["hours"][hour] = kind["hours"].get(hour, 0) + n
        kind["codes"][code] = kind["codes"].get(code, 0) + n
    return {
        "kinds": kinds,
        "ip": _top(past["ip"], live["ip"], _ip_order),
        "username": _top(past["username"], live["username"], str),
    }


def forget_counts(sender: Any = None, rows: Any = (), **kwargs: Any) -> None:
    """Receiver of ``signals.events_written``: rows the drain wrote before the settled
    boundary make the kept counts wrong: a new generation, counted afresh at the next view
    (a view that read the old generation before these rows were committed keeps its counts
    under that generation, so they are not used)."""
    oldest = min((row.created_at for row in rows if row.created_at), default=None)
    if oldest is None or oldest >= settled_until(timezone.now()):
        return
    try:
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # no generation yet
            cache.set(GENERATION_KEY, 1, None)
    except Exception:
        logger.exception("auth401: the dashboard's kept counts could not be forgotten")


signals.events_written.connect(forget_counts, dispatch_uid="auth401_dashboard_counts")


def dashboard_data(now: datetime, *, changelist: str = "") -> dict[str, Any]:
    """The dashboard's numbers for the last 24 hours, counted in whole clock hours (from the
    start of the hour 23 hours ago until now)."""
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    since = this_hour - timedelta(hours=23)
    counts = failure_counts(since, now)
    hours = [since + timedelta(hours=i) for i in range(24)]

    def link(params: dict[str, str]) -> str:
        return f"{changelist}?{urlencode({**params, 'created': '24h'})}"

    def top(pairs: list[tuple[Any, int]], param: str, kind: str) -> list[dict[str, Any]]:
        return [
            {"value": value, "count": n, "url": link({param: value, "kind": kind})}
            for value, n in pairs
        ]

    panels = []
    for kind, title in (
        ("guessing", _("Password guessing and locks")),
        ("routine", _("Routine failures (expired tokens, missing credentials…)")),
    ):
        data = counts["kinds"][kind]
        per_hour = [(hour, data["hours"].get(hour, 0)) for hour in hours]
        codes = sorted(data["codes"].items(), key=lambda item: (-item[1], item[0]))
        panels.append(
            {
                "kind": kind,
                "title": title,
                "chart": bars(per_hour),
                "total": sum(n for _hour, n in per_hour),
                "top_codes": top(codes[:DASHBOARD_TOP], "code", kind),
                "url": link({"kind": kind}),
            }
        )
    return {
        "panels": panels,
        "top_ips": top(counts["ip"], "q", "guessing"),
        "top_usernames": top(counts["username"], "q", "guessing"),
        "window_start": since,
    }


def locked_accounts(site: admin.AdminSite, now: datetime, back: str) -> dict[str, Any]:
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
                "user_url": admin_url(site, user_model, "change", row.user_id),
                "status_url": admin_url(site, AccountStatus, "change", row.pk),
                "unlock_url": account_action_url(site, row.user_id, "unlock", back),
            }
            for row in rows[:DASHBOARD_LOCKED]
        ],
        "more": len(rows) > DASHBOARD_LOCKED,
        "all_url": (admin_url(site, AccountStatus, "changelist") or "") + "?state__exact=locked",
    }


def locked_addresses(request: HttpRequest, unlock_url: str) -> dict[str, Any]:
    """The lockout's locked addresses (read from the database mirror of the locks)."""
    try:
        found = lockout.locked_addresses()
    except Exception:
        logger.exception(
            "auth401 admin: listing locked addresses failed (request %s)",
            get_request_id(request),
        )
        return {"rows": [], "error": True}
    return {
        "rows": [
            {
                "address": row.address,
                "time_left": time_left(row.seconds_left) if row.seconds_left else "",
                "failures": row.failures,
                "unlock_url": f"{unlock_url}?{urlencode({'address': row.address})}",
            }
            for row in found[:DASHBOARD_LOCKED]
        ],
        "more": len(found) > DASHBOARD_LOCKED,
        "error": False,
    }


def _urls(model_admin: admin.ModelAdmin) -> dict[str, str]:
    name = model_admin.admin_site.name
    return {
        "dashboard": reverse("admin:auth401_authevent_dashboard", current_app=name),
        "changelist": reverse("admin:auth401_authevent_changelist", current_app=name),
        "unlock_address": reverse("admin:auth401_authevent_unlock_address", current_app=name),
    }


def dashboard_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    urls = _urls(model_admin)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Authentication failures dashboard"),
        "subtitle": None,
        "opts": model_admin.opts,
        "now": now,
        **dashboard_data(now, changelist=urls["changelist"]),
        "locked": locked_accounts(model_admin.admin_site, now, urls["dashboard"]),
        "addresses": locked_addresses(request, urls["unlock_address"]),
        "can_unlock": can_change_accounts(request),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/auth401/authevent/dashboard.html", context)


def _address(value: str) -> str | None:
    """The address or network as the lockout names it, or None when it is neither."""
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value.strip(), strict=False))
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


#: What the address unlock records where (no account's status changes).
ADDRESS_RECORDS = _(
    "The address's failure counter and lock are cleared, and the audit trail gets an "
    "admin_unlock event for %(address)s (in its client IP column) naming you, with “address "
    "%(address)s: <reason>” as its note. No account's status changes."
)
ADDRESS_REASON_GOES = _(
    "Recorded in the note of the address's admin_unlock event in the audit trail (an address "
    "has no account status)."
)


def unlock_address_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Unlock a client address (or network) with a reason, through
    ``auth401.accounts.unlock_address(address, by=..., reason=...)``; then back to ``next``
    (a user's page) or the dashboard."""
    if not can_change_accounts(request):
        raise PermissionDenied
    unlock = accounts.unlock_address
    raw = request.POST.get("address") or request.GET.get("address") or ""
    address = _address(raw)
    if address is None:
        raise Http404(_("No such address."))
    urls = _urls(model_admin)
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    back = next_url or urls["dashboard"]
    action = ACTIONS["unlock"]
    if request.method == "POST":
        form = action.form(request.POST, reason_goes=ADDRESS_REASON_GOES)
        if form.is_valid():
            try:
                unlocked = unlock(address, by=request.user, reason=form.cleaned_data["reason"])
            except Exception:
                logger.exception(
                    "auth401 admin: unlocking an address failed (request %s)",
                    get_request_id(request),
                )
                messages.error(
                    request,
                    _(
                        "Could not unlock %(address)s: the change was not recorded. The error "
                        "is in the server log with request id %(request_id)s."
                    )
                    % {"address": address, "request_id": get_request_id(request)},
                )
            else:
                if unlocked:
                    messages.success(request, _("Unlocked %(address)s.") % {"address": address})
                else:
                    messages.warning(
                        request, _("%(address)s was not locked.") % {"address": address}
                    )
            return HttpResponseRedirect(back)
    else:
        form = action.form(reason_goes=ADDRESS_REASON_GOES)
    return render_form(
        request,
        model_admin,
        action,
        form,
        subjects=[address],
        hidden=[("address", address), *([("next", next_url)] if next_url else [])],
        cancel_url=back,
        title=_("Unlock a client address"),
        records=ADDRESS_RECORDS % {"address": address},
    )
