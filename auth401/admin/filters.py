"""Changelist filters of the AuthEvent admin, and how events are grouped by kind.

Every choice comes from the catalogue (``auth401.codes``) or from fixed lists here: no filter
runs a ``SELECT DISTINCT`` over the table, so each stays an index range at a million rows.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import DatabaseError, models, router, transaction
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from auth401.codes import CATALOGUE
from auth401.events import clean
from auth401.lockout import normalise_username
from auth401.request_id import get_request_id

logger = logging.getLogger("auth401")

#: Event codes that are not answers of the catalogue: account changes (``auth401.accounts``
#: and the lockout's lock) and audited successes (``AUDIT_SUCCESS``).
ACCOUNT_EVENTS = (
    "admin_lock",
    "admin_suspend",
    "admin_unlock",
    "admin_reinstate",
    "auto_lock",
    "self_service_unlock",
    "devices_revoked",
)
SUCCESS_EVENTS = ("login_succeeded",)

#: Password guessing and the locks it causes: the codes an administrator watches.  Everything
#: else the catalogue lists (expired tokens, missing credentials...) is routine traffic.
GUESSING = ("credentials_invalid", "account_locked", "address_locked", "auto_lock")


def guessing_codes() -> tuple[str, ...]:
    """The guessing codes this catalogue knows (``address_locked`` only once it exists)."""
    return tuple(code for code in GUESSING if code in CATALOGUE or code in ACCOUNT_EVENTS)


def routine_codes() -> tuple[str, ...]:
    """Every other failure code of the catalogue, in catalogue order."""
    return tuple(code for code in CATALOGUE if code not in GUESSING)


def all_codes() -> tuple[str, ...]:
    return (*CATALOGUE, *(c for c in ACCOUNT_EVENTS if c not in CATALOGUE), *SUCCESS_EVENTS)


# --- usernames as the lockout counts them ---------------------------------------------------


def username_match(term: str) -> Q:
    """Rows of ``term`` as the lockout counts it (NFKC + casefold): an exact match on the
    indexed ``username_normalised`` column."""
    return Q(username_normalised=normalise_username(term))


def username_group() -> Any:
    """The expression the dashboard groups usernames by (see ``username_match``)."""
    return F("username_normalised")


# --- the filters ----------------------------------------------------------------------------

NONE = "none"


class KindFilter(admin.SimpleListFilter):
    """Password guessing and locks, routine failures, account changes, successes."""

    title = _("kind")
    parameter_name = "kind"

    def kinds(self) -> dict[str, tuple[Any, tuple[str, ...]]]:
        return {
            "guessing": (_("Password guessing and locks"), guessing_codes()),
            "routine": (_("Routine failures"), routine_codes()),
            "account": (_("Account changes"), ACCOUNT_EVENTS),
            "success": (_("Successful logins"), SUCCESS_EVENTS),
        }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(key, label) for key, (label, _codes) in self.kinds().items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        kind = self.kinds().get(self.value() or "")
        return queryset if kind is None else queryset.filter(code__in=kind[1])


def storable(value: str) -> bool:
    """Whether a text value from the URL can match a stored one: no row holds a NUL, and
    PostgreSQL refuses one in a query (a 500 otherwise)."""
    return "\x00" not in value


class CleanLookupsMixin:
    """A changelist never answers a 500 for what its URL or its action form holds.

    - URL lookups no stored row can match are dropped before Django builds a query from them
      (a NUL, which PostgreSQL refuses; a value of an IP address field that is not an
      address, which its ``inet`` column refuses; a regular expression that does not
      compile): a redirect to the same list without them.
    - A lookup the database still refuses when the list runs (PostgreSQL's own regular
      expression syntax, a ``__year`` no date holds) is answered as Django answers lookups it
      cannot build (``IncorrectLookupParameters``): a redirect to the plain list, ``?e=1``.
    - An action whose selection holds a value that is no primary key (``_selected_action=abc``)
      changes nothing: a warning and a redirect back to the list, as Django answers an action
      without a selection.

    Each is logged at INFO, without a traceback: it is the client's input, not a fault.
    """

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        model_admin: Any = self
        bad = [
            key
            for key, values in request.GET.lists()
            if not all(_matchable(model_admin.opts, key, value) for value in values)
        ]
        if bad:
            query = request.GET.copy()
            for key in bad:
                del query[key]
            _log_refused(request, "lookups dropped", bad)
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        if request.method == "POST" and "action" in request.POST:
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
            if not all(_is_pk(model_admin.opts, value) for value in selected):
                _log_refused(request, "action selection refused", ["_selected_action"])
                model_admin.message_user(
                    request,
                    _("The selection holds items that do not exist. No items have been changed."),
                    messages.WARNING,
                )
                return HttpResponseRedirect(request.get_full_path())
        if request.method != "GET" or set(request.GET) <= {ERROR_FLAG}:
            # The plain list (or Django's own ?e=1 page): nothing from the URL to refuse.
            return super().changelist_view(request, extra_context)  # type: ignore[misc]
        try:
            with transaction.atomic(using=router.db_for_read(model_admin.model)):
                return super().changelist_view(request, extra_context)  # type: ignore[misc]
        except (DatabaseError, ValueError, OverflowError) as exc:
            # Django redirects to ?e=1 for lookups it cannot build; these failed only when
            # the database ran them.  A fault that does not depend on the URL fails again on
            # the plain list (a 500 there, as without this).
            _log_refused(request, f"lookups refused by the database ({type(exc).__name__})")
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")


def _log_refused(request: HttpRequest, what: str, keys: Any = ()) -> None:
    logger.info(
        "auth401 admin: %s on %s %s %r request_id=%s",
        what,
        request.method,
        clean(request.path, 200),
        [key[:100] for key in keys],
        get_request_id(request),
    )


def _is_pk(opts: Any, value: str) -> bool:
    """Whether ``value`` can be a primary key of the model (so a query can look it up)."""
    if not storable(value):
        return False
    try:
        pk = opts.pk.to_python(value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    # No database stores an integer key past 64 bits (SQLite's driver raises OverflowError).
    return not isinstance(pk, int) or -(2**63) <= pk < 2**63


#: lookups whose value is a regular expression
REGEX_LOOKUPS = ("__regex", "__iregex")


def _matchable(opts: Any, key: str, value: str) -> bool:
    if not storable(key) or not storable(value):
        return False
    if key.endswith(REGEX_LOOKUPS):
        try:
            re.compile(value)
        except (re.error, OverflowError, RecursionError):
            return False
    name, _sep, lookup = key.partition("__")
    try:
        field = opts.get_field(name)
    except FieldDoesNotExist:
        return True  # not a field (a filter's own parameter): Django's business
    if isinstance(field, models.GenericIPAddressField) and lookup in ("", "exact", "in"):
        addresses = value.split(",") if lookup == "in" else [value]
        try:
            for address in addresses:
                ipaddress.ip_address(address)
        except ValueError:
            return False
    return True


class CodeFilter(admin.SimpleListFilter):
    """The catalogue's codes and the account events: fixed choices, no query."""

    title = _("code")
    parameter_name = "code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code, code) for code in all_codes()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(code=value) if value else queryset


class StatusCodeFilter(admin.SimpleListFilter):
    title = _("HTTP status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        statuses = sorted({reason.status_code() for reason in CATALOGUE.values()})
        return [(str(s), str(s)) for s in statuses] + [(NONE, _("none (account change, success)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if value == NONE:
            return queryset.filter(status_code__isnull=True)
        if not value.isdigit() or len(value) > 3:
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
