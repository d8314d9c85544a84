"""``manage.py auth401_explain``: whole outputs per scenario, no secrets, no side effects, the
same verdict as the API, and no crash on garbage."""

from __future__ import annotations

import base64
import json
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings, strategies
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from auth401 import accounts, lockout
from auth401.codes import HEADER_NOTE
from auth401.events import fingerprint
from auth401.exceptions import Auth401Error
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db

NOW = "2026-11-25 10:00:00+00:00"
ISSUED = "2026-11-25 08:00:00+00:00"

SCHEMES = """\
Schemes of DEFAULT_AUTHENTICATION_CLASSES, in order:
  Bearer: auth401.authentication.JWTAuthentication
  Token: auth401.authentication.TokenAuthentication
  Basic: auth401.authentication.BasicAuthentication
  a session cookie (not this header): auth401.authentication.SessionAuthentication
"""

#: what the API calls the schemes of the test settings' DEFAULT_AUTHENTICATION_CLASSES
LISTED = "Bearer, Token, Basic, or a session cookie from logging in"


def answer(code: str, **params: object) -> str:
    """The last three lines: the catalogue's detail and hint (their wording belongs to
    codes.py and may change), then the code and its status."""
    failure = Auth401Error(code, **params)
    return (
        f"detail: {failure.render_detail()}\n"
        f"hint: {failure.render_hint()}\n"
        f"code: {code} ({failure.reason.status_code()})\n"
    )


CREDENTIALS_INVALID = answer("credentials_invalid")


def explain(header: str = "", *options: str, stdin: str | None = None) -> str:
    out = StringIO()
    kwargs = {} if stdin is None else {"stdin": StringIO(stdin)}
    call_command("auth401_explain", header, *options, stdout=out, **kwargs)
    return out.getvalue()


def prompted(monkeypatch, answer: str, *options: str) -> tuple[str, list[str]]:
    """Run with no header argument: the secret comes from a (faked) no-echo prompt."""
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return answer

    monkeypatch.setattr("auth401.management.commands.auth401_explain.getpass.getpass", fake_getpass)
    out = StringIO()
    call_command("auth401_explain", *options, stdout=out)
    return out.getvalue(), prompts


# -- reading the header or the secret ---------------------------------------------------------


def test_header_from_stdin_is_the_same_as_the_argument(user):
    header = basic("alice", PASSWORD)
    assert explain("-", stdin=header + "\n") == explain(header)
    assert explain("-", stdin="") == explain("")


def test_header_from_a_prompt_when_not_given(monkeypatch, user):
    header = basic("alice", PASSWORD)
    out, prompts = prompted(monkeypatch, header)
    assert prompts == ["Authorization header (not shown; empty for none): "]
    assert out == explain(header)
    assert out.endswith("accepted: alice\n")
    assert PASSWORD not in out


def test_basic_password_from_stdin(user):
    out = explain("-", "--basic", "alice", stdin=PASSWORD + "\n")
    assert out == explain(basic("alice", PASSWORD))
    assert out.endswith("accepted: alice\n")
    assert PASSWORD not in out


def test_basic_password_from_a_prompt(monkeypatch, user):
    out, prompts = prompted(monkeypatch, "wrong-password", "--basic", "alice")
    assert prompts == ["Password (not shown): "]
    assert out == explain(basic("alice", "wrong-password"))
    assert out.endswith(CREDENTIALS_INVALID)


def test_bearer_and_token_from_stdin_or_a_prompt(monkeypatch, user, jwt_pair):
    access, _refresh = jwt_pair(user)
    assert explain("-", "--bearer", stdin=access + "\n") == explain(f"Bearer {access}")
    key = Token.objects.create(user=user).key
    out, prompts = prompted(monkeypatch, key, "--token")
    assert prompts == ["Token (not shown): "]
    assert out == explain(f"Token {key}")
    assert key not in out


def test_a_header_argument_with_a_scheme_option_is_refused(user):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="With --basic, give no header"):
        explain(basic("alice", PASSWORD), "--basic", "alice")


def test_no_header():
    assert explain() == (
        "Header: no Authorization header.\n"
        + SCHEMES
        + "Verdict: no credentials. (A session cookie would count too; this command cannot see "
        "cookies.)\n" + answer("credentials_missing", schemes=LISTED, header_note=HEADER_NOTE)
    )
    assert explain("-", stdin="\n") == explain()


def test_digest_is_not_accepted():
    assert explain('Digest username="alice", realm="api", nonce="abc"') == (
        "Header: scheme 'Digest', then 17 + 12 + 11 characters of credentials.\n"
        + SCHEMES
        + "Scheme: not accepted by any of these classes.\n"
        + answer("scheme_unsupported", offered="Digest", schemes=LISTED)
    )


def test_malformed_basic():
    assert explain("Basic not-base64!") == (
        "Header: scheme 'Basic', then 11 characters of credentials.\n"
        + SCHEMES
        + "Scheme: accepted, by auth401.authentication.BasicAuthentication.\n"
        "Credentials: cannot be read: the credentials are not valid base64 of "
        "'username:password'.\n"
        + answer(
            "authorization_malformed",
            problem="the credentials are not valid base64 of 'username:password'",
        )
    )


def basic_intro(header: str, username: str) -> str:
    return (
        f"Header: scheme 'Basic', then {len(header.split()[1])} characters of credentials.\n"
        + SCHEMES
        + "Scheme: accepted, by auth401.authentication.BasicAuthentication.\n"
        "Credentials: valid base64 of 'username:password' in UTF-8.\n"
        f"Username: '{username}' (the password is never shown).\n"
    )


NOT_LOCKED = (
    "Failed logins for this username in the window: 0 of 5; not locked. (The client IP's "
    "counter is not checked here.)\n"
)


def test_wrong_password_is_not_counted(user):
    header = basic("alice", "wrong-password")
    assert explain(header) == (
        basic_intro(header, "alice")
        + f"User: found, id {user.pk}.\n"
        + NOT_LOCKED
        + "Password: wrong. A real request would count failure 1 of 5 for this username.\n"
        + CREDENTIALS_INVALID
    )
    for _ in range(6):
        explain(header)
    assert lockout.peek("alice").failures == 0
    assert not AuthEvent.objects.exists()


def test_unknown_user(db):
    header = basic("nobody", "whatever")
    assert explain(header) == (
        basic_intro(header, "nobody")
        + "User: no such user.\n"
        + NOT_LOCKED
        + "Password: not checked (no user). A real request would count failure 1 of 5 for this "
        "username.\n" + CREDENTIALS_INVALID
    )


def test_right_password(user):
    header = basic("alice", PASSWORD)
    assert explain(header) == (
        basic_intro(header, "alice")
        + f"User: found, id {user.pk}.\n"
        + NOT_LOCKED
        + "Password: right (checked here without counting anything).\n"
        "Account: active.\n"
        "accepted: alice\n"
    )


def test_suspended_user(account_factory):
    carol = account_factory("suspended", username="carol", reason="chargeback")
    carol.set_password(PASSWORD)
    carol.save()
    header = basic("carol", PASSWORD)
    assert explain(header) == (
        basic_intro(header, "carol")
        + f"User: found, id {carol.pk}.\n"
        + NOT_LOCKED
        + "Password: right (checked here without counting anything).\n"
        "Account: suspended.\n" + answer("account_suspended")
    )


def test_suspended_user_without_disclosure(account_factory, auth401_settings):
    auth401_settings(DISCLOSE_ACCOUNT_STATE=False)
    account_factory("suspended", username="carol")
    output = explain(basic("carol", PASSWORD))
    assert output.endswith(
        "Account: suspended.\n"
        "DISCLOSE_ACCOUNT_STATE is False: the caller is told credentials_invalid instead of "
        "account_suspended.\n" + CREDENTIALS_INVALID
    )


def test_locked_username_is_refused_before_the_password(user, auth401_settings, rf):
    from django.contrib.auth import authenticate

    auth401_settings(FAILURE_LIMIT=2)
    request = rf.get("/")
    for _ in range(2):
        authenticate(request, username="alice", password="wrong")
    output = explain(basic("alice", PASSWORD))
    assert output.endswith(
        "; locked for 900 s more. (The client IP's counter is not checked here.)\n"
        "Lockout: the username is locked, so the password is not even checked.\n"
        + answer("account_locked")
    )


def jwt_intro(token: str, token_type: str, user_id: object, expires: str, left: str) -> str:
    return (
        f"Header: scheme 'Bearer', then {len(token)} characters of credentials.\n"
        + SCHEMES
        + "Scheme: accepted, by auth401.authentication.JWTAuthentication.\n"
        "Token header: alg 'HS256', typ 'JWT'.\n"
        f"Claims (as sent, before any check): token_type '{token_type}', user_id '{user_id}', "
        "jti present.\n"
        "  issued at (iat): 2026-11-25T08:00:00Z (7200 s ago)\n"
        "  not before (nbf): none\n"
        f"  expires (exp): {expires} ({left})\n"
        "Server clock: 2026-11-25T10:00:00Z; leeway 0 s.\n"
    )


def issue(make):
    with time_machine.travel(ISSUED, tick=False):
        return str(make())


def test_expired_jwt(user):
    token = issue(lambda: AccessToken.for_user(user))
    with time_machine.travel(NOW, tick=False):
        output = explain(f"Bearer {token}")
    assert output == (
        jwt_intro(token, "access", user.pk, "2026-11-25T08:05:00Z", "6900 s ago")
        + "Time: expired 6900 s ago, beyond the leeway.\n"
        "Signature check: passed (HS256 with this server's key).\n"
        "Token classes (AccessToken): none accepts it.\n"
        + answer("token_expired", token_type="access", expires_at="2026-11-25T08:05:00Z")
    )


def test_tampered_jwt_is_invalid_even_when_expired(user):
    token = issue(lambda: AccessToken.for_user(user))
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] += 10**6  # "extend" it: the signature no longer matches
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{head}.{forged_payload}.{signature}"
    with time_machine.travel(NOW, tick=False):
        output = explain(f"Bearer {forged}")
    assert output == (
        jwt_intro(forged, "access", user.pk, "2026-12-06T21:51:40Z", "in 993100 s")
        + "Time: valid for 993100 s more.\n"
        "Signature check: failed, its signature does not verify. The token was altered, or made "
        "with another key or algorithm: the claims above cannot be trusted.\n"
        "Token classes (AccessToken): none accepts it.\n"
        + answer("token_invalid", problem="its signature does not verify")
    )


def test_refresh_token_as_access_token(user):
    token = issue(lambda: RefreshToken.for_user(user))
    with time_machine.travel(NOW, tick=False):
        output = explain(f"Bearer {token}")
    assert output == (
        jwt_intro(token, "refresh", user.pk, "2026-11-26T08:00:00Z", "in 79200 s")
        + "Time: valid for 79200 s more.\n"
        "Signature check: passed (HS256 with this server's key).\n"
        "Token classes (AccessToken): none accepts it.\n"
        + answer("token_wrong_type", got="refresh", expected="access")
    )


def test_valid_jwt_of_a_locked_account(user):
    with time_machine.travel(ISSUED, tick=False):
        token = str(AccessToken.for_user(user))
    with time_machine.travel("2026-11-25 08:01:00+00:00", tick=False):
        accounts.lock(user, reason="investigation")
        output = explain(f"Bearer {token}")
    assert output.endswith(
        "Time: valid for 240 s more.\n"
        "Signature check: passed (HS256 with this server's key).\n"
        "Token classes (AccessToken): AccessToken accepts it.\n"
        f"User: found, id {user.pk}.\n"
        "Account: locked.\n" + answer("account_locked")
    )


def test_clock_skew(user):
    with time_machine.travel("2026-11-25 10:00:30+00:00", tick=False):
        token = str(AccessToken.for_user(user))
    with time_machine.travel(NOW, tick=False):
        output = explain(f"Bearer {token}")
    assert "  issued at (iat): 2026-11-25T10:00:30Z (in 30 s)\n" in output
    assert (
        "Time: iat is 30 s in this server's future, beyond the leeway: the issuer's clock is "
        "ahead of this server's (clock skew).\n" in output
    )
    assert output.endswith("code: token_not_yet_valid (401)\n")


def test_unknown_drf_token(db):
    key = "0123456789abcdef0123456789abcdef01234567"
    assert explain(f"Token {key}") == (
        "Header: scheme 'Token', then 40 characters of credentials.\n"
        + SCHEMES
        + "Scheme: accepted, by auth401.authentication.TokenAuthentication.\n"
        f"Key: fingerprint {fingerprint(key)} (the key itself is never shown).\n"
        "Key: no such key.\n" + CREDENTIALS_INVALID
    )


def test_known_drf_token_of_an_inactive_user(account_factory):
    dave = account_factory("inactive", username="dave")
    token = Token.objects.create(user=dave)
    output = explain(f"Token {token.key}")
    assert token.key not in output
    assert output.endswith(
        f"Key: fingerprint {fingerprint(token.key)} (the key itself is never shown).\n"
        f"Key: known; it belongs to user id {dave.pk}.\n"
        "Account: active, and is_active is False.\n" + answer("account_inactive")
    )


def test_the_header_name_may_be_pasted_too(user):
    assert explain("Authorization: " + basic("alice", PASSWORD)).endswith("accepted: alice\n")


def test_no_secret_is_printed(user, jwt_pair):
    access, refresh = jwt_pair(user)
    for header, secrets in [
        (basic("alice", PASSWORD), [PASSWORD, basic("alice", PASSWORD).split()[1]]),
        (basic("alice", "wrong-password"), ["wrong-password"]),
        (f"Bearer {access}", [access, access.split(".")[2]]),
        (f"Bearer {refresh}", [refresh, refresh.split(".")[2]]),
    ]:
        output = explain(header)
        for secret in secrets:
            assert secret not in output


# The verdict is the API's: the same code as a real request to a protected view.


def _headers(user, jwt_pair):
    access, refresh = jwt_pair(user)
    key = Token.objects.create(user=user).key
    return [
        "",
        "Digest abc",
        "Basic",
        "Basic a b",
        "Basic !!!",
        basic("alice", PASSWORD),
        basic("alice", "nope"),
        basic("ghost", "nope"),
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "bearer",
        f"Bearer {access}",
        f"bearer {access}",
        f"Bearer {refresh}",
        f"Bearer {access}x",
        "Bearer a.b.c",
        "Bearer é",
        f"Token {key}",
        "Token nope",
        "Token a b",
        "Token é",
        "Session abc",
    ]


def test_same_code_as_the_api(user, jwt_pair, api_client):
    for header in _headers(user, jwt_pair):
        meta = {"HTTP_AUTHORIZATION": header.encode().decode("latin-1")} if header else {}
        response = api_client.get("/api/me/", **meta)
        last = explain(header).splitlines()[-1]
        if response.status_code == 200:
            assert last == "accepted: alice", header
        else:
            body = response.json()
            assert last == f"code: {body['code']} ({response.status_code})", header


SCHEME_WORDS = strategies.sampled_from(["Basic", "Bearer", "Token", "basic", "Digest", ""])


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(FUZZ, max_examples=150)
@given(scheme=SCHEME_WORDS, rest=strategies.text(max_size=80))
def test_garbage_never_crashes(db, scheme, rest):
    output = explain(f"{scheme} {rest}")
    assert output.splitlines()[-1].startswith(("code: ", "accepted: "))


@settings(FUZZ, max_examples=60)
@given(
    header=strategies.dictionaries(strategies.text(max_size=5), strategies.text(max_size=5)),
    claims=strategies.dictionaries(
        strategies.sampled_from(["exp", "iat", "nbf", "token_type", "user_id", "jti"]),
        strategies.one_of(
            strategies.integers(),
            strategies.floats(),
            strategies.text(max_size=5),
            strategies.none(),
            strategies.lists(strategies.integers(), max_size=2),
        ),
    ),
    signature=strategies.binary(max_size=40),
)
def test_garbage_jwts_never_crash(db, header, claims, signature):
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    token = ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )
    output = explain(f"Bearer {token}")
    assert output.splitlines()[-1].startswith("code: token_invalid (401)")


def test_expired_password(user, auth401_settings):
    from datetime import timedelta

    from django.utils import timezone

    auth401_settings(PASSWORD_MAX_AGE=timedelta(days=90))
    with time_machine.travel(timezone.now() + timedelta(days=91), tick=False):
        output = explain(basic("alice", PASSWORD))
    assert output.endswith(
        "Password: right (checked here without counting anything).\n"
        "Account: active.\n"
        "Password: last changed longer ago than PASSWORD_MAX_AGE (90 days, 0:00:00).\n"
        + answer("password_expired")
    )


def test_jwt_issued_before_a_password_change(user):
    token = issue(lambda: AccessToken.for_user(user))
    with time_machine.travel("2026-11-25 08:01:00+00:00", tick=False):
        user.set_password("a-new-password-2")
        user.save()
        output = explain(f"Bearer {token}")
    assert output.endswith(
        f"User: found, id {user.pk}.\n"
        "Account: active.\n"
        "Credentials: issued before the account's last lock, suspension or password change, so "
        "they are revoked.\n" + answer("token_revoked")
    )
