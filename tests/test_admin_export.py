"""The AuthEvent CSV export: streamed, UTC times, the user by its USERNAME_FIELD, and no cell
that a spreadsheet would run as a formula, whatever hides the formula's first character."""

from datetime import UTC, datetime

import pytest

from auth401.admin.export import csv_cell, is_formula
from auth401.models import AuthEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/auth401/authevent/"


def _export(client, data, url=CHANGELIST):
    response = client.post(url, {"action": "export_csv", **data})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="auth401-events-')
    assert response.streaming
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize(
    "value",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1",
        " =1",
        "   +cmd",
        "\u00a0=1",  # NBSP
        "\u00a0\u00a0@x",
        "\u3000-1",  # ideographic space
        "\u2003=1",  # em space
        "\u200b=1",  # zero-width space
        "\ufeff=1",  # byte order mark
        "＝1+1",  # fullwidth equals
        "＋1",
        "－1",
        "＠SUM(A1)",
        " ＝1",
        "\u00a0＠x",
        "\ufe66HYPERLINK()",  # small equals sign, NFKC "="
        "\u200e=1",  # left-to-right mark
        "\u200f@x",  # right-to-left mark
        "\u202e=1",  # right-to-left override
        "\u00ad=1",  # soft hyphen
        "\u2061=1",  # function application (invisible operator)
        "\u180e=1",  # Mongolian vowel separator
        " " * 70 + "=1+1",  # a long run of spaces
        "\u00a0\u200e \u2061\ufe62cmd",  # a mix of them, then a small plus sign
    ],
)
def test_formula_starts_are_neutralised(value):
    assert is_formula(value)
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value", ["alice", "", "   ", "a=1", "1-2", "bob@example.com", "\u00a0alice", "‐1"]
)
def test_plain_text_is_left_alone(value):
    assert not is_formula(value)
    assert csv_cell(value) == value


def test_cells_of_other_types():
    assert csv_cell(None) == ""
    assert csv_cell(401) == 401
    moment = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    assert csv_cell(moment) == "2026-11-25T10:00:00.123+00:00"


def test_csv_export_content_and_formula_neutralisation(admin_client, user_factory):
    bob = user_factory("bob")
    root = user_factory("root")
    plain = AuthEvent.objects.create(
        created_at=datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC),
        code="token_expired",
        status_code=401,
        username="bob",
        user=bob,
        ip="192.0.2.9",
        user_agent="curl/8.5.0",
        method="GET",
        path="/api/me/",
        scheme="Bearer",
        request_id="req-1",
        token_fingerprint="0123456789abcdef",
    )
    hostile = AuthEvent.objects.create(
        created_at=datetime(2026, 11, 25, 11, 0, tzinfo=UTC),
        code="credentials_invalid",
        status_code=401,
        username='=HYPERLINK("http://evil.example","x")',
        user_agent="+cmd|' /C calc'!A0",
        method="POST",
        path="-2+3",
        scheme="Basic",
        request_id="@SUM(A1)",
        note="\tTAB, with comma",
    )
    hidden = AuthEvent.objects.create(
        created_at=datetime(2026, 11, 25, 11, 30, tzinfo=UTC),
        code="credentials_invalid",
        status_code=401,
        username="\u00a0=1+1",
        user_agent=" @x",
        path="＝2",
        note="＠y",
    )
    admin_lock = AuthEvent.objects.create(
        created_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        code="admin_lock",
        username="bob",
        user=bob,
        actor=root,
        note="Stolen laptop",
    )
    selected = [plain.pk, hostile.pk, hidden.pk, admin_lock.pk]
    content = _export(admin_client, {"_selected_action": selected})
    assert content == (
        "id,created_at,last_seen,count,code,status_code,username,user,ip,user_agent,method,"
        "path,scheme,request_id,token_fingerprint,actor,note\r\n"
        f"{admin_lock.pk},2026-11-25T12:00:00.000+00:00,,1,admin_lock,,bob,bob,,,,,,,,root,"
        "Stolen laptop\r\n"
        f"{hidden.pk},2026-11-25T11:30:00.000+00:00,,1,credentials_invalid,401,"
        "'\u00a0=1+1,,,' @x,,'＝2,,,,,'＠y\r\n"
        f"{hostile.pk},2026-11-25T11:00:00.000+00:00,,1,credentials_invalid,401,"
        '"\'=HYPERLINK(""http://evil.example"",""x"")",,,\'+cmd|\' /C calc\'!A0,POST,\'-2+3,'
        "Basic,'@SUM(A1),,,\"'\tTAB, with comma\"\r\n"
        f"{plain.pk},2026-11-25T10:00:00.123+00:00,,1,token_expired,401,bob,bob,192.0.2.9,"
        "curl/8.5.0,GET,/api/me/,Bearer,req-1,0123456789abcdef,,\r\n"
    )


def test_csv_export_of_everything_filtered(admin_client):
    keep = AuthEvent.objects.create(code="token_expired", status_code=401, request_id="keep")
    AuthEvent.objects.create(code="credentials_invalid", status_code=401, request_id="drop")
    content = _export(
        admin_client,
        {"select_across": "1", "_selected_action": [keep.pk]},
        url=f"{CHANGELIST}?code=token_expired",
    )
    lines = content.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{keep.pk},") and ",keep," in lines[1]


def test_csv_export_needs_the_view_permission(client, user_factory):
    row = AuthEvent.objects.create(code="token_expired")
    client.force_login(user_factory("staff", is_staff=True))
    response = client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [row.pk]})
    assert response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("selected", ["abc", "", "1\x00", "99999999999999999999"], ids=repr)
def test_csv_export_of_a_selection_that_is_no_key_is_a_warning(admin_client, selected):
    """Django's action filter raised ValueError (a 500) for a non-numeric selection."""
    row = AuthEvent.objects.create(code="credentials_invalid", status_code=401, username="a")
    data = {"action": "export_csv", "_selected_action": [str(row.pk), selected]}
    response = admin_client.post(CHANGELIST, data)
    assert response.status_code == 302
    assert response["Location"] == CHANGELIST
    page = admin_client.get(CHANGELIST)
    assert [str(m) for m in page.context["messages"]] == [
        "The selection holds items that do not exist. No items have been changed."
    ]
