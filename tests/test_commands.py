from io import StringIO

import pytest
from django.core.management import call_command

from auth401 import accounts, lockout
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
    assert lines[0] == "bob: cannot log in"
    assert lines[1] == "  state: locked"
    assert lines[2] == "  reason: Locked by an admin for the demo"
    assert lines[3].startswith("  changed: ") and lines[3].endswith(" UTC by root")
    assert lines[4] == "  locked until: until unlocked"
    assert "  failures in the window: 0 / 5" in lines
    expected = "admin_lock by root Locked by an admin for the demo"
    assert any(line.endswith(expected) for line in lines)


def test_status_of_a_brute_forced_user(user, api_client):
    for i in range(5):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", f"guess{i}"))
    out = run("auth401_status", "alice")
    assert out.startswith("alice: cannot log in\n  state: locked\n")
    assert "  reason: Locked automatically after 5 failed logins\n" in out
    assert "by auth401 (automatic)" in out
    assert "  failures in the window: 0 / 5\n" in out  # the lock resets the window
    assert "  lockout: locked for 89" in out
    assert "auto_lock" in out


def test_status_of_an_active_user(user):
    assert run("auth401_status", "alice").startswith("alice: can log in\n  state: active\n")


def test_status_of_an_unknown_username(api_client):
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "guess"))
    assert run("auth401_status", "ghost") == (
        "ghost: no such user\n  failures in the window: 1 / 5\n  lockout: not locked\n"
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
        "Cleared the failure counter and lock of IP 127.0.0.1.\n"
    )
    assert lockout.peek("127.0.0.1", ip=True).locked_ms == 0
