import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from auth401 import accounts, lockout
from auth401.models import AccountStatus, AuthEvent
from tests.conftest import basic

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_status_of_an_admin_locked_user(user_factory):
    root = user_factory("root", is_staff=True)
    bob = user_factory("bob")
    accounts.lock(bob, reason="Locked by an admin for the demo", by=root)
    out = run("auth401_status", "bob")
    lines = out.splitlines()
    assert lines[0] == "bob: cannot log in: account_locked (403)"
    assert lines[1] == "  state: locked"
    assert lines[2] == "  reason: Locked by an admin for the demo"
    assert lines[3].startswith("  changed: ") and lines[3].endswith(" UTC by root")
    assert lines[4] == "  locked until: until unlocked"
    assert lines[5] == "  failures, username: 0 / 5 in the window; not locked"
    assert lines[6] == "  (no --from: an address lock would refuse them too; --from IP checks one)"
    expected = "admin_lock by root Locked by an admin for the demo"
    assert any(line.endswith(expected) for line in lines)


def test_status_of_a_brute_forced_user(user, api_client):
    for i in range(5):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", f"guess{i}"))
    out = run("auth401_status", "alice")
    assert out.startswith("alice: cannot log in: account_locked (403)\n  state: locked\n")
    assert "  reason: Locked automatically after 5 failed logins\n" in out
    assert "by the lockout (automatic)" in out
    # the lock resets the window
    assert re.search(
        r"\n  failures, username: 0 / 5 in the window; locked for (899|900) s more "
        r"\(repeat 1\)\n",
        out,
    )
    assert "auto_lock" in out


def test_status_after_an_unlock_from_the_command_line(user, api_client):
    for i in range(5):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", f"guess{i}"))
    run("auth401_unlock", "alice", "--reason", "called the help desk")
    out = run("auth401_status", "alice")
    assert out.startswith("alice: can log in\n  state: active\n")
    assert "by a command or code (no user)" in out
    assert "automatic" not in out.split("\n  changed: ")[1].split("\n")[0]


def test_status_of_an_active_user(user):
    assert run("auth401_status", "alice").startswith("alice: can log in\n  state: active\n")


def test_status_of_an_unknown_username(api_client):
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "guess"))
    assert run("auth401_status", "ghost") == (
        "ghost: no such user (its name is counted like any other)\n"
        "  failures, username: 1 / 5 in the window; not locked\n"
    )


def test_unlock_username(user, api_client, auth401_settings):
    auth401_settings(FAILURE_LIMIT=1)
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "guess"))
    assert lockout.peek("alice").locked_ms > 0
    assert run("auth401_unlock", "alice") == "Unlocked alice (state: active); counter cleared.\n"
    assert lockout.peek("alice").locked_ms == 0


def test_unlock_unknown_username(api_client, auth401_settings):
    auth401_settings(FAILURE_LIMIT=1)
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "guess"))
    assert run("auth401_unlock", "ghost") == (
        "No user 'ghost'; cleared its failure counter and lock.\n"
    )
    assert lockout.peek("ghost").locked_ms == 0


def test_unlock_ip(api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=1)
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "guess"))
    assert lockout.peek("127.0.0.1", ip=True).locked_ms > 0
    assert run("auth401_unlock", "127.0.0.1") == (
        "Unlocked address 127.0.0.1 (was locked); its counter is cleared.\n"
    )
    assert lockout.peek("127.0.0.1", ip=True).locked_ms == 0


def test_status_of_a_locked_address(api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=2, LOCKOUT_DURATION=timedelta(minutes=15))
    for name in ("ghost", "phantom"):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(name, "guess"))
    lines = run("auth401_status", "127.0.0.1").splitlines()
    assert lines[0] == "address 127.0.0.1: cannot log in: address_locked (403)"
    assert lines[1] == "  failures in the window: 0 / 2"
    assert re.fullmatch(
        r"  lockout: locked for (899|900) s more, after 2 failures \(repeat 1\)", lines[2]
    )
    assert lines[3] == "  last events:"
    codes = [line.split()[2] for line in lines[4:]]
    assert codes == ["auto_lock", "address_locked", "credentials_invalid"]


def test_status_of_a_clean_address_and_the_lists(auth401_settings):
    auth401_settings(NEVER_LOCK_NETWORKS=["10.0.0.0/8"], ALWAYS_LOCK_NETWORKS=["192.0.2.0/24"])
    assert run("auth401_status", "10.1.2.3").splitlines()[:3] == [
        "address 10.1.2.3: can log in",
        "  listed in NEVER_LOCK_NETWORKS: counted, never locked",
        "  failures in the window: 0 / 50",
    ]
    assert run("auth401_status", "192.0.2.9").splitlines()[:2] == [
        "address 192.0.2.9: cannot log in: address_locked (403)",
        "  listed in ALWAYS_LOCK_NETWORKS: always refused (address_locked)",
    ]


def test_unlock_records_the_actor_and_the_reason(user, admin_user, auth401_settings):
    accounts.lock(user, reason="investigation")
    out = run("auth401_unlock", "alice", "--reason", "cleared by support", "--by", "admin")
    assert out == "Unlocked alice (state: active); counter cleared.\n"
    event = AuthEvent.objects.filter(code="admin_unlock").get()
    assert (event.actor, event.note, event.user) == (admin_user, "cleared by support", user)
    status = AccountStatus.objects.get(user=user)
    assert (status.state, status.reason, status.changed_by) == (
        "active",
        "cleared by support",
        admin_user,
    )


def test_unlock_without_by_names_the_os_user(user, monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "ops-oncall")
    accounts.lock(user)
    run("auth401_unlock", "alice", "--reason", "ticket 7")
    event = AuthEvent.objects.filter(code="admin_unlock").get()
    assert (event.actor, event.note) == (None, "ticket 7 (auth401_unlock by ops-oncall)")


def test_unlock_by_an_unknown_actor_is_refused(user):
    with pytest.raises(CommandError, match="--by: no user 'nobody'"):
        run("auth401_unlock", "alice", "--by", "nobody")


def test_unlock_an_address_is_an_event(api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=1)
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "guess"))
    run("auth401_unlock", "127.0.0.1", "--reason", "office NAT")
    event = AuthEvent.objects.filter(code="admin_unlock").get()
    assert (event.ip, event.user, event.username) == ("127.0.0.1", None, "")
    assert event.note.startswith("address 127.0.0.1: office NAT")


def test_drain_command_without_redis_drains_nothing():
    assert run("auth401_drain") == "Drained 0 events.\n"
