"""The lockout engine: atomic slots, windows, locks, escalation, unlock, client IPs."""

import re
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from auth401 import accounts, lockout
from auth401.models import AccountStatus, AuthEvent
from tests.conftest import PASSWORD, basic

STORES = ["auto", "database"]


def login(client, username, password, **extra):
    return client.get("/api/me/", HTTP_AUTHORIZATION=basic(username, password), **extra)


def code(response):
    return response.json()["code"]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize(
    "busy_waits",
    [pytest.param(None, id="waiting"), pytest.param((), id="busy-at-once")],
)
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_guesses_check_the_password_at_most_five_times(
    store, busy_waits, user_factory, counting_hasher, auth401_settings, monkeypatch
):
    """``busy-at-once``: an attempt that finds the bound full does not wait (as on a machine
    too loaded for the checks in flight to end within the wait): many answers are then
    ``login_busy``, and the bound holds all the same."""
    auth401_settings(FAILURE_LIMIT=5, IP_FAILURE_LIMIT=1000, COUNTER_STORE=store)
    if busy_waits is not None:
        monkeypatch.setattr(lockout, "BUSY_WAITS", busy_waits)
    user_factory("alice")
    counting_hasher.reset(delay=0.02)
    answers = []
    start = threading.Barrier(10)

    def worker():
        client = APIClient()
        start.wait()
        try:
            for i in range(5):
                # different passwords: identical ones share one place in flight
                response = login(client, "alice", f"wrong-{threading.get_ident()}-{i}")
                answers.append((response.status_code, code(response)))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The bound, whatever the scheduling: at most five checks; every other answer is the lock
    # or, for an attempt that found five checks in flight for a whole second (a loaded
    # machine), login_busy -- never a sixth check, never a 500.
    assert len(answers) == 50
    checked = counting_hasher.calls
    assert checked <= 5
    wrong = answers.count((401, "credentials_invalid"))
    locked = answers.count((403, "account_locked"))
    busy = answers.count((429, "login_busy"))
    assert wrong + locked + busy == 50
    # each check answered once: wrong, or (the one that locks) the lock
    assert wrong == checked - (1 if checked == 5 else 0)
    assert wrong <= 4
    # Sequential guesses finish what the flood left: the lock comes at exactly the fifth
    # check (on a quiet machine the flood already did, and these are refused unchecked).
    client = APIClient()
    for _ in range(6):
        response = login(client, "alice", "wrong-guess")
        if code(response) == "account_locked":
            break
    assert (response.status_code, code(response)) == (403, "account_locked")
    assert counting_hasher.calls == 5
    assert lockout.peek("alice").locked_ms > 0


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db
def test_fifth_failure_locks_and_a_right_password_is_refused_too(
    store, user, api_client, counting_hasher, auth401_settings
):
    auth401_settings(COUNTER_STORE=store)
    answers = [code(login(api_client, "alice", f"guess-{i}")) for i in range(5)]
    assert answers == ["credentials_invalid"] * 4 + ["account_locked"]
    assert counting_hasher.calls == 5
    right = login(api_client, "alice", PASSWORD)
    wrong = login(api_client, "alice", "guess-6")
    assert counting_hasher.calls == 5  # locked: no password check at all
    for response in (right, wrong):
        body = response.json()
        assert response.status_code == 403
        keys = {"status", "error", "code", "detail", "hint", "request_id", "retry_after"}
        assert set(body) == keys
        assert body["code"] == "account_locked"
        assert 899 <= body["retry_after"] <= 900
        assert response["Retry-After"] == str(body["retry_after"])
        assert response["Cache-Control"] == "no-store"
    row = AccountStatus.objects.get(user=user)
    assert (row.state, row.automatic, row.changed_by) == ("locked", True, None)
    assert row.reason == "Locked automatically after 5 failed logins"


@pytest.mark.django_db
def test_every_spelling_shares_one_counter_for_real_and_unknown_names(
    user, api_client, auth401_settings
):
    """``ALICE`` and ``ａｌｉｃｅ`` find no account (the lookup is exact) but count on alice's
    counter, exactly as ``GHOST`` counts on ``ghost``'s: otherwise failing under another
    spelling would lock an unknown name but not a real one, which tells them apart."""
    auth401_settings(FAILURE_LIMIT=3)
    for real, ghost in (("ALICE", "GHOST"), ("Alice", "Ghost"), ("ａｌｉｃｅ", "ｇｈｏｓｔ")):
        assert code(login(api_client, real, "wrong")) == code(login(api_client, ghost, "wrong"))
    right = login(api_client, "alice", PASSWORD)
    unknown = login(api_client, "ghost", PASSWORD)
    assert (right.status_code, code(right)) == (unknown.status_code, code(unknown))
    assert code(right) == "account_locked"
    assert lockout.peek("alice").locked_ms > 0 and lockout.peek("ALICE").locked_ms > 0
    assert lockout.peek("ghost").locked_ms > 0
    assert lockout.username_key("alice", user) == lockout.username_key("ALICE")
    assert lockout.username_key("GHOST") == lockout.username_key("ｇｈｏｓｔ")


@pytest.mark.django_db
def test_window_expiry(user, api_client, auth401_settings):
    auth401_settings(COUNTER_STORE="database", FAILURE_WINDOW=timedelta(minutes=15))
    with time_machine.travel("2026-11-25 10:00:00+00:00") as traveller:
        for _ in range(4):
            assert code(login(api_client, "alice", "wrong")) == "credentials_invalid"
        traveller.shift(timedelta(minutes=16))
        for _ in range(4):
            assert code(login(api_client, "alice", "wrong")) == "credentials_invalid"
        assert lockout.peek("alice").failures == 4


@pytest.mark.django_db
def test_lock_expiry_and_escalation(user, api_client, auth401_settings):
    auth401_settings(
        COUNTER_STORE="database",
        FAILURE_LIMIT=2,
        LOCKOUT_DURATION=timedelta(minutes=10),
        LOCKOUT_MAX_DURATION=timedelta(minutes=25),
    )
    seen = []
    with time_machine.travel("2026-11-25 10:00:00+00:00", tick=False) as traveller:
        for _ in range(4):
            login(api_client, "alice", "wrong")
            response = login(api_client, "alice", "wrong")
            seen.append(response.json()["retry_after"])
            traveller.shift(timedelta(seconds=seen[-1] + 1))
            # the lock is over: the right password works again
            assert login(api_client, "alice", PASSWORD).status_code == 200
    assert seen == [600, 1200, 1500, 1500]  # doubles per repeat, up to the maximum


@pytest.mark.django_db
def test_unlock_clears_the_counter_for_real_and_unknown_usernames(
    user, api_client, auth401_settings
):
    auth401_settings(FAILURE_LIMIT=2)
    for name in ("alice", "ghost"):
        login(api_client, name, "wrong")
        assert code(login(api_client, name, "wrong")) == "account_locked"
    accounts.unlock("alice")
    accounts.unlock("ghost")
    assert login(api_client, "alice", PASSWORD).status_code == 200
    assert code(login(api_client, "ghost", "wrong")) == "credentials_invalid"
    assert AccountStatus.objects.get(user=user).state == "active"


@pytest.mark.django_db
def test_success_gives_back_only_its_own_slot(user, api_client):
    for _ in range(4):
        login(api_client, "alice", "wrong")
    assert login(api_client, "alice", PASSWORD).status_code == 200
    assert lockout.peek("alice").failures == 4
    assert code(login(api_client, "alice", "wrong")) == "account_locked"


@pytest.mark.django_db
def test_automatic_lock_leaves_the_owners_tokens_but_an_admin_lock_does_not(
    user, api_client, access_token, auth401_settings
):
    auth401_settings(FAILURE_LIMIT=1)
    token = access_token(user)
    assert code(login(api_client, "alice", "wrong")) == "account_locked"
    me = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200
    accounts.lock(user, reason="stolen laptop")
    me = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (me.status_code, code(me)) == (403, "account_locked")


def _without_request_id(response):
    body = response.json()
    body.pop("request_id")
    headers = {k: v for k, v in response.headers.items() if k not in ("X-Request-ID",)}
    return response.status_code, body, headers


@pytest.mark.django_db
def test_unknown_user_and_wrong_password_answer_alike(user, counting_hasher, auth401_settings):
    auth401_settings(FAILURE_LIMIT=3)
    answers = {}
    for name in ("alice", "nobody"):
        client = APIClient()
        counting_hasher.reset()
        first = [_without_request_id(login(client, name, f"w{i}")) for i in range(4)]
        answers[name] = (first, counting_hasher.calls)
    assert answers["alice"] == answers["nobody"]
    # three checks, then the lock refuses the fourth without hashing
    assert answers["alice"][1] == 3
    assert [a[1]["code"] for a in answers["alice"][0]] == [
        "credentials_invalid",
        "credentials_invalid",
        "account_locked",
        "account_locked",
    ]


@pytest.mark.django_db
def test_locked_state_is_hidden_without_the_right_password(account_factory, api_client):
    account_factory("suspended", username="carol")
    response = login(api_client, "carol", "wrong")
    assert (response.status_code, code(response)) == (401, "credentials_invalid")


@pytest.mark.django_db
def test_disclose_false_makes_the_lock_generic(user, api_client, auth401_settings):
    auth401_settings(FAILURE_LIMIT=1, DISCLOSE_ACCOUNT_STATE=False)
    response = login(api_client, "alice", "wrong")
    assert (response.status_code, code(response)) == (401, "credentials_invalid")
    assert "Retry-After" not in response


@pytest.mark.django_db
def test_ip_limit_catches_password_spraying(user_factory, api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=3)
    for name in ("u1", "u2", "u3"):
        user_factory(name)
    answers = [code(login(api_client, name, "wrong")) for name in ("u1", "u2", "u3", "u1")]
    # the address is locked, not the accounts: address_locked, for real and unknown alike
    assert answers == ["credentials_invalid", "credentials_invalid", "address_locked"] + [
        "address_locked"
    ]
    assert code(login(api_client, "nobody", "wrong")) == "address_locked"
    other_ip = login(api_client, "u1", PASSWORD, REMOTE_ADDR="10.9.9.9")
    assert other_ip.status_code == 200
    accounts_ip = lockout.peek("127.0.0.1", ip=True)
    assert accounts_ip.locked_ms > 0


@pytest.mark.django_db
def test_forwarded_for_rotation_from_untrusted_peer_lands_on_one_counter(
    user_factory, api_client, auth401_settings
):
    auth401_settings(IP_FAILURE_LIMIT=3, TRUSTED_PROXIES=[])
    for i in range(3):
        login(api_client, f"user{i}", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    assert lockout.peek("127.0.0.1", ip=True).locked_ms > 0
    assert lockout.peek("203.0.113.0", ip=True).failures == 0


@pytest.mark.django_db
def test_trusted_proxy_right_most_untrusted_address(user_factory, api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=2, TRUSTED_PROXIES=["10.0.0.0/8"])
    proxied = {"REMOTE_ADDR": "10.0.0.1"}
    # The client forges a left-most entry; the proxy appends the real peer on the right.
    for forged in ("1.1.1.1", "2.2.2.2"):
        login(
            api_client,
            "x",
            "wrong",
            HTTP_X_FORWARDED_FOR=f"{forged}, 198.51.100.7, 10.0.0.2",
            **proxied,
        )
    assert lockout.peek("198.51.100.7", ip=True).locked_ms > 0
    assert lockout.peek("10.0.0.1", ip=True).failures == 0


@pytest.mark.django_db
def test_lockout_on_the_token_endpoint(user, api_client, auth401_settings):
    auth401_settings(FAILURE_LIMIT=2)
    first = api_client.post("/api/token/", {"username": "alice", "password": "wrong"})
    assert (first.status_code, code(first)) == (401, "credentials_invalid")
    assert first["WWW-Authenticate"].startswith('Bearer realm="api"')
    api_client.post("/api/token/", {"username": "alice", "password": "wrong"})
    response = api_client.post("/api/token/", {"username": "alice", "password": PASSWORD})
    body = response.json()
    assert response.status_code == 403
    assert body["code"] == "account_locked"
    assert response["Retry-After"] == str(body["retry_after"])


@pytest.mark.django_db
def test_lockout_on_the_admin_login(user_factory, client, auth401_settings):
    auth401_settings(FAILURE_LIMIT=2)
    user_factory("root", is_staff=True, is_superuser=True)
    for _ in range(2):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 200
    page = response.content.decode()
    assert "This account is locked." in page
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_lockout_on_login_view(user, auth401_settings):
    auth401_settings(FAILURE_LIMIT=2, LOCKOUT_STATUS_CODE=429)
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert "This account is locked." in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_failure_counts_survive_atomic_requests(user, settings, auth401_settings):
    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    auth401_settings(COUNTER_STORE="database", FAILURE_LIMIT=3)
    client = APIClient()
    try:
        answers = [code(login(client, "alice", "wrong")) for _ in range(3)]
        token = client.post("/api/token/", {"username": "alice", "password": PASSWORD})
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    assert answers == ["credentials_invalid", "credentials_invalid", "account_locked"]
    assert code(token) == "account_locked"


def test_clock_moves_with_time_machine():
    with time_machine.travel("2030-01-01 00:00:00+00:00", tick=False):
        assert timezone.now().year == 2030


@pytest.mark.django_db
def test_demo_bob_and_a_brute_forced_user_in_status_and_admin(client, api_client):
    from io import StringIO

    from django.core.management import call_command

    call_command("auth401_demo", "--yes", stdout=StringIO())
    for i in range(5):
        login(api_client, "alice", f"guess-{i}")
    out = StringIO()
    call_command("auth401_status", "bob", stdout=out)
    assert out.getvalue().startswith("bob: cannot log in: account_locked (403)\n  state: locked\n")
    assert "  reason: Locked by an admin for the demo\n" in out.getvalue()
    out = StringIO()
    call_command("auth401_status", "alice", stdout=out)
    assert out.getvalue().startswith(
        "alice: cannot log in: account_locked (403)\n  state: locked\n"
    )
    assert "  reason: Locked automatically after 5 failed logins\n" in out.getvalue()

    client.login(username="admin", password="admin-password-1")
    page = client.get("/admin/auth401/accountstatus/").content.decode()
    assert "Locked by an admin for the demo" in page
    assert "Locked automatically after 5 failed logins" in page
    assert "Suspended for the demo" in page


@pytest.mark.django_db(transaction=True)
def test_counts_survive_a_views_own_rollback(user, settings, auth401_settings):
    """A view that calls authenticate() and fails with a 400 (DRF's obtain_auth_token) is
    rolled back by DRF's handler under ATOMIC_REQUESTS: the counts must survive it. On
    PostgreSQL the counters use their own connection; SQLite has one writer, so there they
    follow the request's transaction (use PostgreSQL or Redis in production)."""
    from django.db import connection

    if connection.vendor == "sqlite" and "redis" not in settings.CACHES["default"]["BACKEND"]:
        pytest.skip("SQLite database counters follow the request's transaction")
    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    auth401_settings(FAILURE_LIMIT=3)
    client = APIClient()
    try:
        for i in range(3):
            wrong = client.post("/api/authtoken/", {"username": "alice", "password": f"g{i}"})
            assert wrong.status_code == 400
        right = client.post("/api/authtoken/", {"username": "alice", "password": PASSWORD})
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    assert right.status_code == 400  # refused: the lock held although every request rolled back
    assert lockout.peek("alice").locked_ms > 0
    row = AccountStatus.objects.get(user=user)
    assert (row.state, row.automatic) == ("locked", True)


# -- policy: keys, lists, the switch ---------------------------------------------------------


@pytest.mark.django_db
def test_lockout_disabled_counts_and_audits_but_never_locks(user, api_client, auth401_settings):
    auth401_settings(LOCKOUT_ENABLED=False, FAILURE_LIMIT=2, IP_FAILURE_LIMIT=2)
    for i in range(5):
        assert code(login(api_client, "alice", f"wrong-{i}")) == "credentials_invalid"
    assert login(api_client, "alice", PASSWORD).status_code == 200
    assert lockout.peek("alice").failures == 5
    assert lockout.peek("alice").locked_ms == 0
    assert AuthEvent.objects.filter(code="credentials_invalid").count() == 5


@pytest.mark.django_db
def test_username_plus_ip_locks_the_pair_only(user, api_client, auth401_settings):
    auth401_settings(LOCKOUT_KEYS=["username+ip"], FAILURE_LIMIT=2)
    login(api_client, "alice", "wrong")
    assert code(login(api_client, "alice", "wrong")) == "account_locked"
    assert code(login(api_client, "alice", PASSWORD)) == "account_locked"
    # from another address alice is not locked, and no per-username counter exists
    assert login(api_client, "alice", PASSWORD, REMOTE_ADDR="10.1.1.1").status_code == 200
    assert lockout.peek("alice").failures == 0


@pytest.mark.django_db
def test_never_lock_networks_count_but_never_lock_the_address(
    user_factory, api_client, auth401_settings
):
    auth401_settings(IP_FAILURE_LIMIT=2, NEVER_LOCK_NETWORKS=["127.0.0.0/8"])
    user_factory("u1")
    for name in ("x1", "x2", "x3", "x4"):
        assert code(login(api_client, name, "wrong")) == "credentials_invalid"
    assert login(api_client, "u1", PASSWORD).status_code == 200
    assert lockout.peek("127.0.0.1", ip=True).locked_ms == 0


@pytest.mark.django_db(transaction=True)  # autocommit: the counter statements are on view
def test_always_lock_networks_refuse_before_anything(
    user, api_client, auth401_settings, counting_hasher
):
    from django.test.utils import CaptureQueriesContext

    auth401_settings(ALWAYS_LOCK_NETWORKS=["203.0.113.0/24"], COUNTER_STORE="database")
    with CaptureQueriesContext(connection) as captured:
        right = login(api_client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.9")
    statements = [q["sql"].split()[0] for q in captured.captured_queries]
    # only the refusal's event: no user lookup, no counter
    control = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")
    assert [s for s in statements if s not in control] == ["INSERT"]
    wrong = login(api_client, "nobody", "x", REMOTE_ADDR="203.0.113.9")
    for response in (right, wrong):
        body = response.json()
        assert (response.status_code, body["code"]) == (403, "address_locked")
        assert "retry_after" not in body and "Retry-After" not in response
    assert counting_hasher.calls == 0


@pytest.mark.django_db
def test_an_address_lock_is_not_an_account_lock(user, api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=2)
    for name in ("x1", "x2"):
        login(api_client, name, "wrong")
    response = login(api_client, "alice", PASSWORD)
    body = response.json()
    assert (response.status_code, body["code"], body["retry_after"]) == (
        403,
        "address_locked",
        900,
    )
    assert body["detail"] == "Too many failed logins from your network."
    assert "account" not in body["hint"]
    assert response["Retry-After"] == "900"
    # alice's account is fine: from elsewhere she logs in, and her status says so
    assert login(api_client, "alice", PASSWORD, REMOTE_ADDR="10.2.2.2").status_code == 200
    assert not AccountStatus.objects.filter(user=user, state="locked").exists()
    [address] = lockout.locked_addresses()
    assert (address.address, address.failures) == ("127.0.0.1", 2)
    assert 899 <= address.seconds_left <= 900
    lock_event = AuthEvent.objects.get(code="auto_lock")
    assert (lock_event.ip, lock_event.user, lock_event.username) == ("127.0.0.1", None, "")
    # unlocking the address: an event, and the address may log in again
    assert accounts.unlock_address("127.0.0.1", reason="office NAT") is True
    assert lockout.locked_addresses() == []
    assert login(api_client, "alice", PASSWORD).status_code == 200
    unlock_event = AuthEvent.objects.get(code="admin_unlock")
    assert (unlock_event.ip, unlock_event.note) == ("127.0.0.1", "address 127.0.0.1: office NAT")
    assert accounts.unlock_address("127.0.0.1") is False


@pytest.mark.django_db
def test_ipv6_addresses_lock_as_their_64(user, api_client, auth401_settings):
    auth401_settings(IP_FAILURE_LIMIT=2)
    for i, name in enumerate(("x1", "x2")):
        login(api_client, name, "wrong", REMOTE_ADDR=f"2001:db8::{i + 1}")
    response = login(api_client, "alice", PASSWORD, REMOTE_ADDR="2001:db8::ffff")
    assert code(response) == "address_locked"
    assert [a.address for a in lockout.locked_addresses()] == ["2001:db8::/64"]
    assert lockout.peek("2001:db8::77", ip=True).locked_ms > 0
    assert lockout.peek("2001:db8:0:1::1", ip=True).locked_ms == 0  # the next /64 is not
    assert accounts.unlock_address("2001:db8::/64") is True


@pytest.mark.django_db
def test_the_in_flight_bound_answers_login_busy_and_never_counts(user, auth401_settings):
    from django.test import RequestFactory

    from auth401 import backends, decision

    auth401_settings(FAILURE_LIMIT=2)
    keys = lockout.keys_for("alice", user, "127.0.0.1")
    for _ in range(2):
        assert lockout.begin(keys, lockout.new_attempt(), {}).admitted
    lockout.BUSY_WAITS, saved = (0.01,), lockout.BUSY_WAITS
    try:
        request = RequestFactory().get("/")
        verdict = decision.decide(request, "alice", PASSWORD, scheme="Basic")
    finally:
        lockout.BUSY_WAITS = saved
    assert verdict.failure.code == "login_busy"
    assert verdict.failure.retry_after == 1
    assert [step for step, _ in verdict.trace] == ["lookup", "lock check"]
    assert lockout.peek("alice").failures == 0
    assert backends.stashed_failure(request) is None  # decide() alone stashes nothing


@pytest.mark.django_db
def test_decide_dry_run_takes_no_slot_and_counts_nothing(user, auth401_settings):
    from auth401 import decision

    auth401_settings(FAILURE_LIMIT=2)
    verdict = decision.decide(None, "alice", "wrong", scheme="Basic", dry_run=True)
    assert verdict.failure.code == "credentials_invalid"
    assert [step for step, _ in verdict.trace] == ["lookup", "lock check", "password check"]
    # With one failure left, the attempt that locks answers the lock, dry or not.
    auth401_settings(FAILURE_LIMIT=1)
    verdict = decision.decide(None, "alice", "wrong", scheme="Basic", dry_run=True)
    assert (verdict.failure.code, verdict.failure.retry_after) == ("account_locked", 900)
    assert verdict.trace[-1] == ("count", "this failure reaches the username limit: it locks")
    peeked = lockout.peek("alice")
    assert (peeked.failures, peeked.in_flight, peeked.locked_ms) == (0, 0, 0)
    assert AuthEvent.objects.count() == 0
    right = decision.decide(None, "alice", PASSWORD, scheme="Basic", dry_run=True)
    assert (right.user, right.failure) == (user, None)
    assert right.trace[-1] == ("account state", "may log in")


# -- a count already at the limit without a lock ----------------------------------------------


@pytest.mark.parametrize("store", ["redis", "database"])
@pytest.mark.django_db(transaction=True)
def test_a_count_already_at_the_limit_locks_at_the_next_attempt(
    store, request, counting_hasher, user, client, auth401_settings
):
    """Failures counted while the lockout was off reach the limit without a lock: the next
    attempt (right password or wrong, real or unknown name) is refused with the lock, no
    password checked, never ``login_busy``; once the lock ends the right password works."""
    import time as _time

    from auth401.models import FailureCounter
    from tests.test_catalogue import assert_answer

    if store == "redis":
        request.getfixturevalue("private_redis")  # FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000
    else:
        auth401_settings(COUNTER_STORE="database", FAILURE_LIMIT=3, IP_FAILURE_LIMIT=1000)
    auth401_settings(
        LOCKOUT_ENABLED=False,
        LOCKOUT_DURATION=timedelta(seconds=1),
        LOCKOUT_MAX_DURATION=timedelta(seconds=4),
    )
    for name in ("alice", "ghost"):
        for i in range(5):
            assert_answer(login(client, name, f"wrong-{i}"), "credentials_invalid")
    auth401_settings(LOCKOUT_ENABLED=True)
    counting_hasher.reset()

    for name, password in (("alice", PASSWORD), ("ghost", "wrong-5"), ("alice", "wrong-6")):
        assert_answer(login(client, name, password), "account_locked", exact={"retry_after": 1})
    assert counting_hasher.calls == 0
    # Each lock is mirrored like one ``fail`` decides (level 1, its count reset) ...
    for key in (lockout.username_key("alice", user), lockout.username_key("ghost")):
        row = FailureCounter.objects.get(counter_key=key)
        assert (row.lock_level, row.failures, row.locked_until > 0) == (1, 0, True)
    assert AccountStatus.objects.get(user=user).automatic
    # ... and each refusal recorded (three), each lock too (two)
    assert AuthEvent.objects.filter(code="account_locked").count() == 3
    assert AuthEvent.objects.filter(code="auto_lock").count() == 2
    assert (lockout.peek("alice").failures, lockout.peek("ghost").failures) == (0, 0)

    _time.sleep(1.2)  # the lock ends (Redis keeps its own time: no time machine)
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 200, response.content
    assert counting_hasher.calls == 1
    assert_answer(login(client, "ghost", "wrong-7"), "credentials_invalid")
    assert lockout.peek("ghost").failures == 1


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db(transaction=True)
def test_a_repeated_wrong_password_counts_once(
    store, counting_hasher, user, api_client, auth401_settings
):
    """A client retrying a stale password: the same wrong password FAILURE_LIMIT + 3 times
    is answered credentials_invalid each time, recorded (with a repeat note), counted once
    and checked once; the right password then logs in.  The remembered fingerprints are
    forgotten when the password changes."""
    auth401_settings(COUNTER_STORE=store, REPEATED_PASSWORD_MEMORY=3, FAILURE_LIMIT=5)
    from auth401 import drain

    counting_hasher.reset()  # not the user's creation

    answers = [code(login(api_client, "alice", "old-password")) for _ in range(8)]
    assert answers == ["credentials_invalid"] * 8
    assert counting_hasher.calls == 1
    assert lockout.peek("alice").failures == 1
    assert login(api_client, "alice", PASSWORD).status_code == 200
    drain.drain()
    rows = AuthEvent.objects.filter(code="credentials_invalid").order_by("created_at")
    assert [r.note for r in rows] == [""] + [lockout.REPEAT_NOTE] * 7
    # the last three different wrong passwords are remembered, older ones count again
    answers = [code(login(api_client, "alice", g)) for g in ("a-1", "a-2", "a-3", "old-password")]
    assert answers == ["credentials_invalid"] * 3 + ["account_locked"]
    # old-password had dropped out of the last three: it counts again, the fifth failure
    assert code(login(api_client, "alice", PASSWORD)) == "account_locked"


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db(transaction=True)
def test_a_password_change_forgets_the_remembered_wrong_passwords(
    store, counting_hasher, user, api_client, auth401_settings
):
    auth401_settings(COUNTER_STORE=store, REPEATED_PASSWORD_MEMORY=3, FAILURE_LIMIT=5)
    counting_hasher.reset()  # not the user's creation
    assert code(login(api_client, "alice", "next-password-1")) == "credentials_invalid"
    assert code(login(api_client, "alice", "next-password-1")) == "credentials_invalid"
    assert counting_hasher.calls == 1
    user.set_password("next-password-1")
    user.save()
    assert login(api_client, "alice", "next-password-1").status_code == 200


@pytest.mark.parametrize("store", STORES)
@pytest.mark.django_db(transaction=True)
def test_identical_attempts_share_one_place_in_flight(
    store, live_server, user_factory, counting_hasher, auth401_settings
):
    """20 parallel right passwords all log in (no login_busy); 20 parallel copies of one
    wrong password count once."""
    from tests.test_backends import fetch, in_parallel

    auth401_settings(
        COUNTER_STORE=store, FAILURE_LIMIT=5, IP_FAILURE_LIMIT=1000, REPEATED_PASSWORD_MEMORY=3
    )
    user_factory("fresh")
    counting_hasher.reset(delay=0.02)
    url = f"{live_server.url}/api/me/"
    answers = in_parallel([lambda: fetch(url, "fresh", PASSWORD)] * 20)
    assert [status for status, _, _ in answers] == [200] * 20, answers
    answers = in_parallel([lambda: fetch(url, "fresh", "stale-password")] * 20)
    assert {body["code"] for _, body, _ in answers} == {"credentials_invalid"}
    assert lockout.peek("fresh").failures == 1
    assert lockout.peek("fresh").in_flight == 0


@pytest.mark.django_db
def test_the_lock_says_which_counter_locked_its_count_and_end(user, api_client, auth401_settings):
    """The auto_lock events, the account_locked and address_locked signals name the key kind,
    its count and the lock's end; the HTTP answer stays as it was (no disclosure)."""
    from auth401 import signals

    auth401_settings(FAILURE_LIMIT=3, IP_FAILURE_LIMIT=4, LOCKOUT_KEYS=["username", "ip"])
    heard: list[tuple[str, dict]] = []

    def account(sender, **kwargs):
        heard.append(("account", kwargs))

    def address(sender, **kwargs):
        heard.append(("address", kwargs))

    signals.account_locked.connect(account, dispatch_uid="test-kind-account")
    signals.address_locked.connect(address, dispatch_uid="test-kind-address")
    try:
        answers = [code(login(api_client, "alice", f"guess-{i}")) for i in range(3)]
        answers.append(code(login(api_client, "ghost", "guess-x")))
    finally:
        signals.account_locked.disconnect(dispatch_uid="test-kind-account")
        signals.address_locked.disconnect(dispatch_uid="test-kind-address")
    assert answers == [
        "credentials_invalid",
        "credentials_invalid",
        "account_locked",
        "address_locked",
    ]
    kinds = dict(heard)
    assert (kinds["account"]["key_kind"], kinds["account"]["failures"]) == ("username", 3)
    assert kinds["account"]["user"] == user and kinds["account"]["until"] is not None
    assert (kinds["address"]["key_kind"], kinds["address"]["failures"]) == ("ip", 4)
    assert kinds["address"]["address"] == "127.0.0.1"
    [address_lock] = AuthEvent.objects.filter(code="auto_lock", username="")
    assert address_lock.ip == "127.0.0.1"
    assert re.fullmatch(
        r"Locked automatically after 4 failed logins \(counter: address; until "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)",
        address_lock.note,
    )
