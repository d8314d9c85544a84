import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from auth401 import accounts, lockout
from auth401.models import AccountStatus, AuthEvent
from tests.conftest import PASSWORD, basic

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


# -- unknown names are refused, and nothing is written ----------------------------------------


def nothing_written():
    return (AuthEvent.objects.count(), AccountStatus.objects.count())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("auth401_unlock", "nosuch"), "No user 'nosuch', and no failures or lock counted"),
        (("auth401_unlock", "192.0.2.1"), "Address 192.0.2.1 is not locked and has no failures"),
        (("auth401_lock", "nosuch", "--reason", "r"), "No user 'nosuch': nothing locked."),
        (("auth401_status", "nosuch"), "No user 'nosuch', and the lockout counts no failures"),
        (("auth401_lock", "alice", "--reason", "r", "--by", "nobody"), "--by: no user 'nobody'"),
        (("auth401_lock", "192.0.2.1", "--reason", "r"), "An address lock needs --until"),
        (("auth401_lock", "alice", "--reason", "r", "--until", "soon"), "--until: 'soon' is"),
        (("auth401_status", "alice", "--from", "nowhere"), "--from: give one IP address"),
        (("auth401_lock", "carol", "--reason", "r"), "carol is suspended: a lock would replace"),
        (
            ("auth401_lock", "10.1.2.3", "--reason", "r", "--until", "1h"),
            "Address 10.1.2.3 would not be refused: the lockout does not lock it",
        ),
    ],
)
def test_unknown_names_are_refused_and_nothing_is_written(
    user, user_factory, args, message, auth401_settings
):
    auth401_settings(NEVER_LOCK_NETWORKS=["10.0.0.0/8"])
    accounts.suspend(user_factory("carol"))
    before = nothing_written()
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)
    assert nothing_written() == before


def test_explain_without_a_terminal_refuses_cleanly():
    """No header argument, no terminal, nothing on stdin: a clear error, exit status 1."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "django", "auth401_explain"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal for getpass to open
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(
        "CommandError: Nothing to read the secret from (no terminal, and standard input is "
        'empty): give it on standard input with "-" (e.g. auth401_explain - < file).'
    )
    assert result.stdout == ""


# -- auth401_lock -----------------------------------------------------------------------------


def test_lock_a_user_until_a_time(user, admin_user, api_client):
    out = run("auth401_lock", "alice", "--reason", "fraud review", "--until",
              "2099-01-02T03:04:05Z", "--by", "admin")  # fmt: skip
    assert out == "Locked alice until 2099-01-02 03:04:05 UTC; its sessions and tokens end.\n"
    row = AccountStatus.objects.get(user=user)
    assert (row.state, row.reason, row.changed_by, row.automatic) == (
        "locked",
        "fraud review",
        admin_user,
        False,
    )
    assert row.locked_until.isoformat() == "2099-01-02T03:04:05+00:00"
    event = AuthEvent.objects.get()
    assert (event.code, event.user, event.actor, event.note) == (
        "admin_lock",
        user,
        admin_user,
        "fraud review",
    )
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert (response.status_code, response.json()["code"]) == (403, "account_locked")


def test_lock_a_user_until_unlocked_names_the_os_user(user, monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "ops-oncall")
    out = run("auth401_lock", "alice", "--reason", "ticket 9")
    assert out == "Locked alice until unlocked; its sessions and tokens end.\n"
    assert AccountStatus.objects.get(user=user).locked_until is None
    event = AuthEvent.objects.get()
    assert (event.code, event.actor, event.note) == (
        "admin_lock",
        None,
        "ticket 9 (auth401_lock by ops-oncall)",
    )


def test_lock_an_address_then_unlock_it(user, admin_user, api_client):
    from django.utils import timezone

    out = run("auth401_lock", "203.0.113.9", "--reason", "abuse", "--until", "2h", "--by", "admin")
    match = re.fullmatch(r"Locked address 203\.0\.113\.9 until (\S+ \S+) UTC\.\n", out)
    assert match, out
    end = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert timedelta(hours=2) - timedelta(seconds=10) < end - timezone.now() <= timedelta(hours=2)
    event = AuthEvent.objects.get()
    assert (event.code, event.ip, event.user, event.actor, event.note) == (
        "admin_lock",
        "203.0.113.9",
        None,
        admin_user,
        f"address 203.0.113.9 until {match[1]} UTC: abuse",
    )
    assert 7190 < lockout.peek("203.0.113.9", ip=True).locked_ms / 1000 <= 7200
    response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD), REMOTE_ADDR="203.0.113.9"
    )
    assert (response.status_code, response.json()["code"]) == (403, "address_locked")
    other = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD), REMOTE_ADDR="203.0.113.10"
    )
    assert other.status_code == 200
    status = run("auth401_status", "alice", "--from", "203.0.113.9").splitlines()
    assert status[0] == "alice: cannot log in: address_locked (403)"
    assert re.fullmatch(
        r"  failures, address 203\.0\.113\.9: 0 / 50 in the window; locked for 7[12]\d\d s more "
        r"\(repeat 1\)",
        status[2],
    )
    assert run("auth401_status", "alice").splitlines()[0] == "alice: can log in"
    assert run("auth401_unlock", "203.0.113.9", "--by", "admin") == (
        "Unlocked address 203.0.113.9 (was locked); its counter is cleared.\n"
    )
    again = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD), REMOTE_ADDR="203.0.113.9"
    )
    assert again.status_code == 200


def test_unlock_of_an_unknown_name_with_a_counter_clears_it(api_client, auth401_settings):
    """A name no account has but the lockout counts (guessed by an attacker) is known to it."""
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "guess"))
    assert run("auth401_unlock", "ghost") == (
        "No user 'ghost'; cleared its failure counter and lock.\n"
    )
    assert lockout.peek("ghost").failures == 0


# -- real counts ------------------------------------------------------------------------------


def test_the_dashboards_address_failures_are_the_locks_own(api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=3)
    for name in ("ghost", "phantom", "spectre"):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(name, "guess"))
    [found] = lockout.locked_addresses()
    assert (found.address, found.failures) == ("127.0.0.1", 3)
    auth401_settings(IP_FAILURE_LIMIT=50)  # the count is the lock's, not today's limit
    # a username's lock from the same address, later, is not the address's
    AuthEvent.objects.create(
        code="auto_lock",
        ip="127.0.0.1",
        username="ghost",
        note="Locked automatically after 5 failed logins",
    )
    assert lockout.locked_addresses()[0].failures == 3
    run("auth401_lock", "192.0.2.4", "--reason", "by hand", "--until", "1h")
    by_hand = {row.address: row.failures for row in lockout.locked_addresses()}
    assert by_hand == {"127.0.0.1": 3, "192.0.2.4": None}  # no failures led to it


def test_status_of_a_user_names_the_locked_addresses_of_their_last_events(
    user, api_client, auth401_settings
):
    """Without --from, a user refused only by an address lock is not shown as fine."""
    auth401_settings(IP_FAILURE_LIMIT=2)
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "x"), REMOTE_ADDR="192.0.2.3")
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ghost", "x"), REMOTE_ADDR="192.0.2.3")
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "y"), REMOTE_ADDR="192.0.2.4")
    lines = run("auth401_status", "alice").splitlines()
    assert lines[:5] == [
        "alice: can log in",
        "  state: active",
        "  failures, username: 2 / 5 in the window; not locked",
        "  from 192.0.2.3 (in their last events): cannot log in: address_locked (403)",
        "  (no --from: an address lock would refuse them too; --from IP checks one)",
    ]
