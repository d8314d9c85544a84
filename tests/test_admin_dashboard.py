"""The failures dashboard: password guessing and locks apart from routine failures, usernames
grouped as the lockout counts them, the locked accounts and addresses, and Unlock through the
reason form."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth401 import accounts, lockout
from auth401.admin.dashboard import bars
from auth401.models import AccountStatus, AuthEvent

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/auth401/authevent/dashboard/"
ADDRESS_UNLOCK = "/admin/auth401/authevent/dashboard/unlock-address/"
NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def event(minutes_ago: float = 1, **fields) -> AuthEvent:
    values = {"code": "credentials_invalid", "status_code": 401, "username": "alice",
              "ip": "192.0.2.1", "scheme": "Basic", **fields}  # fmt: skip
    values.setdefault("username_normalised", lockout.normalise_username(values["username"]))
    return AuthEvent.objects.create(
        created_at=timezone.now() - timedelta(minutes=minutes_ago), **values
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def data(user_factory):
    """Failures over the last day in a frozen clock, and three account states."""
    with time_machine.travel(NOW, tick=False):
        for minutes, code, ip, username in [
            (5, "credentials_invalid", "192.0.2.1", "alice"),
            (10, "credentials_invalid", "192.0.2.1", "ALICE"),
            (20, "token_expired", "192.0.2.1", "bob"),
            (25, "token_expired", "192.0.2.5", ""),
            (65, "credentials_invalid", "192.0.2.7", "Ａｌｉｃｅ"),
            (60 * 23 + 20, "account_locked", "192.0.2.7", "erin"),  # 13:10 yesterday
            (60 * 23 + 40, "credentials_invalid", "192.0.2.9", "old"),  # 12:50: before
        ]:
            event(minutes, code=code, ip=ip, username=username)
        event(4, code="auto_lock", status_code=None, username="alice", ip=None)
        event(3, code="admin_unlock", status_code=None, username="alice")  # not a failure
        locked = user_factory("locked-user")
        accounts.lock(locked, reason="Phishing")
        ended = user_factory("ended-lock")
        accounts.lock(ended, until=NOW - timedelta(minutes=1))
        accounts.suspend(user_factory("suspended-user"))
        yield locked


def test_dashboard(admin_client, data, django_assert_max_num_queries):
    with time_machine.travel(NOW, tick=False), django_assert_max_num_queries(10):
        response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/auth401/authevent/dashboard.html"
    context = response.context
    guessing, routine = context["panels"]
    assert guessing["kind"] == "guessing" and routine["kind"] == "routine"
    counts = [bar["count"] for bar in guessing["chart"]["bars"]]
    assert counts == [1] + [0] * 21 + [1, 3]  # from 13:00 yesterday to 12:30 today
    assert [bar["count"] for bar in routine["chart"]["bars"]] == [0] * 23 + [2]
    assert (guessing["total"], routine["total"]) == (5, 2)
    assert [(r["value"], r["count"]) for r in guessing["top_codes"]] == [
        ("credentials_invalid", 3),
        ("account_locked", 1),
        ("auto_lock", 1),
    ]
    assert [(r["value"], r["count"]) for r in routine["top_codes"]] == [("token_expired", 2)]
    # the addresses and usernames of guessing only; usernames as the lockout counts them
    assert [(r["value"], r["count"]) for r in context["top_ips"]] == [
        ("192.0.2.1", 2),
        ("192.0.2.7", 2),
    ]
    names = [(r["value"], r["count"]) for r in context["top_usernames"]]
    assert names == [("alice", 4), ("erin", 1)]
    assert [row["status"].user.username for row in context["locked"]["rows"]] == ["locked-user"]
    assert context["addresses"] is None or "rows" in context["addresses"]

    html = response.content.decode()
    assert html.count('<rect class="bar"') == 48
    assert "<title>2026-11-25 12:00: 3</title>" in html
    assert 'height="120.0"' in html  # the busiest hour fills the chart
    assert "5 failures since 2026-11-24 13:00" in html
    assert "2 failures since 2026-11-24 13:00" in html
    assert "<h2>Password guessing and locks</h2>" in html
    assert "<h2>Routine failures (expired tokens, missing credentials…)</h2>" in html
    changelist = "/admin/auth401/authevent/"
    assert f'href="{changelist}?code=credentials_invalid&amp;kind=guessing&amp;created=24h"' in html
    assert f'href="{changelist}?code=token_expired&amp;kind=routine&amp;created=24h"' in html
    assert f'href="{changelist}?q=192.0.2.1&amp;kind=guessing&amp;created=24h"' in html
    assert f'href="{changelist}?q=alice&amp;kind=guessing&amp;created=24h"' in html
    locked_section = html[html.index('id="auth401-locked"') :]
    assert "locked-user" in locked_section and "Phishing" in locked_section
    assert "ended-lock" not in locked_section and "suspended-user" not in locked_section
    back = "%2Fadmin%2Fauth401%2Fauthevent%2Fdashboard%2F"
    unlock = f"/admin/auth401/accountstatus/user/{data.pk}/unlock/?next={back}"
    assert f'<a class="button auth401-unlock" href="{unlock}"' in locked_section


def summary(context) -> dict:
    """The dashboard's numbers: per kind the per-hour counts and the top codes, and the top
    client IPs and usernames."""
    return {
        **{
            panel["kind"]: (
                [bar["count"] for bar in panel["chart"]["bars"]],
                [(r["value"], r["count"]) for r in panel["top_codes"]],
            )
            for panel in context["panels"]
        },
        "ip": [(r["value"], r["count"]) for r in context["top_ips"]],
        "username": [(r["value"], r["count"]) for r in context["top_usernames"]],
    }


def test_settled_hours_are_counted_once(admin_client, data):
    """The whole hours that have settled are counted at the first view and kept: later views
    count only the current hour (three aggregate queries fewer), with the same numbers, and
    see new failures of the current hour at once."""
    with time_machine.travel(NOW, tick=False):
        with CaptureQueriesContext(connection) as first:
            before = summary(admin_client.get(DASHBOARD).context)
        with CaptureQueriesContext(connection) as second:
            again = summary(admin_client.get(DASHBOARD).context)
        assert again == before
        assert len(second) == len(first) - 3
        since = [q["sql"] for q in second if "SUM(" in q["sql"].upper()]
        assert len(since) == 3  # the current hour's codes, addresses and usernames
        event(1, ip="192.0.2.9", username="mallory")
        now = summary(admin_client.get(DASHBOARD).context)
    assert now["guessing"][0][-1] == before["guessing"][0][-1] + 1
    assert now["ip"] == [("192.0.2.1", 2), ("192.0.2.7", 2), ("192.0.2.9", 1)]
    assert now["username"] == [("alice", 4), ("erin", 1), ("mallory", 1)]


def test_late_rows_the_drain_writes_are_counted(admin_client, data):
    """Rows the drain writes into a settled hour (events that waited in Redis) make the
    dashboard count that hour again."""
    from auth401.drain import write_events

    with time_machine.travel(NOW, tick=False):
        before = summary(admin_client.get(DASHBOARD).context)
        write_events(
            [
                {"event_id": uuid.uuid4().hex, "code": "credentials_invalid",
                 "status_code": 401, "username": "erin", "username_normalised": "erin",
                 "ip": "192.0.2.7", "created_at": (NOW - timedelta(hours=5)).isoformat()}
            ]
        )  # fmt: skip
        after = summary(admin_client.get(DASHBOARD).context)
    hours = before["guessing"][0]
    assert after["guessing"][0] == hours[:18] + [hours[18] + 1] + hours[19:]  # 07:00-08:00
    assert after["ip"] == [("192.0.2.7", 3), ("192.0.2.1", 2)]
    assert after["username"] == [("alice", 4), ("erin", 2)]


def test_the_last_hour_settles_after_a_few_minutes(admin_client, data):
    """In the first minutes of an hour the hour before is still counted at each view: a row
    written a moment late (a batch, a slow request) still counts."""
    just_after = datetime(2026, 11, 25, 13, 1, tzinfo=UTC)
    with time_machine.travel(just_after, tick=False):
        before = summary(admin_client.get(DASHBOARD).context)
        AuthEvent.objects.create(
            created_at=datetime(2026, 11, 25, 12, 59, 59, tzinfo=UTC),
            code="token_expired", status_code=401, username="bob", username_normalised="bob",
        )  # fmt: skip
        after = summary(admin_client.get(DASHBOARD).context)
    assert after["routine"][0][-2] == before["routine"][0][-2] + 1  # 12:00-13:00


def test_kept_counts_move_forward_with_the_window(admin_client, data):
    """An hour later the kept counts lose the hour that left the window and gain the rows
    since, each counted over that stretch only; the numbers are those of a fresh count."""
    from django.core.cache import cache

    later = NOW + timedelta(hours=1, minutes=5)  # 13:35: the window starts at 14:00 yesterday
    with time_machine.travel(NOW, tick=False):
        admin_client.get(DASHBOARD)
        event(2, ip="192.0.2.7", username="erin")  # 12:28, after the boundary kept (12:20)
    with time_machine.travel(later, tick=False):
        event(30, ip="192.0.2.9", username="mallory")  # 13:05
        with CaptureQueriesContext(connection) as queries:
            moved = summary(admin_client.get(DASHBOARD).context)
        counts = [q["sql"] for q in queries if "SUM(" in q["sql"].upper()]
        cache.clear()
        fresh = summary(admin_client.get(DASHBOARD).context)
    assert moved == fresh
    assert len(counts) == 9  # the hour that left, 12:20-13:30, and the rows since 13:30
    # erin's 13:10 yesterday left the window; her 12:28 today came in
    assert moved["username"] == [("alice", 4), ("erin", 1), ("mallory", 1)]
    assert moved["guessing"][0][-3:] == [1, 4, 1]  # 11:00, 12:00, 13:00


def test_kept_counts_are_counted_afresh_after_six_hours(admin_client, data):
    """A row written into the kept stretch behind the drain's back (a drain in another
    process with a cache of its own) counts at the latest six hours later."""
    with time_machine.travel(NOW, tick=False):
        admin_client.get(DASHBOARD)
        event(60 * 3, ip="192.0.2.7", username="mallory")  # 09:30, inside the kept stretch
        names = summary(admin_client.get(DASHBOARD).context)["username"]
        assert names == [("alice", 4), ("erin", 1)]
    with time_machine.travel(NOW + timedelta(hours=5, minutes=50), tick=False):
        names = summary(admin_client.get(DASHBOARD).context)["username"]
        assert names == [("alice", 4)]  # erin's row of yesterday 13:10 has left the window
    with time_machine.travel(NOW + timedelta(hours=6, minutes=10), tick=False):
        names = summary(admin_client.get(DASHBOARD).context)["username"]
        assert names == [("alice", 4), ("mallory", 1)]


def test_top_lists_add_kept_and_current_counts_exactly():
    from auth401.admin.dashboard import _top

    past = [("a", 9), ("b", 8), ("c", 7), ("d", 1)]
    assert _top(past, [("d", 10), ("e", 7)], str)[:4] == [("d", 11), ("a", 9), ("b", 8), ("c", 7)]
    many = [(f"v{i:02d}", 100 - i) for i in range(30)]
    live = [("v29", 50), ("new", 95)]
    expected = sorted(
        {**dict(many), "v29": 71 + 50, "new": 95}.items(), key=lambda item: (-item[1], item[0])
    )[:10]
    assert _top(many, live, str) == expected
    assert _top([], [], str) == []


def test_dashboard_when_the_cache_fails(admin_client, data, monkeypatch):
    """A failing cache costs time, never the page: everything is counted."""
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    with time_machine.travel(NOW, tick=False):
        expected = summary(admin_client.get(DASHBOARD).context)
        monkeypatch.setattr(cache, "get", broken)
        monkeypatch.setattr(cache, "set", broken)
        response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    assert summary(response.context) == expected


def test_dashboard_when_empty(admin_client):
    html = admin_client.get(DASHBOARD).content.decode()
    assert html.count("0 failures since") == 2
    assert "No account is locked." in html
    assert html.count("No failures in the last 24 hours.") == 4  # 2 + 1 code tables, IPs, names


def test_bars_geometry():
    hour = datetime(2026, 11, 25, 0, tzinfo=UTC)
    chart = bars([(hour + timedelta(hours=i), n) for i, n in enumerate([0, 2, 4])], width=300)
    assert chart["max"] == 4
    assert [(b["x"], b["y"], b["width"], b["height"]) for b in chart["bars"]] == [
        ("1.0", "136.0", "98.0", "0.0"),
        ("101.0", "76.0", "98.0", "60.0"),
        ("201.0", "16.0", "98.0", "120.0"),
    ]
    assert [b["label"] for b in chart["bars"]] == ["00:00", "", ""]
    assert (chart["view_height"], chart["axis_y"], chart["label_y"]) == ("156", "136", "151")


def test_unlock_from_the_dashboard_asks_why(admin_client, data):
    admin = admin_client.get(DASHBOARD).context["user"]
    html = admin_client.get(DASHBOARD).content.decode()
    start = html.index('<a class="button auth401-unlock" href="') + 39
    unlock = html[start : html.index('"', start)].replace("&amp;", "&")
    form = admin_client.get(unlock)
    assert form.status_code == 200
    assert "<h1>Unlock accounts</h1>" in form.content.decode()
    assert '<input type="hidden" name="next" value="/admin/auth401/authevent/dashboard/">' in (
        form.content.decode()
    )
    done = admin_client.post(
        unlock, {"reason": "Called the help desk", "next": DASHBOARD}, follow=True
    )
    assert done.redirect_chain == [(DASHBOARD, 302)]
    assert messages_of(done) == ["1 account unlocked."]
    assert "No account is locked." in done.content.decode()
    status = AccountStatus.objects.get(user=data)
    assert (status.state, status.changed_by, status.reason) == (
        "active", admin, "Called the help desk",
    )  # fmt: skip
    event = AuthEvent.objects.get(code="admin_unlock", user=data)
    assert (event.actor, event.note) == (admin, "Called the help desk")

    again = admin_client.post(unlock, {"next": DASHBOARD}, follow=True)
    assert messages_of(again) == ["locked-user was not locked; its failure counter was cleared."]
    assert AuthEvent.objects.filter(code="admin_unlock", user=data).count() == 1


def test_dashboard_unlock_when_the_trail_refuses_writes(admin_client, data, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("permission denied for table auth401_authevent")

    monkeypatch.setattr(accounts, "unlock", refuse)
    url = f"/admin/auth401/accountstatus/user/{data.pk}/unlock/"
    done = admin_client.post(url, {"reason": "x", "next": DASHBOARD}, follow=True)
    assert done.status_code == 200
    [message] = messages_of(done)
    assert message.startswith("Could not unlock locked-user: the change was not recorded.")
    assert AccountStatus.objects.get(user=data).state == "locked"
    assert "locked-user" in done.content.decode()[done.content.decode().index("auth401-locked") :]


def test_dashboard_for_a_viewer(client, user_factory):
    bob = user_factory("bob")
    accounts.lock(bob)
    assert client.get(DASHBOARD).status_code == 302  # to the admin login
    client.force_login(user_factory("staff", is_staff=True))
    assert client.get(DASHBOARD).status_code == 403
    viewer = user_factory("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_authevent"))
    client.force_login(viewer)
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    assert "bob" in page.content.decode() and "auth401-unlock" not in page.content.decode()


# --- locked addresses -----------------------------------------------------------------------


@dataclass
class AddressLock:
    address: str
    seconds_left: float
    failures: int


@pytest.fixture
def address_lockout(monkeypatch):
    """The lockout's address functions, as ``auth401.lockout`` and ``auth401.accounts``
    provide them: a list of locks and an unlock that records its calls."""
    locks = [AddressLock("203.0.113.7", 840.2, 50), AddressLock("2001:db8::/64", 0, 61)]
    calls = []

    def unlock_address(address, *, by=None, reason=""):
        calls.append((address, by, reason))
        found = [lock for lock in locks if lock.address == address]
        for lock in found:
            locks.remove(lock)
        return bool(found)

    monkeypatch.setattr(lockout, "locked_addresses", lambda: list(locks))
    monkeypatch.setattr(accounts, "unlock_address", unlock_address)
    return calls


def test_locked_addresses_and_their_unlock(admin_client, address_lockout):
    admin = admin_client.get(DASHBOARD).context["user"]
    html = admin_client.get(DASHBOARD).content.decode()
    section = html[html.index('id="auth401-locked-addresses"') :]
    section = " ".join(section[: section.index("</section>")].split())
    assert "<td>203.0.113.7</td> <td>50</td> <td>15 minutes</td>" in section
    assert "<td>2001:db8::/64</td> <td>61</td> <td>until unlocked</td>" in section
    assert f'href="{ADDRESS_UNLOCK}?address=203.0.113.7"' in section
    assert f'href="{ADDRESS_UNLOCK}?address=2001%3Adb8%3A%3A%2F64"' in section

    form = admin_client.get(ADDRESS_UNLOCK, {"address": "203.0.113.7"})
    assert form.status_code == 200 and "<li>203.0.113.7</li>" in form.content.decode()
    assert "<h1>Unlock a client address</h1>" in form.content.decode()
    done = admin_client.post(
        ADDRESS_UNLOCK, {"address": "203.0.113.7", "reason": "Office NAT"}, follow=True
    )
    assert done.redirect_chain == [(DASHBOARD, 302)]
    assert messages_of(done) == ["Unlocked 203.0.113.7."]
    assert address_lockout == [("203.0.113.7", admin, "Office NAT")]
    assert "203.0.113.7" not in done.content.decode().split('id="auth401-locked-addresses"')[1]

    again = admin_client.post(ADDRESS_UNLOCK, {"address": "203.0.113.7"}, follow=True)
    assert messages_of(again) == ["203.0.113.7 was not locked."]
    assert admin_client.get(ADDRESS_UNLOCK, {"address": "not-an-ip"}).status_code == 404
    assert admin_client.post(ADDRESS_UNLOCK, {"address": ""}).status_code == 404


def test_address_unlock_errors_and_permissions(
    admin_client, client, user_factory, address_lockout, monkeypatch
):
    def refuse(address, **kwargs):
        raise RuntimeError("audit table refuses writes")

    monkeypatch.setattr(accounts, "unlock_address", refuse)
    done = admin_client.post(ADDRESS_UNLOCK, {"address": "203.0.113.7"}, follow=True)
    [message] = messages_of(done)
    assert message.startswith("Could not unlock 203.0.113.7: the change was not recorded.")

    monkeypatch.setattr(lockout, "locked_addresses", lambda: 1 / 0)
    page = admin_client.get(DASHBOARD)
    assert page.status_code == 200
    assert "The locked addresses could not be read" in page.content.decode()

    viewer = user_factory("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_authevent"))
    client.force_login(viewer)
    assert client.post(ADDRESS_UNLOCK, {"address": "203.0.113.7"}).status_code == 403


def test_a_real_address_lock_is_listed_and_unlocked(admin_client, api_client, auth401_settings):
    """The lockout's own address lock (no stand-ins): wrong passwords from one address lock
    it, the dashboard lists it, the Unlock form ends it and records who and why."""
    from tests.conftest import basic

    auth401_settings(IP_FAILURE_LIMIT=2, FAILURE_LIMIT=50)
    for name in ("nobody-1", "nobody-2"):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(name, "x"), REMOTE_ADDR="203.0.113.9")
    refused = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("nobody-3", "x"), REMOTE_ADDR="203.0.113.9"
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "address_locked")
    html = admin_client.get(DASHBOARD).content.decode()
    section = html[html.index('id="auth401-locked-addresses"') :]
    section = " ".join(section[: section.index("</section>")].split())
    assert "<td>203.0.113.9</td>" in section
    done = admin_client.post(
        ADDRESS_UNLOCK, {"address": "203.0.113.9", "reason": "Office NAT"}, follow=True
    )
    assert messages_of(done) == ["Unlocked 203.0.113.9."]
    assert lockout.locked_addresses() == []
    event = AuthEvent.objects.filter(code="admin_unlock").get()
    assert (event.ip, event.actor.username) == ("203.0.113.9", "admin")
    assert "Office NAT" in event.note
    again = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("nobody-3", "x"), REMOTE_ADDR="203.0.113.9"
    )
    assert again.json()["code"] == "credentials_invalid"
