"""The AuthEvent CSV export: streamed, UTC times, and no cell a spreadsheet runs as a formula."""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"), after
#: NFKC folding, so the fullwidth forms (＝ ＋ － ＠) count as well.
FORMULA_STARTS = frozenset("=+-@\t\r\n")
#: Unicode categories a spreadsheet may skip before the first character it looks at: the
#: separators (spaces, NBSP) and the invisible format characters (zero-width, direction
#: marks, soft hyphen, invisible operators).
_BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf"})


CSV_COLUMNS = (
    "id",
    "created_at",
    "last_seen",
    "count",
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


def is_formula(text: str) -> bool:
    """Whether a spreadsheet may run ``text`` as a formula: it starts, after any run of
    whitespace or invisible characters (NBSP, zero-width and direction marks, soft hyphen...),
    with ``= + - @``, a fullwidth or small form of them, or a tab, carriage return or line
    feed."""
    if not text:
        return False
    if text[0] in FORMULA_STARTS:
        return True
    for char in text:
        folded = unicodedata.normalize("NFKC", char)  # ＝ -> =, NBSP -> space, U+00AD -> ""
        first = folded[:1]
        if not first or first.isspace() or unicodedata.category(first) in _BLANK_CATEGORIES:
            continue
        return first in FORMULA_STARTS
    return False


def csv_cell(value: Any) -> Any:
    """One CSV cell: UTC ISO 8601 times, '' for None, and text that a spreadsheet would run
    as a formula prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, str) and is_formula(value):
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
