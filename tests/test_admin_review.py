"""The admin review of issue 5: the AuthEvent changelist (filters, exact search, links, no
full-table COUNT), the CSV export, the dashboard and its Unlock button, the AccountStatus
page's recent events, and the auth401_prune command."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth401 import accounts
from auth401.admin import AuthEventAdmin, EstimatedCountPaginator
from auth401.models import AccountStatus, AuthEvent, FailureCounter

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/auth401/authevent/"
DASHBOARD = "/admin/auth401/authevent/dashboard/"
UNLOCK = "/admin/auth401/authevent/dashboard/unlock/"
NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def event(minutes_ago: float = 1, **fields) -> AuthEvent:
    values = {
        "code": "credentials_invalid",
        "status_code": 401,
        "username": "alice",
        "ip": "192.0.2.1",
        "scheme": "Basic",
        "method": "GET",
        "path": "/api/me/",
        "request_id": "",
        **fields,
    }
    return AuthEvent.objects.create(
        created_at=timezone.now() - timedelta(minutes=minutes_ago), **values
    )


@pytest.fixture
def events(user_factory):
    """One event per filter value, each with its own username, IP and request id."""
    bob = user_factory("bob")
    return {
        "basic": event(1, request_id="req-basic"),
        "bearer": event(
            90, code="token_expired", scheme="Bearer", username="", ip="192.0.2.2",
            request_id="req-bearer",
        ),
        "locked": event(
            60 * 20, code="account_locked", status_code=403, scheme="Password",
            username="bob", user=bob, ip="2001:db8::1", request_id="req-locked",
        ),
        "admin": event(60 * 24 * 3, code="admin_lock", status_code=None, scheme="",
                       username="bob", user=bob, ip=None, request_id=""),
        "old": event(60 * 24 * 20, code="token_invalid", scheme="Bearer", username="carol",
                     ip="198.51.100.7", request_id="req-old"),
    }  # fmt: skip


def shown(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"basic", "bearer", "locked", "admin", "old"}),
        ({"code": "token_expired"}, {"bearer"}),
        ({"code": "nothing_like_it"}, set()),
        ({"status": "401"}, {"basic", "bearer", "old"}),
        ({"status": "403"}, {"locked"}),
        ({"status": "none"}, {"admin"}),
        ({"status": "abc"}, set()),
        ({"scheme": "Bearer"}, {"bearer", "old"}),
        ({"scheme": "none"}, {"admin"}),
        ({"created": "1h"}, {"basic"}),
        ({"created": "24h"}, {"basic", "bearer", "locked"}),
        ({"created": "7d"}, {"basic", "bearer", "locked", "admin"}),
        ({"created": "30d"}, {"basic", "bearer", "locked", "admin", "old"}),
        ({"q": "bob"}, {"locked", "admin"}),
        ({"q": "BOB"}, set()),  # exact: an index serves it
        ({"q": "192.0.2.2"}, {"bearer"}),
        ({"q": "2001:db8:0::1"}, {"locked"}),  # any spelling of the address
        ({"q": "req-old"}, {"old"}),
        ({"q": " carol "}, {"old"}),
        ({"q": "req"}, set()),
        ({"code": "token_invalid", "scheme": "Bearer", "created": "30d"}, {"old"}),
        ({"q": "bob", "status": "403"}, {"locked"}),
    ],
)
def test_changelist_filters_and_search(
    admin_client, events, params, expected, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    assert shown(response) == {events[name].pk for name in expected}


def test_changelist_filter_choices(admin_client, events):
    response = admin_client.get(CHANGELIST)
    filters = {spec.title: [c["display"] for c in spec.choices(response.context["cl"])]
               for spec in response.context["cl"].filter_specs}  # fmt: skip
    assert filters == {
        "time": ["All", "Last hour", "Last 24 hours", "Last 7 days", "Last 30 days"],
        # the codes present, found by walking the code index
        "code": ["All", "account_locked", "admin_lock", "credentials_invalid",
                 "token_expired", "token_invalid"],
        "HTTP status": ["All", "401", "403", "429", "none (admin change, success)"],
        "scheme": ["All", "Basic", "Bearer", "Token", "Session", "Password", "none"],
    }  # fmt: skip
    assert response.context["cl"].date_hierarchy is None


def test_changelist_links_to_user_and_account(admin_client, user_factory):
    bob, carol = user_factory("bob"), user_factory("carol")
    accounts.lock(bob, reason="Stolen laptop")
    event(username="bob", user=bob)
    event(username="carol", user=carol)  # no AccountStatus row: active
    fixed = AuthEvent.objects.create(
        created_at=datetime(2026, 11, 25, 10, 11, 12, tzinfo=UTC), code="credentials_invalid"
    )
    status = AccountStatus.objects.get(user=bob)
    html = admin_client.get(CHANGELIST).content.decode()
    assert (
        f'<th class="field-time"><a href="/admin/auth401/authevent/{fixed.pk}/change/">'
        "2026-11-25 10:11:12</a></th>"
    ) in html
    assert (
        f'<td class="field-user_link"><a href="/admin/auth/user/{bob.pk}/change/">bob</a>' in html
    )
    assert (
        '<td class="field-account_link">'
        f'<a href="/admin/auth401/accountstatus/{status.pk}/change/">locked</a>'
    ) in html
    assert '<td class="field-account_link">active</td>' in html
    assert '<td class="field-user_link">-</td><td class="field-account_link">-</td>' in html
    assert 'href="/admin/auth401/authevent/dashboard/"' in html


def test_changelist_never_counts_the_whole_table(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 3)
    monkeypatch.setattr(AuthEventAdmin, "list_per_page", 2)
    for minutes in range(5):
        event(minutes)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 4" in sql for sql in counts)
    html = response.content.decode()
    assert "3 authentication events" in html
    assert "More than 3 events match: counting stops there" in html
    assert response.context["cl"].paginator.num_pages == 2
    searched = admin_client.get(CHANGELIST, {"created": "1h", "q": "alice"}).content.decode()
    assert "More than 3 events match" in searched


def test_changelist_exact_count_under_the_cap(admin_client):
    event(1)
    event(2)
    response = admin_client.get(CHANGELIST)
    html = response.content.decode()
    assert "2 authentication events" in html
    assert "auth401-count-note" not in html
    assert response.context["cl"].paginator.count_kind == "exact"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row estimate")
def test_unfiltered_changelist_uses_postgresql_estimate(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 3)
    AuthEvent.objects.bulk_create(
        AuthEvent(code="credentials_invalid", status_code=401) for _ in range(40)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE auth401_authevent")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    html = response.content.decode()
    assert "40 authentication events" in html
    assert "About 40 events: PostgreSQL's estimate" in html
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    filtered = admin_client.get(CHANGELIST, {"code": "credentials_invalid"})
    assert "More than 3 events match" in filtered.content.decode()


def test_event_admin_permissions(admin_client, client, user_factory):
    row = event()
    change = f"{CHANGELIST}{row.pk}/change/"
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"code": "forged"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert [name for name, _label in actions] == ["", "export_csv"]  # no bulk delete
    assert admin_client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not AuthEvent.objects.filter(pk=row.pk).exists()

    staff = user_factory("staff", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="view_authevent"),
        Permission.objects.get(codename="delete_authevent"),
    )
    client.force_login(staff)
    kept = event()
    assert client.get(f"{CHANGELIST}{kept.pk}/change/").status_code == 200
    assert client.post(f"{CHANGELIST}{kept.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuthEvent.objects.filter(pk=kept.pk).exists()


# --- CSV export ------------------------------------------------------------------------------


def _export(client, data):
    response = client.post(CHANGELIST, {"action": "export_csv", **data})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="auth401-events-')
    assert response.streaming
    return b"".join(response.streaming_content).decode()


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
    admin_lock = AuthEvent.objects.create(
        created_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        code="admin_lock",
        username="bob",
        user=bob,
        actor=root,
        note="Stolen laptop",
    )
    content = _export(admin_client, {"_selected_action": [plain.pk, hostile.pk, admin_lock.pk]})
    assert content == (
        "id,created_at,code,status_code,username,user,ip,user_agent,method,path,scheme,"
        "request_id,token_fingerprint,actor,note\r\n"
        f"{admin_lock.pk},2026-11-25T12:00:00.000+00:00,admin_lock,,bob,bob,,,,,,,,root,"
        "Stolen laptop\r\n"
        f"{hostile.pk},2026-11-25T11:00:00.000+00:00,credentials_invalid,401,"
        '"\'=HYPERLINK(""http://evil.example"",""x"")",,,\'+cmd|\' /C calc\'!A0,POST,\'-2+3,'
        "Basic,'@SUM(A1),,,\"'\tTAB, with comma\"\r\n"
        f"{plain.pk},2026-11-25T10:00:00.123+00:00,token_expired,401,bob,bob,192.0.2.9,"
        "curl/8.5.0,GET,/api/me/,Bearer,req-1,0123456789abcdef,,\r\n"
    )


def test_csv_export_of_everything_filtered(admin_client):
    keep = event(code="token_expired", request_id="keep")
    event(code="credentials_invalid", request_id="drop")
    response = admin_client.post(
        f"{CHANGELIST}?code=token_expired",
        {"action": "export_csv", "select_across": "1", "_selected_action": [keep.pk]},
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{keep.pk},") and ",keep," in lines[1]


# --- AccountStatus page ----------------------------------------------------------------------


def test_account_status_page_shows_state_and_recent_events(admin_client, user_factory):
    bob = user_factory("bob")
    accounts.lock(bob, until=timedelta(hours=1), reason="Too many failures")
    for minute in range(25):
        event(minute + 1, username="bob", request_id=f"r{minute}", code=f"code_{minute:02d}")
    event(username="carol", code="not_bobs")
    status = AccountStatus.objects.get(user=bob)
    response = admin_client.get(f"/admin/auth401/accountstatus/{status.pk}/change/")
    html = response.content.decode()
    assert "Too many failures" in html
    assert "Locked automatically:" in html
    table = html[html.index("auth401-recent-events") :]
    rows = table[: table.index("</table>")].count("<tr>") - 1  # minus the header
    assert rows == 20
    # newest first: the lock (just now), then code_00 .. code_18
    assert table.index("admin_lock") < table.index("code_00") < table.index("code_18")
    assert "code_19" not in table and "not_bobs" not in table
    assert "?q=bob" in table

    listing = admin_client.get("/admin/auth401/accountstatus/").content.decode()
    assert "Too many failures" in listing
    assert 'class="field-automatic"' in listing


# --- dashboard -------------------------------------------------------------------------------


@pytest.fixture
def dashboard_data(user_factory):
    """Failures over the last day in a frozen clock, and three account states."""
    with time_machine.travel(NOW, tick=False):
        for minutes, code, ip, username in [
            (5, "credentials_invalid", "192.0.2.1", "alice"),
            (10, "credentials_invalid", "192.0.2.1", "alice"),
            (20, "token_expired", "192.0.2.1", "bob"),
            (65, "credentials_invalid", "192.0.2.7", "alice"),
            (60 * 23 + 20, "account_locked", "192.0.2.7", "erin"),  # 13:10 yesterday
            (60 * 23 + 40, "credentials_invalid", "192.0.2.9", "old"),  # 12:50: before
        ]:
            event(minutes, code=code, ip=ip, username=username)
        event(3, code="admin_unlock", status_code=None, username="alice")  # not a failure
        locked = user_factory("locked-user")
        accounts.lock(locked, reason="Phishing")
        ended = user_factory("ended-lock")
        accounts.lock(ended, until=NOW - timedelta(minutes=1))
        accounts.suspend(user_factory("suspended-user"))
        yield locked


def test_dashboard(admin_client, dashboard_data, django_assert_max_num_queries):
    with time_machine.travel(NOW, tick=False), django_assert_max_num_queries(10):
        response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/auth401/authevent/dashboard.html"
    context = response.context
    counts = [bar["count"] for bar in context["chart"]["bars"]]
    assert counts == [1] + [0] * 21 + [1, 3]  # from 13:00 yesterday to 12:30 today
    assert context["total"] == 5
    assert [(r["value"], r["count"]) for r in context["top_codes"]] == [
        ("credentials_invalid", 3),
        ("account_locked", 1),
        ("token_expired", 1),
    ]
    assert [(r["value"], r["count"]) for r in context["top_ips"]] == [
        ("192.0.2.1", 3),
        ("192.0.2.7", 2),
    ]
    assert [(r["value"], r["count"]) for r in context["top_usernames"]] == [
        ("alice", 3),
        ("bob", 1),
        ("erin", 1),
    ]
    assert [row["status"].user.username for row in context["locked"]["rows"]] == ["locked-user"]

    html = response.content.decode()
    assert html.count('<rect class="bar"') == 24
    assert "<title>2026-11-25 12:00: 3</title>" in html
    assert 'height="160.0"' in html  # the busiest hour fills the chart
    assert "5 failures since 2026-11-24 13:00" in html
    assert 'href="/admin/auth401/authevent/?code=credentials_invalid&amp;created=24h"' in html
    assert 'href="/admin/auth401/authevent/?q=192.0.2.1&amp;created=24h"' in html
    assert 'href="/admin/auth401/authevent/?q=alice&amp;created=24h"' in html
    locked_section = html[html.index('id="auth401-locked"') :]
    assert "locked-user" in locked_section and "Phishing" in locked_section
    assert "ended-lock" not in locked_section and "suspended-user" not in locked_section
    assert f'name="user" value="{dashboard_data.pk}"' in locked_section
    assert "csrfmiddlewaretoken" in locked_section
    assert ">Unlock</button>" in locked_section


def test_dashboard_when_empty(admin_client):
    html = admin_client.get(DASHBOARD).content.decode()
    assert "0 failures since" in html
    assert "No account is locked." in html
    assert html.count("No failures in the last 24 hours.") == 3


def test_dashboard_unlock(admin_client, dashboard_data):
    admin = admin_client.get(DASHBOARD).context["user"]
    response = admin_client.post(UNLOCK, {"user": dashboard_data.pk}, follow=True)
    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert "Unlocked locked-user." in response.content.decode()
    assert "No account is locked." in response.content.decode()
    status = AccountStatus.objects.get(user=dashboard_data)
    assert (status.state, status.changed_by) == ("active", admin)
    unlock = AuthEvent.objects.get(code="admin_unlock", user=dashboard_data)
    assert unlock.actor == admin

    again = admin_client.post(UNLOCK, {"user": dashboard_data.pk}, follow=True)
    assert "Account locked-user was not locked" in again.content.decode()
    assert AuthEvent.objects.filter(code="admin_unlock", user=dashboard_data).count() == 1


def test_dashboard_unlock_needs_post_and_permission(admin_client, client, user_factory):
    bob = user_factory("bob")
    accounts.lock(bob)
    assert admin_client.get(UNLOCK, {"user": bob.pk}).status_code == 405
    assert admin_client.post(UNLOCK, {"user": "nobody"}).status_code == 404
    assert admin_client.post(UNLOCK, {"user": "999999"}).status_code == 404

    viewer = user_factory("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_authevent"))
    client.force_login(viewer)
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    assert "bob" in page.content.decode() and ">Unlock</button>" not in page.content.decode()
    assert client.post(UNLOCK, {"user": bob.pk}).status_code == 403
    assert AccountStatus.objects.get(user=bob).state == "locked"

    viewer.user_permissions.add(Permission.objects.get(codename="change_accountstatus"))
    client.force_login(viewer)  # fresh permission cache
    assert client.post(UNLOCK, {"user": bob.pk}).status_code == 302
    assert AccountStatus.objects.get(user=bob).state == "active"


def test_dashboard_needs_staff_and_view_permission(client, user_factory):
    assert client.get(DASHBOARD).status_code == 302  # to the admin login
    client.force_login(user_factory("staff", is_staff=True))
    assert client.get(DASHBOARD).status_code == 403


def test_dashboard_csrf(user_factory):
    from django.test import Client

    admin = user_factory("root", is_staff=True, is_superuser=True)
    bob = user_factory("bob")
    accounts.lock(bob)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin)
    assert strict.post(UNLOCK, {"user": bob.pk}).status_code == 403
    assert AccountStatus.objects.get(user=bob).state == "locked"


# --- auth401_prune ---------------------------------------------------------------------------


def test_prune_deletes_old_rows_in_batches(auth401_settings):
    auth401_settings(COUNTER_STORE="database")
    with time_machine.travel(NOW, tick=False):
        old = [event(60 * 24 * days) for days in (91, 95, 200)]
        kept = [event(60 * 24 * days) for days in (89, 1)]
        FailureCounter.objects.create(counter_key="u:gone", failures=3, window_ends=0)
        FailureCounter.objects.create(
            counter_key="u:live", failures=1, window_ends=int(NOW.timestamp() * 1000) + 60_000
        )
        out = StringIO()
        with CaptureQueriesContext(connection) as queries:
            call_command("auth401_prune", "--batch-size", "2", stdout=out)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    event_deletes = [sql for sql in deletes if "auth401_authevent" in sql]
    assert len(event_deletes) == 2  # 2 + 1 rows
    assert out.getvalue() == (
        "Deleted 3 events older than 2026-08-27 12:30:00 UTC.\nDeleted 1 expired failure counter.\n"
    )
    assert set(AuthEvent.objects.values_list("pk", flat=True)) == {e.pk for e in kept}
    assert not AuthEvent.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert list(FailureCounter.objects.values_list("counter_key", flat=True)) == ["u:live"]

    with time_machine.travel(NOW, tick=False):
        again = StringIO()
        call_command("auth401_prune", stdout=again)
    assert again.getvalue() == (
        "Deleted 0 events older than 2026-08-27 12:30:00 UTC.\n"
        "Deleted 0 expired failure counters.\n"
    )


def test_prune_older_than_and_retention_setting(auth401_settings):
    with time_machine.travel(NOW, tick=False):
        event(60 * 24 * 40)
        event(60 * 24 * 20)
        event(60)
        out = StringIO()
        call_command("auth401_prune", "--older-than", "30", stdout=out)
        assert out.getvalue().startswith("Deleted 1 event older than 2026-10-26 12:30:00 UTC.\n")
        auth401_settings(AUDIT_RETENTION=timedelta(days=7))
        out = StringIO()
        call_command("auth401_prune", stdout=out)
        assert out.getvalue().startswith("Deleted 1 event older than 2026-11-18 12:30:00 UTC.\n")
        out = StringIO()
        call_command("auth401_prune", "--older-than", "0", stdout=out)
        assert out.getvalue().startswith("Deleted 1 event older than 2026-11-25 12:30:00 UTC.\n")
    assert not AuthEvent.objects.exists()


@pytest.mark.parametrize("args", [["--older-than", "-1"], ["--batch-size", "0"]])
def test_prune_refuses_bad_arguments(args):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("auth401_prune", *args, stdout=StringIO())
