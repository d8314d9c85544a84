"""The AuthEvent admin: an append-only trail (no add, change or delete for anyone), filters
from the catalogue, a search that finds usernames as the lockout counts them, links to the
user and the account, and a changelist that never counts the whole table."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth401 import accounts
from auth401.admin import AuthEventAdmin, CappedCountPaginator
from auth401.admin.filters import username_match
from auth401.codes import CATALOGUE
from auth401.lockout import normalise_username
from auth401.models import AccountStatus, AuthEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/auth401/authevent/"


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
    values.setdefault("username_normalised", normalise_username(values["username"]))
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
            username="BOB", user=bob, ip="2001:db8::1", request_id="req-locked",
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
        ({"kind": "guessing"}, {"basic", "locked"}),
        ({"kind": "routine"}, {"bearer", "old"}),
        ({"kind": "account"}, {"admin"}),
        ({"kind": "success"}, set()),
        ({"status": "401"}, {"basic", "bearer", "old"}),
        ({"status": "403"}, {"locked"}),
        ({"status": "none"}, {"admin"}),
        ({"status": "abc"}, set()),
        ({"status": "99999999999"}, set()),
        ({"scheme": "Bearer"}, {"bearer", "old"}),
        ({"scheme": "none"}, {"admin"}),
        ({"created": "1h"}, {"basic"}),
        ({"created": "24h"}, {"basic", "bearer", "locked"}),
        ({"created": "7d"}, {"basic", "bearer", "locked", "admin"}),
        ({"created": "30d"}, {"basic", "bearer", "locked", "admin", "old"}),
        # usernames as the lockout counts them: any case, the whole name
        ({"q": "bob"}, {"locked", "admin"}),
        ({"q": "BOB"}, {"locked", "admin"}),
        ({"q": "bo"}, set()),
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


def test_search_matches_the_lockouts_normalisation():
    event(username="Ｃａｒｏｌ")  # fullwidth: NFKC makes it "carol"
    event(username="CAROL")
    event(username="carole")
    matched = AuthEvent.objects.filter(username_match("carol"))
    assert sorted(matched.values_list("username", flat=True)) == ["CAROL", "Ｃａｒｏｌ"]


def test_changelist_filter_choices_come_from_the_catalogue(admin_client, events):
    response = admin_client.get(CHANGELIST)
    filters = {spec.title: [c["display"] for c in spec.choices(response.context["cl"])]
               for spec in response.context["cl"].filter_specs}  # fmt: skip
    assert filters["time"] == ["All", "Last hour", "Last 24 hours", "Last 7 days", "Last 30 days"]
    assert filters["kind"] == [
        "All", "Password guessing and locks", "Routine failures", "Account changes",
        "Successful logins",
    ]  # fmt: skip
    assert filters["code"] == [
        "All", *CATALOGUE, "admin_lock", "admin_suspend", "admin_unlock", "admin_reinstate",
        "auto_lock", "self_service_unlock", "devices_revoked", "login_succeeded",
    ]  # fmt: skip
    statuses = sorted({str(r.status_code()) for r in CATALOGUE.values()})
    assert filters["HTTP status"] == ["All", *statuses, "none (account change, success)"]
    assert filters["scheme"] == ["All", "Basic", "Bearer", "Token", "Session", "Password", "none"]
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
    # the username as typed, the user it named and that account's state now, in one cell
    assert (
        f'<td class="field-who"><a href="/admin/auth/user/{bob.pk}/change/">bob</a> '
        '<span class="auth401-account">('
        f'<a href="/admin/auth401/accountstatus/{status.pk}/change/">locked</a>)</span></td>'
    ) in html
    assert (
        f'<td class="field-who"><a href="/admin/auth/user/{carol.pk}/change/">carol</a> '
        '<span class="auth401-account">(active)</span></td>'
    ) in html
    assert '<td class="field-who">-</td>' in html  # no username, no user
    assert (
        '<td class="field-code_status"><span class="auth401-code">credentials_invalid</span> '
        '<span class="auth401-status">401</span></td>'
    ) in html
    assert '<td class="field-request">Basic GET /api/me/</td>' in html
    assert '<td class="field-actor_note">Stolen laptop</td>' in html  # locked from code: no actor

    # a spelling of the name that differs from the account's, and an administrator's change
    event(username="BOB", user=bob)
    accounts.suspend(carol, reason="Chargeback", by=admin_client.get(CHANGELIST).context["user"])
    html = admin_client.get(CHANGELIST).content.decode()
    assert (
        f'<td class="field-who">BOB &rarr; <a href="/admin/auth/user/{bob.pk}/change/">bob</a> '
    ) in html
    assert (
        '<td class="field-actor_note"><span class="auth401-actor">admin</span>: Chargeback</td>'
    ) in html
    assert (
        '<td class="field-code_status"><span class="auth401-code">admin_suspend</span></td>' in html
    )
    assert 'href="/admin/auth401/authevent/dashboard/"' in html


def test_changelist_never_counts_the_whole_table(admin_client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "count_cap", 3)
    monkeypatch.setattr(AuthEventAdmin, "list_per_page", 2)
    for minutes in range(5):
        event(minutes)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 4" in sql for sql in counts)
    # it selects the column every index ends with: PostgreSQL counts from the index alone
    assert all('(SELECT "auth401_authevent"."created_at" AS' in sql for sql in counts), counts
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


# --- append-only ----------------------------------------------------------------------------


def test_superuser_cannot_add_change_or_delete_events(admin_client):
    row = event(note="original")
    page = admin_client.get(f"{CHANGELIST}{row.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["title"] == "View authentication event"
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    submit_row = html[html.index('<div class="submit-row">') :]
    submit_row = " ".join(submit_row[: submit_row.index("</div>") + 6].split())
    submit_row = submit_row.replace(' role="button"', "")  # Django 6 adds the role
    assert submit_row == (
        '<div class="submit-row"> <a href="/admin/auth401/authevent/" class="closelink">Close</a>'
        " </div>"
    )
    assert admin_client.post(f"{CHANGELIST}{row.pk}/change/", {"code": "x"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{row.pk}/delete/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert [name for name, _label in actions] == ["", "export_csv"]  # no bulk delete
    bulk = admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
        follow=True,
    )
    assert [str(m) for m in bulk.context["messages"]] == ["No action selected."]
    row.refresh_from_db()
    assert (row.code, row.note) == ("credentials_invalid", "original")


def test_staff_with_the_view_permission_reads_the_trail(client, user_factory):
    staff = user_factory("staff", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_authevent", "change_authevent", "delete_authevent"]
        )
    )
    client.force_login(staff)
    row = event()
    assert client.get(CHANGELIST).status_code == 200
    page = client.get(f"{CHANGELIST}{row.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuthEvent.objects.filter(pk=row.pk).exists()

    nobody = user_factory("nobody", is_staff=True)
    client.force_login(nobody)
    assert client.get(CHANGELIST).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "kept"),
    [
        (f"{CHANGELIST}?ip=notanip&code=credentials_invalid", "code=credentials_invalid"),
        (f"{CHANGELIST}?ip=10.0.0.0/8", ""),
        (f"{CHANGELIST}?ip=%00", ""),
        (f"{CHANGELIST}?username_normalised=%00", ""),
        (f"{CHANGELIST}?code=a%00b&status=401", "status=401"),
        (f"{CHANGELIST}?scheme=a%00b", ""),
        ("/admin/auth401/accountstatus/?state=%00", ""),
    ],
)
def test_url_lookups_no_row_can_match_are_dropped_not_a_500(admin_client, events, url, kept):
    """The dashboard links to ``?ip=`` and ``?username_normalised=``: a hand-edited value that
    no column can hold (PostgreSQL refuses a NUL, and a non-address in ``inet``) redirects to
    the list without it."""
    response = admin_client.get(url)
    assert response.status_code == 302
    assert response["Location"] == url.split("?")[0] + "?" + kept
    assert admin_client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_url_lookups_that_can_match_are_kept(admin_client, events):
    response = admin_client.get(CHANGELIST, {"ip": "192.0.2.1"})
    assert response.status_code == 200
    assert {row.ip for row in response.context["cl"].result_list} <= {"192.0.2.1"}


@pytest.mark.django_db
def test_a_summed_row_shows_its_count_and_the_dashboard_sums_it(admin_client, auth401_settings):
    """Failures that name no one are one row per code, address and path per window: the list
    shows how many failures the row stands for, and the dashboard counts them all."""
    from datetime import timedelta

    from django.test import Client

    from auth401 import events

    auth401_settings(AUDIT_BATCH_DELAY=timedelta(seconds=60))
    anonymous = Client()
    for i in range(12):
        anonymous.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer not.a.token{i}")
    events.flush()
    row = AuthEvent.objects.get(code="token_invalid")
    assert row.count == 12
    page = admin_client.get("/admin/auth401/authevent/").content.decode()
    assert '<span class="auth401-count" title="failures this row stands for">× 12</span>' in page
    dashboard = admin_client.get("/admin/auth401/authevent/dashboard/")
    assert dashboard.status_code == 200
    _, routine = dashboard.context["panels"]
    assert ("token_invalid", 12) in [(r["value"], r["count"]) for r in routine["top_codes"]]
