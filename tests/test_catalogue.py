"""The reason-code catalogue end to end (CONTRACT §2-§4).

One table of scenarios, each a realistic way to earn one code, played through the Django test
client under both ``RESPONSE_FORMAT``s; every answer is checked whole: status, every body member
and no others, and every header.  ``test_every_code_has_a_scenario`` keeps the table complete.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from auth401 import accounts
from auth401.codes import CATALOGUE
from auth401.models import AccountStatus
from tests.conftest import PASSWORD, basic

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

ME = "/api/me/"
STAFF = "/api/staff/"
REFRESH = "/api/token/refresh/"
SESSION_FIRST = "/api/order/session-first/"

FORMATS = ("auth401", "problem")
CONTENT_TYPES = {"auth401": "application/json", "problem": "application/problem+json"}
MEMBERS = {
    "auth401": frozenset({"status", "error", "code", "detail", "hint", "request_id"}),
    "problem": frozenset(
        {"type", "title", "status", "detail", "instance", "code", "hint", "request_id"}
    ),
}
#: The schemes of DEFAULT_AUTHENTICATION_CLASSES whose challenges CONTRACT §3 spells out.
API_SCHEMES = ("Bearer", "Token", "Basic")

SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")
PLACEHOLDER = re.compile(r"\{\w*\}")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
CHALLENGE_START = re.compile(r",\s*(?=[A-Za-z][\w.+-]*\s+[\w-]+=)")
PARAMS = re.compile(r'[\w-]+="[^"]*"(?:,\s*[\w-]+="[^"]*")*')


# -- the whole-answer check (also used by test_example_project) -------------------------------


def parse_challenges(header: str) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` as {scheme: {param: value}}; fails on a repeated or bad challenge."""
    found: dict[str, dict[str, str]] = {}
    for challenge in CHALLENGE_START.split(header.strip()):
        scheme, _, params = challenge.strip().partition(" ")
        assert scheme not in found, f"two {scheme} challenges in {header!r}"
        assert PARAMS.fullmatch(params.strip()), f"malformed challenge {challenge!r}"
        found[scheme] = dict(re.findall(r'([\w-]+)="([^"]*)"', params))
    return found


def assert_answer(
    response: Any,
    code: str,
    *,
    fmt: str = "auth401",
    extras: frozenset[str] | None = None,
    schemes: tuple[str, ...] = API_SCHEMES,
    bearer_error: str | None = None,
    docs: str | None = None,
    exact: Mapping[str, Any] | None = None,
    hint_has: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Assert that ``response`` is the complete contract answer for ``code``; return its body.

    ``extras`` are the optional members expected (default: all the catalogue's ``extras`` for
    the code), ``schemes`` the challenges a 401 must carry, ``bearer_error`` the RFC 6750
    ``error`` of the Bearer challenge (``invalid_token`` for every ``token_*`` code).
    """
    reason = CATALOGUE[code]
    status = reason.status_code()
    phrase = HTTPStatus(status).phrase
    body = json.loads(response.content)
    assert (response.status_code, body.get("code")) == (status, code), body

    expected_extras = reason.extras if extras is None else extras
    assert expected_extras <= reason.extras
    members = MEMBERS[fmt] | expected_extras
    if docs and fmt == "auth401":
        members |= {"docs"}
    assert set(body) == members, body

    assert body["status"] == response.status_code
    assert body["code"] == code
    if fmt == "auth401":
        assert body["error"] == phrase
        if docs:
            assert body["docs"] == docs
    else:
        assert body["title"] == phrase
        assert body["type"] == (docs or "about:blank")
        assert body["instance"] == response.request["PATH_INFO"]
    for member in ("detail", "hint"):
        text = body[member]
        assert isinstance(text, str), body
        assert text.strip(), body
        assert not PLACEHOLDER.search(text), f"unfilled placeholder in {member}: {text!r}"
    for word in hint_has:
        assert word in body["hint"], body["hint"]
    for key, value in (exact or {}).items():
        assert body[key] == value, (key, body)

    assert response["Content-Type"] == CONTENT_TYPES[fmt]
    assert response["Cache-Control"] == "no-store"
    assert isinstance(body["request_id"], str)
    assert SANE_REQUEST_ID.fullmatch(body["request_id"])
    assert response["X-Request-ID"] == body["request_id"]

    if "retry_after" in expected_extras:
        retry_after = body["retry_after"]
        assert type(retry_after) is int
        assert retry_after > 0
        assert response["Retry-After"] == str(retry_after)
    else:
        assert "Retry-After" not in response
    if "server_time" in expected_extras:
        assert ISO_UTC.fullmatch(body["server_time"]), body["server_time"]

    if status == 401:
        assert response.has_header("WWW-Authenticate"), "a 401 without a challenge"
        challenges = parse_challenges(response["WWW-Authenticate"])
        assert set(schemes) <= set(challenges), response["WWW-Authenticate"]
        if "Basic" in challenges:
            assert challenges["Basic"] == {"realm": "api", "charset": "UTF-8"}
        if "Token" in challenges:
            assert challenges["Token"] == {"realm": "api"}
        if "Bearer" in challenges:
            bearer = challenges["Bearer"]
            assert bearer["realm"] == "api"
            expected_error = "invalid_token" if code.startswith("token_") else bearer_error
            assert bearer.get("error") == expected_error, response["WWW-Authenticate"]
            if expected_error:
                assert bearer["error_description"] == body["detail"]
            else:
                assert "error_description" not in bearer
    else:
        assert not response.has_header("WWW-Authenticate")
    return body


# -- scenarios --------------------------------------------------------------------------------


@dataclass
class Ctx:
    client: APIClient
    make_user: Callable[..., Any]
    clock: Any  # the time_machine fixture, frozen at NOW


@dataclass(frozen=True)
class Scenario:
    id: str
    code: str
    act: Callable[[Ctx], Any]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    extras: frozenset[str] | None = None
    schemes: tuple[str, ...] = API_SCHEMES
    bearer_error: str | None = None
    exact: Mapping[str, Any] = field(default_factory=dict)
    hint_has: tuple[str, ...] = ()
    marks: tuple[Any, ...] = ()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def get_me(ctx: Ctx, authorization: str, path: str = ME) -> Any:
    return ctx.client.get(path, HTTP_AUTHORIZATION=authorization)


def bearer(ctx: Ctx, token: Any) -> Any:
    return get_me(ctx, f"Bearer {token}")


def right_password(ctx: Ctx, username: str = "alice") -> Any:
    return get_me(ctx, basic(username, PASSWORD))


def no_credentials(ctx: Ctx) -> Any:
    ctx.make_user()
    return ctx.client.get(ME)


def no_credentials_session_first(ctx: Ctx) -> Any:
    ctx.make_user()
    return ctx.client.get(SESSION_FIRST)


def basic_not_base64(ctx: Ctx) -> Any:
    return get_me(ctx, "Basic ***")


def bearer_without_token(ctx: Ctx) -> Any:
    return get_me(ctx, "Bearer")


def digest(ctx: Ctx) -> Any:
    return get_me(ctx, 'Digest username="alice", realm="api", nonce="dcd98b7102dd2f0e"')


def wrong_password(ctx: Ctx) -> Any:
    ctx.make_user()
    return get_me(ctx, basic("alice", "wrong-password"))


def unknown_api_token(ctx: Ctx) -> Any:
    ctx.make_user()
    return get_me(ctx, "Token " + "0" * 40)


def forged_signature(ctx: Ctx) -> Any:
    token = str(AccessToken.for_user(ctx.make_user()))
    payload = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(payload, "not-the-server-key-but-long-enough-for-hs256", "HS256")
    return bearer(ctx, forged)


def alg_none(ctx: Ctx) -> Any:
    token = str(AccessToken.for_user(ctx.make_user()))
    payload = jwt.decode(token, options={"verify_signature": False})
    return bearer(ctx, jwt.encode(payload, None, algorithm="none"))


def expired_access_token(ctx: Ctx) -> Any:
    token = AccessToken.for_user(ctx.make_user())
    token.set_iat(at_time=NOW - timedelta(hours=1))
    token.set_exp(from_time=NOW - timedelta(hours=1), lifetime=timedelta(minutes=5))
    return bearer(ctx, token)


def access_token_outlived(ctx: Ctx) -> Any:
    token = str(AccessToken.for_user(ctx.make_user()))  # simplejwt's default: 5 minutes
    ctx.clock.shift(timedelta(days=1))
    return bearer(ctx, token)


def nbf_in_future(ctx: Ctx) -> Any:
    token = AccessToken.for_user(ctx.make_user())
    token["nbf"] = epoch(NOW + timedelta(minutes=10))
    return bearer(ctx, token)


def issuer_clock_ahead(ctx: Ctx) -> Any:
    user = ctx.make_user()
    ctx.clock.move_to(NOW + timedelta(minutes=10), tick=False)
    token = str(AccessToken.for_user(user))  # iat 10:10, exp 10:15
    ctx.clock.move_to(NOW, tick=False)
    return bearer(ctx, token)


def refresh_as_access(ctx: Ctx) -> Any:
    return bearer(ctx, RefreshToken.for_user(ctx.make_user()))


def blacklisted_refresh(ctx: Ctx) -> Any:
    refresh = RefreshToken.for_user(ctx.make_user())
    refresh.blacklist()
    return ctx.client.post(REFRESH, {"refresh": str(refresh)}, format="json")


def issued_before_lock(ctx: Ctx) -> Any:
    user = ctx.make_user()
    token = str(AccessToken.for_user(user))
    ctx.clock.shift(timedelta(seconds=30))
    accounts.lock(user, reason="laptop stolen")
    accounts.unlock(user)
    return bearer(ctx, token)


def deleted_session(ctx: Ctx) -> Any:
    ctx.make_user()
    assert ctx.client.login(username="alice", password=PASSWORD)
    key = ctx.client.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.filter(session_key=key).delete()[0] == 1
    return ctx.client.get(ME)


def old_password(ctx: Ctx) -> Any:
    user = ctx.make_user()
    AccountStatus.objects.update_or_create(
        user=user, defaults={"password_changed_at": NOW - timedelta(days=120)}
    )
    return right_password(ctx)


def timed_lock(ctx: Ctx) -> Any:
    accounts.lock(ctx.make_user(), until=timedelta(minutes=10), reason="suspicious logins")
    return right_password(ctx)


def admin_lock(ctx: Ctx) -> Any:
    accounts.lock(ctx.make_user(), reason="until further notice")
    return right_password(ctx)


def automatic_lock(ctx: Ctx) -> Any:
    ctx.make_user()
    for _ in range(3):
        get_me(ctx, basic("alice", "wrong-password"))
    return right_password(ctx)


def address_locked(ctx: Ctx) -> Any:
    ctx.make_user()
    for name in ("mallory", "trudy"):
        get_me(ctx, basic(name, "wrong-password"))
    return right_password(ctx)


def busy(ctx: Ctx) -> Any:
    from auth401 import lockout

    user = ctx.make_user()
    keys = lockout.keys_for("alice", user, "127.0.0.1")
    lockout.begin(keys, lockout.new_attempt(), {})  # holds the only place in flight
    return right_password(ctx)


def no_store_counts(ctx: Ctx) -> Any:
    """The database counter store refusing (Redis down too, or no Redis): no password is
    checked."""
    from unittest import mock

    from django.db import DatabaseError

    from auth401.counters.database import DatabaseCounters

    ctx.make_user()
    refuse = mock.patch.object(DatabaseCounters, "begin", side_effect=DatabaseError("refused"))
    with refuse:
        return right_password(ctx)


def suspended(ctx: Ctx) -> Any:
    accounts.suspend(ctx.make_user(), reason="chargeback")
    return right_password(ctx)


def inactive(ctx: Ctx) -> Any:
    ctx.make_user(is_active=False)
    return right_password(ctx)


def not_staff(ctx: Ctx) -> Any:
    ctx.make_user()
    return get_me(ctx, basic("alice", PASSWORD), path=STAFF)


def session_post_without_csrf_token(ctx: Ctx) -> Any:
    ctx.make_user()
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="alice", password=PASSWORD)
    return browser.post(SESSION_FIRST, {"note": "hello"})


def basic_latin1_wrong_password(ctx: Ctx) -> Any:
    ctx.make_user()
    return get_me(ctx, "Basic " + base64.b64encode("alice:pässwort".encode("latin-1")).decode())


def bearer_not_ascii(ctx: Ctx) -> Any:
    return get_me(ctx, "Bearer t\u00f6k\u00e9n")


def unknown_user(ctx: Ctx) -> Any:
    ctx.make_user()
    return get_me(ctx, basic("mallory", PASSWORD))


def not_a_jwt(ctx: Ctx) -> Any:
    return bearer(ctx, "abc.def.ghi")


def forged_and_expired(ctx: Ctx) -> Any:
    token = AccessToken.for_user(ctx.make_user())
    token.set_exp(from_time=NOW - timedelta(hours=1), lifetime=timedelta(minutes=5))
    forged = jwt.encode(token.payload, "not-the-server-key-but-long-enough-for-hs256", "HS256")
    return bearer(ctx, forged)


def expired_refresh(ctx: Ctx) -> Any:
    refresh = RefreshToken.for_user(ctx.make_user())  # simplejwt's default: 1 day
    ctx.clock.shift(timedelta(days=2))
    return ctx.client.post(REFRESH, {"refresh": str(refresh)}, format="json")


def access_at_refresh_endpoint(ctx: Ctx) -> Any:
    access = AccessToken.for_user(ctx.make_user())
    return ctx.client.post(REFRESH, {"refresh": str(access)}, format="json")


def issued_before_password_change(ctx: Ctx) -> Any:
    user = ctx.make_user()
    token = str(AccessToken.for_user(user))
    ctx.clock.shift(timedelta(seconds=30))
    user.set_password("a-new-password-1")
    user.save()
    return bearer(ctx, token)


def session_from_before_lock(ctx: Ctx) -> Any:
    user = ctx.make_user()
    assert ctx.client.login(username="alice", password=PASSWORD)
    ctx.clock.shift(timedelta(seconds=30))
    accounts.lock(user, reason="laptop stolen")
    accounts.unlock(user)
    return ctx.client.get(ME)


SCENARIOS = (
    Scenario(
        "no-authorization-header",
        "credentials_missing",
        no_credentials,
        exact={"detail": "Authentication credentials were not provided."},
        hint_has=("Bearer", "Token", "Basic", "proxy"),
    ),
    Scenario(
        "session-class-first-is-not-downgraded-to-403",
        "credentials_missing",
        no_credentials_session_first,
        schemes=("Basic", "Bearer"),
        exact={"detail": "Authentication credentials were not provided."},
        hint_has=("Basic", "Bearer"),
    ),
    Scenario(
        "basic-not-base64",
        "authorization_malformed",
        basic_not_base64,
        exact={
            "detail": "The Authorization header could not be parsed: the credentials are not "
            "valid base64 of 'username:password'."
        },
    ),
    Scenario(
        "bearer-without-token",
        "authorization_malformed",
        bearer_without_token,
        bearer_error="invalid_request",
        exact={
            "detail": "The Authorization header could not be parsed: no credentials after the "
            "scheme."
        },
    ),
    Scenario(
        "basic-credentials-latin-1-wrong-password",
        "credentials_invalid",
        basic_latin1_wrong_password,
    ),
    Scenario(
        "bearer-token-not-ascii",
        "authorization_malformed",
        bearer_not_ascii,
        bearer_error="invalid_request",
        exact={"detail": "The Authorization header could not be parsed: the token is not ASCII."},
    ),
    Scenario(
        "digest",
        "scheme_unsupported",
        digest,
        exact={"detail": "The authentication scheme 'Digest' is not accepted here."},
        hint_has=("Bearer", "Token", "Basic"),
    ),
    Scenario(
        "basic-wrong-password",
        "credentials_invalid",
        wrong_password,
        exact={"detail": "Invalid username, password or token."},
    ),
    Scenario("basic-unknown-user", "credentials_invalid", unknown_user),
    Scenario("unknown-api-token", "credentials_invalid", unknown_api_token),
    Scenario(
        "jwt-forged-signature",
        "token_invalid",
        forged_signature,
        exact={"detail": "The token is not valid: its signature does not verify."},
    ),
    Scenario(
        "jwt-alg-none",
        "token_invalid",
        alg_none,
        exact={"detail": "The token is not valid: its algorithm is not allowed."},
    ),
    Scenario(
        "jwt-not-well-formed",
        "token_invalid",
        not_a_jwt,
        exact={"detail": "The token is not valid: it is not a well-formed JWT."},
    ),
    Scenario(
        "jwt-forged-and-expired",
        "token_invalid",
        forged_and_expired,
        exact={"detail": "The token is not valid: its signature does not verify."},
    ),
    Scenario(
        "jwt-minted-expired",
        "token_expired",
        expired_access_token,
        exact={
            "detail": f"The access token expired at {iso(NOW - timedelta(minutes=55))}.",
            "server_time": iso(NOW),
        },
    ),
    Scenario(
        "jwt-outlived-a-day-later",
        "token_expired",
        access_token_outlived,
        exact={
            "detail": f"The access token expired at {iso(NOW + timedelta(minutes=5))}.",
            "server_time": iso(NOW + timedelta(days=1)),
        },
    ),
    Scenario(
        "refresh-token-expired-at-refresh-endpoint",
        "token_expired",
        expired_refresh,
        exact={
            "detail": f"The refresh token expired at {iso(NOW + timedelta(days=1))}.",
            "server_time": iso(NOW + timedelta(days=2)),
        },
    ),
    Scenario(
        "jwt-nbf-in-future",
        "token_not_yet_valid",
        nbf_in_future,
        exact={
            "detail": f"The token is not valid before {iso(NOW + timedelta(minutes=10))}.",
            "server_time": iso(NOW),
        },
    ),
    Scenario(
        "jwt-issuer-clock-ahead",
        "token_not_yet_valid",
        issuer_clock_ahead,
        exact={
            "detail": f"The token is not valid before {iso(NOW + timedelta(minutes=10))}.",
            "server_time": iso(NOW),
        },
    ),
    Scenario(
        "refresh-token-as-access",
        "token_wrong_type",
        refresh_as_access,
        exact={"detail": "Wrong token type: got 'refresh', expected 'access'."},
    ),
    Scenario(
        "access-token-at-refresh-endpoint",
        "token_wrong_type",
        access_at_refresh_endpoint,
        exact={"detail": "Wrong token type: got 'access', expected 'refresh'."},
    ),
    Scenario(
        "blacklisted-refresh-at-refresh-endpoint",
        "token_revoked",
        blacklisted_refresh,
        exact={"detail": "The token has been revoked."},
    ),
    Scenario(
        "jwt-issued-before-lock-and-unlock",
        "token_revoked",
        issued_before_lock,
        exact={"detail": "The token has been revoked."},
    ),
    Scenario(
        "jwt-issued-before-password-change",
        "token_revoked",
        issued_before_password_change,
        exact={"detail": "The token has been revoked."},
    ),
    Scenario(
        "session-deleted-server-side",
        "session_expired",
        deleted_session,
        exact={"detail": "The session has expired or was ended."},
    ),
    Scenario(
        "session-from-before-lock-and-unlock",
        "session_expired",
        session_from_before_lock,
        exact={"detail": "The session has expired or was ended."},
    ),
    Scenario(
        "basic-password-older-than-max-age",
        "password_expired",
        old_password,
        overrides={"PASSWORD_MAX_AGE": timedelta(days=90)},
        exact={"detail": "The password has expired."},
    ),
    Scenario(
        "locked-for-ten-minutes",
        "account_locked",
        timed_lock,
        exact={"detail": "This account is locked.", "retry_after": 600},
    ),
    Scenario(
        "locked-by-admin-until-unlocked",
        "account_locked",
        admin_lock,
        extras=frozenset(),
        exact={"detail": "This account is locked."},
    ),
    Scenario(
        "locked-automatically-after-failures",
        "account_locked",
        automatic_lock,
        overrides={"FAILURE_LIMIT": 3, "LOCKOUT_DURATION": timedelta(minutes=15)},
        exact={"detail": "This account is locked.", "retry_after": 900},
    ),
    Scenario(
        "address-locked-after-failures-from-it",
        "address_locked",
        address_locked,
        overrides={"IP_FAILURE_LIMIT": 2, "LOCKOUT_DURATION": timedelta(minutes=15)},
        exact={"detail": "Too many failed logins from your network.", "retry_after": 900},
    ),
    Scenario(
        "password-checks-in-flight-at-the-limit",
        "login_busy",
        busy,
        overrides={"FAILURE_LIMIT": 1},
        exact={"retry_after": 1},
    ),
    Scenario(
        "no-counter-store-answers",
        "lockout_unavailable",
        no_store_counts,
        overrides={"COUNTER_STORE": "database"},
        exact={"detail": "Logins cannot be checked right now.", "retry_after": 5},
    ),
    Scenario(
        "suspended",
        "account_suspended",
        suspended,
        exact={"detail": "This account is suspended."},
    ),
    Scenario(
        "is-active-false",
        "account_inactive",
        inactive,
        exact={"detail": "This account is inactive."},
    ),
    Scenario(
        "alice-on-staff-view",
        "permission_denied",
        not_staff,
        exact={"detail": "You do not have permission to perform this action."},
    ),
    Scenario(
        "session-post-without-csrf-token",
        "csrf_failed",
        session_post_without_csrf_token,
        schemes=("Basic", "Bearer"),
        exact={"detail": "CSRF check failed: CSRF cookie not set."},
    ),
)


def test_every_code_has_a_scenario():
    assert {scenario.code for scenario in SCENARIOS} == set(CATALOGUE)
    ids = [scenario.id for scenario in SCENARIOS]
    assert len(ids) == len(set(ids))


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "scenario", [pytest.param(s, id=f"{s.code}:{s.id}", marks=s.marks) for s in SCENARIOS]
)
def test_catalogue(scenario, fmt, api_client, user_factory, auth401_settings, time_machine):
    time_machine.move_to(NOW, tick=False)
    auth401_settings(RESPONSE_FORMAT=fmt, **scenario.overrides)
    response = scenario.act(Ctx(api_client, user_factory, time_machine))
    assert_answer(
        response,
        scenario.code,
        fmt=fmt,
        extras=scenario.extras,
        schemes=scenario.schemes,
        bearer_error=scenario.bearer_error,
        exact=scenario.exact,
        hint_has=scenario.hint_has,
    )


# -- request ids ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "offered",
    ["9f0c1d4e-2b7a-4c55", "req_2026.11.23:abc-DEF", "x" * 128],
    ids=["uuid-like", "all-allowed-punctuation", "128-chars"],
)
def test_sane_caller_request_id_is_echoed(offered, api_client):
    response = api_client.get(ME, HTTP_X_REQUEST_ID=offered)
    body = assert_answer(response, "credentials_missing")
    assert body["request_id"] == offered
    assert response["X-Request-ID"] == offered


@pytest.mark.django_db
@pytest.mark.parametrize(
    "offered",
    ["x" * 129, "has spaces in it", "abc\r\nSet-Cookie: sessionid=evil", 'ab"c', "", "idé"],
    ids=["129-chars", "spaces", "crlf", "quote", "empty", "non-ascii"],
)
def test_insane_caller_request_id_is_replaced(offered, api_client):
    response = api_client.get(ME, HTTP_X_REQUEST_ID=offered)
    body = assert_answer(response, "credentials_missing")
    assert body["request_id"] != offered
    assert SANE_REQUEST_ID.fullmatch(body["request_id"])
    assert response["X-Request-ID"] == body["request_id"]
    assert not response.has_header("Set-Cookie")


@pytest.mark.django_db
def test_each_request_gets_its_own_fresh_id(api_client):
    first = api_client.get(ME)["X-Request-ID"]
    second = api_client.get(ME)["X-Request-ID"]
    assert first != second


# -- settings that change the answer ----------------------------------------------------------


def _without_request_id(response: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {k: v for k, v in json.loads(response.content).items() if k != "request_id"}
    headers = {k: v for k, v in response.items() if k != "X-Request-ID"}
    return response.status_code, body, headers


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", FORMATS)
def test_undisclosed_account_state_is_credentials_invalid(
    fmt, api_client, user_factory, auth401_settings
):
    auth401_settings(
        RESPONSE_FORMAT=fmt, DISCLOSE_ACCOUNT_STATE=False, PASSWORD_MAX_AGE=timedelta(days=90)
    )
    user_factory("alice")
    accounts.suspend(user_factory("carol"), reason="chargeback")
    user_factory("dave", is_active=False)
    accounts.lock(user_factory("bob"), reason="until further notice")
    AccountStatus.objects.update_or_create(
        user=user_factory("erin"),
        defaults={"password_changed_at": datetime.now(UTC) - timedelta(days=365)},
    )
    attempts = {
        "suspended": basic("carol", PASSWORD),
        "inactive": basic("dave", PASSWORD),
        "password-expired": basic("erin", PASSWORD),
        "locked-by-admin": basic("bob", PASSWORD),
        "wrong-password": basic("alice", "wrong-password"),
        "unknown-user": basic("nobody", PASSWORD),
    }
    answers = {}
    for name, authorization in attempts.items():
        response = api_client.get(ME, HTTP_AUTHORIZATION=authorization)
        assert_answer(response, "credentials_invalid", fmt=fmt)
        answers[name] = _without_request_id(response)
    reference = answers.pop("wrong-password")
    for name, answer in answers.items():
        assert answer == reference, name


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", FORMATS)
def test_docs_url_adds_a_docs_link(fmt, api_client, auth401_settings):
    auth401_settings(RESPONSE_FORMAT=fmt, DOCS_URL="https://docs.example/errors/{code}")
    response = api_client.get(ME)
    assert_answer(
        response,
        "credentials_missing",
        fmt=fmt,
        docs="https://docs.example/errors/credentials_missing",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", FORMATS)
def test_lockout_status_code_429(fmt, api_client, user_factory, auth401_settings, time_machine):
    time_machine.move_to(NOW, tick=False)
    auth401_settings(RESPONSE_FORMAT=fmt, LOCKOUT_STATUS_CODE=429)
    accounts.lock(user_factory("alice"), until=timedelta(minutes=10))
    response = api_client.get(ME, HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    body = assert_answer(response, "account_locked", fmt=fmt, exact={"retry_after": 600})
    assert response.status_code == 429
    phrase = body["error"] if fmt == "auth401" else body["title"]
    assert (body["status"], phrase) == (429, "Too Many Requests")
    assert response["Retry-After"] == "600"
    assert not response.has_header("WWW-Authenticate")
