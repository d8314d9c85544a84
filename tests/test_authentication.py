"""auth401.authentication: precise codes for every way a credential can be wrong, 401s that stay
401s whatever the class order, no extra queries, and account state only for proven callers."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import jwt
import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from rest_framework import authentication as drf_authentication
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt import state as jwt_state
from rest_framework_simplejwt.backends import TokenBackend

from auth401 import accounts
from auth401 import authentication as auth401_authentication
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

BODY_KEYS = {"status", "error", "code", "detail", "hint", "request_id"}

#: WWW-Authenticate of the default classes (JWT, Token, Basic, Session), in settings order.
#: The session is not an HTTP scheme: its challenge is given only when a view accepts nothing
#: else (responses.challenges, commit 270d96b).
DEFAULT_CHALLENGES = [
    'Bearer realm="api"',
    'Token realm="api"',
    'Basic realm="api", charset="UTF-8"',
]


def challenge_header(
    challenges: list[str], bearer_error: str | None = None, detail: str = ""
) -> str:
    """The expected WWW-Authenticate: RFC 6750 parameters on the Bearer challenge only."""
    listed = []
    for challenge in challenges:
        if bearer_error and challenge.startswith("Bearer "):
            challenge += f', error="{bearer_error}", error_description="{detail}"'
        listed.append(challenge)
    return ", ".join(listed)


def assert_failure(
    response: Any,
    status: int,
    code: str,
    *,
    extra: frozenset[str] = frozenset(),
    www_authenticate: str | None = None,
) -> dict[str, Any]:
    """The whole contract answer: status, body members, Content-Type and headers."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == BODY_KEYS | extra
    assert body["status"] == status
    assert body["error"] == HTTPStatus(status).phrase
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["hint"], str) and body["hint"]
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == body["request_id"]
    if status == 401:
        assert response.has_header("WWW-Authenticate")
        if www_authenticate is not None:
            assert response["WWW-Authenticate"] == www_authenticate
    else:
        assert not response.has_header("WWW-Authenticate")
    return body


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def frozen() -> Iterator[Any]:
    """Frozen time (token times are whole seconds): ``frozen.shift(seconds)`` moves it on."""
    with time_machine.travel(datetime.now(UTC).replace(microsecond=0), tick=False) as traveller:
        yield traveller


# --- malformed and unusual Authorization headers ------------------------------------------

MALFORMED = "The Authorization header could not be parsed: {}."
NO_CREDENTIALS = MALFORMED.format("no credentials after the scheme")
SPACES = MALFORMED.format("the credentials contain spaces")
NOT_BASE64 = MALFORMED.format("the credentials are not valid base64 of 'username:password'")
NOT_ASCII = MALFORMED.format("the credentials are not ASCII")
TOKEN_NOT_ASCII = MALFORMED.format("the token is not ASCII")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "code", "detail", "bearer_error"),
    [
        pytest.param(
            "Basic !!!not-base64!!!",
            "authorization_malformed",
            NOT_BASE64,
            None,
            id="basic-bad-base64",
        ),
        pytest.param(
            "Basic " + _b64(b"alice-no-colon"),
            "authorization_malformed",
            NOT_BASE64,
            None,
            id="basic-no-colon",
        ),
        pytest.param("Basic", "authorization_malformed", NO_CREDENTIALS, None, id="basic-alone"),
        pytest.param("Basic a b", "authorization_malformed", SPACES, None, id="basic-a-b"),
        pytest.param(
            "Bearer",
            "authorization_malformed",
            NO_CREDENTIALS,
            "invalid_request",
            id="bearer-alone",
        ),
        pytest.param(
            "Bearer a b", "authorization_malformed", SPACES, "invalid_request", id="bearer-a-b"
        ),
        pytest.param("Token", "authorization_malformed", NO_CREDENTIALS, None, id="token-alone"),
        pytest.param("Token a b", "authorization_malformed", SPACES, None, id="token-a-b"),
        pytest.param(
            "Bearer \xff\xfe",
            "authorization_malformed",
            TOKEN_NOT_ASCII,
            "invalid_request",
            id="bearer-latin1",
        ),
        pytest.param(
            "Basic \xff\xfe", "authorization_malformed", NOT_ASCII, None, id="basic-latin1"
        ),
        pytest.param(
            "Token \xff\xfe", "authorization_malformed", NOT_ASCII, None, id="token-latin1"
        ),
        pytest.param(
            "Bearer " + "a" * 10240,
            "token_invalid",
            "The token is not valid: it is not a well-formed JWT.",
            "invalid_token",
            id="bearer-10kb",
        ),
        pytest.param(
            "Basic " + "!" * 10240, "authorization_malformed", NOT_BASE64, None, id="basic-10kb"
        ),
        pytest.param(
            "Basic " + "a" * 10240,
            "authorization_malformed",
            NOT_BASE64,
            None,
            id="basic-10kb-bytes",
        ),
        pytest.param(
            "Basic " + _b64(b"alice:" + b"x" * 8000),
            "credentials_invalid",
            "Invalid username, password or token.",
            None,
            id="basic-10kb-password",
        ),
        pytest.param(
            "Token " + "a" * 10240,
            "credentials_invalid",
            "Invalid username, password or token.",
            None,
            id="token-10kb",
        ),
        pytest.param(
            "Bearer abc\r\nX-Evil: 1",
            "authorization_malformed",
            SPACES,
            "invalid_request",
            id="bearer-crlf",
        ),
        pytest.param(
            "Basic YWxpY2U6eA==\r\nX-Evil: 1",
            "authorization_malformed",
            SPACES,
            None,
            id="basic-crlf",
        ),
        pytest.param(
            "     ",
            "credentials_missing",
            "Authentication credentials were not provided.",
            None,
            id="only-spaces",
        ),
        pytest.param(
            "Digest x",
            "scheme_unsupported",
            "The authentication scheme 'Digest' is not accepted here.",
            None,
            id="digest",
        ),
    ],
)
def test_malformed_header_gets_its_precise_code(
    api_client, user, header, code, detail, bearer_error
):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=header)

    expected = challenge_header(DEFAULT_CHALLENGES, bearer_error, detail)
    body = assert_failure(response, 401, code, www_authenticate=expected)
    assert body["detail"] == detail
    assert not response.has_header("X-Evil")
    assert "\r" not in response["WWW-Authenticate"] and "\n" not in response["WWW-Authenticate"]


@pytest.mark.django_db
def test_scheme_unsupported_hint_names_the_accepted_schemes(api_client):
    response = api_client.get("/api/order/basic-only/", HTTP_AUTHORIZATION="Digest x")

    body = assert_failure(
        response, 401, "scheme_unsupported", www_authenticate='Basic realm="api", charset="UTF-8"'
    )
    assert body["detail"] == "The authentication scheme 'Digest' is not accepted here."
    assert body["hint"] == "Authenticate with one of the accepted schemes: Basic."


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer \u20ac", "Basic \u20ac", "Token \u20ac", "\u20ac x"])
@pytest.mark.parametrize("path", ["/api/me/", "/api/order/basic-only/"])
def test_character_above_latin1_is_malformed_not_500(api_client, header, path):
    response = api_client.get(path, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401, response.content
    code = response.json()["code"]
    assert code in {"authorization_malformed", "scheme_unsupported"}
    assert_failure(response, 401, code)


LATIN1_NAME, LATIN1_PASSWORD = "jörg", "pässwort-1"


def latin1_basic(username: str, password: str) -> str:
    """Basic credentials encoded as ``requests`` encodes ``str`` credentials: ISO-8859-1."""
    return "Basic " + _b64(f"{username}:{password}".encode("latin-1"))


@pytest.mark.django_db
def test_basic_credentials_in_latin1_log_in_as_with_drf(api_client, user_factory):
    """DRF decodes Basic credentials as UTF-8, else ISO-8859-1: so does auth401."""
    user_factory(LATIN1_NAME, password=LATIN1_PASSWORD)
    header = latin1_basic(LATIN1_NAME, LATIN1_PASSWORD)
    assert not _is_utf8(base64.b64decode(header.split()[1]))

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 200, response.content
    assert response.json()["username"] == LATIN1_NAME

    # the UTF-8 form of the same credentials logs in too
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(LATIN1_NAME, LATIN1_PASSWORD))
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_wrong_latin1_password_is_credentials_invalid_and_counted(api_client, user_factory):
    user = user_factory(LATIN1_NAME, password=LATIN1_PASSWORD)
    response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=latin1_basic(LATIN1_NAME, "pässwort-2")
    )
    body = assert_failure(
        response, 401, "credentials_invalid", www_authenticate=challenge_header(DEFAULT_CHALLENGES)
    )
    assert body["detail"] == "Invalid username, password or token."
    row = AuthEvent.objects.get()
    assert (row.code, row.username, row.user_id, row.scheme) == (
        "credentials_invalid",
        LATIN1_NAME,
        user.pk,
        "Basic",
    )
    assert accounts.status(user).failures_in_window == 1


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.django_db(transaction=True)  # the server process reads the committed user
def test_requests_with_str_credentials_logs_in_against_a_live_server(user_factory, private_redis):
    """``requests`` sends ``str`` Basic credentials as ISO-8859-1: they work here as with DRF."""
    requests = pytest.importorskip("requests")
    from tests.servers import start_server

    user_factory(LATIN1_NAME, password=LATIN1_PASSWORD)
    server, port = start_server(private_redis.url, "latin1")
    try:
        url = f"http://127.0.0.1:{port}/api/me/"
        good = requests.get(url, auth=(LATIN1_NAME, LATIN1_PASSWORD), timeout=10)
        wrong = requests.get(url, auth=(LATIN1_NAME, "pässwort-2"), timeout=10)
    finally:
        server.terminate()
        server.wait(10)
    assert good.request.headers["Authorization"] == latin1_basic(LATIN1_NAME, LATIN1_PASSWORD)
    assert (good.status_code, good.json()["username"]) == (200, LATIN1_NAME)
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "credentials_invalid"
    assert wrong.headers["X-Request-ID"] == wrong.json()["request_id"]


@pytest.mark.django_db
def test_scheme_is_case_insensitive(api_client, user, access_token):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="bearer " + access_token(user))

    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"
    assert response.json()["auth"] == "JWTAuthentication"


@pytest.mark.django_db
def test_lower_case_basic_and_token_schemes_work(api_client, user):
    key = Token.objects.create(user=user).key

    basic_response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", PASSWORD).replace("Basic", "basic")
    )
    token_response = api_client.get("/api/me/", HTTP_AUTHORIZATION="token " + key)

    assert basic_response.status_code == 200, basic_response.content
    assert token_response.status_code == 200, token_response.content
    assert token_response.json()["auth"] == "TokenAuthentication"


# --- JWTs ---------------------------------------------------------------------------------


def _bearer_failure(response: Any, code: str, *, extra: frozenset[str] = frozenset()) -> dict:
    body = assert_failure(response, 401, code, extra=extra)
    assert response["WWW-Authenticate"] == challenge_header(
        DEFAULT_CHALLENGES, "invalid_token", body["detail"]
    )
    return body


@pytest.mark.django_db
def test_alg_none_is_token_invalid(api_client, user, access_token):
    unsigned = jwt.encode(claims(access_token(user)), None, algorithm="none")

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + unsigned)

    body = _bearer_failure(response, "token_invalid")
    assert body["detail"] == "The token is not valid: its algorithm is not allowed."


@pytest.mark.django_db
def test_token_signed_with_another_key_is_token_invalid(api_client, user, access_token):
    forged = jwt.encode(claims(access_token(user)), "another-signing-key-" * 3, algorithm="HS256")

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + forged)

    body = _bearer_failure(response, "token_invalid")
    assert body["detail"] == "The token is not valid: its signature does not verify."


@pytest.mark.django_db
def test_expired_genuine_token_is_token_expired_with_server_time(
    api_client, user, access_token, frozen
):
    token = access_token(user)
    expires_at = datetime.fromtimestamp(claims(token)["exp"], UTC)
    frozen.shift(timedelta(hours=2))

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + token)

    body = _bearer_failure(response, "token_expired", extra=frozenset({"server_time"}))
    assert body["detail"] == f"The access token expired at {iso(expires_at)}."
    assert body["server_time"] == iso(datetime.now(UTC))
    assert body["hint"] == "Get a new access token from the refresh endpoint, or log in again."


@pytest.mark.django_db
def test_expired_token_with_tampered_signature_is_token_invalid(
    api_client, user, access_token, frozen
):
    header, payload, signature = access_token(user).split(".")
    tampered = f"{header}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    frozen.shift(timedelta(hours=2))

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + tampered)

    body = _bearer_failure(response, "token_invalid")
    assert "server_time" not in body
    assert body["detail"] == "The token is not valid: its signature does not verify."


@pytest.mark.django_db
def test_expired_token_with_forged_claims_is_token_invalid(api_client, user, access_token, frozen):
    """A forged token (other key) whose exp is in the past: the signature fails first."""
    payload = claims(access_token(user))
    forged = jwt.encode(payload, "another-signing-key-" * 3, algorithm="HS256")
    frozen.shift(timedelta(hours=2))

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + forged)

    _bearer_failure(response, "token_invalid")


@pytest.fixture
def jwt_audience(settings, monkeypatch) -> str:
    """SIMPLE_JWT["AUDIENCE"] set.  simplejwt rebinds its api_settings on setting_changed but
    builds ``state.token_backend`` once at import, so the backend is rebuilt here from the
    reloaded settings (simplejwt #58)."""
    import rest_framework_simplejwt.settings as jwt_settings_module

    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "AUDIENCE": "auth401-tests"}
    s = jwt_settings_module.api_settings
    assert s.AUDIENCE == "auth401-tests"
    backend = TokenBackend(
        s.ALGORITHM,
        s.SIGNING_KEY,
        s.VERIFYING_KEY,
        s.AUDIENCE,
        s.ISSUER,
        s.JWK_URL,
        s.LEEWAY,
        s.JSON_ENCODER,
    )
    monkeypatch.setattr(jwt_state, "token_backend", backend)
    return "auth401-tests"


@pytest.mark.django_db
def test_wrong_audience_is_token_invalid(api_client, user, access_token, jwt_audience):
    good = access_token(user)
    assert claims(good)["aud"] == jwt_audience
    other = jwt.encode(
        {**claims(good), "aud": "someone-else"}, django_settings.SECRET_KEY, algorithm="HS256"
    )
    missing = jwt.encode(
        {k: v for k, v in claims(good).items() if k != "aud"},
        django_settings.SECRET_KEY,
        algorithm="HS256",
    )

    ok = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + good)
    wrong = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + other)
    absent = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + missing)

    assert ok.status_code == 200, ok.content
    body = _bearer_failure(wrong, "token_invalid")
    assert body["detail"] == "The token is not valid: it is for another audience."
    _bearer_failure(absent, "token_invalid")


@pytest.mark.django_db
def test_unknown_drf_token_is_credentials_invalid(api_client, user):
    Token.objects.create(user=user)

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Token " + "0" * 40)

    body = assert_failure(
        response, 401, "credentials_invalid", www_authenticate=challenge_header(DEFAULT_CHALLENGES)
    )
    assert body["detail"] == "Invalid username, password or token."


# --- 401 stays 401 whatever the order of authentication classes ----------------------------

SESSION = 'Session realm="api"'
BASIC = 'Basic realm="api", charset="UTF-8"'
BEARER = 'Bearer realm="api"'
TOKEN = 'Token realm="api"'

#: view -> its challenges, in the view's class order (Session only where it is alone)
ORDER_VIEWS = {
    "session-first": [BASIC, BEARER],
    "session-only": [SESSION],
    "basic-only": [BASIC],
    "jwt-only": [BEARER],
    "token-first": [TOKEN, BEARER],
}

#: credentials kind -> view -> expected code
ORDER_CODES = {
    "none": dict.fromkeys(ORDER_VIEWS, "credentials_missing"),
    "bad-basic": {
        "session-first": "credentials_invalid",
        "session-only": "scheme_unsupported",
        "basic-only": "credentials_invalid",
        "jwt-only": "scheme_unsupported",
        "token-first": "scheme_unsupported",
    },
    "bad-bearer": {
        "session-first": "token_invalid",
        "session-only": "scheme_unsupported",
        "basic-only": "scheme_unsupported",
        "jwt-only": "token_invalid",
        "token-first": "token_invalid",
    },
    "bad-token": {
        "session-first": "scheme_unsupported",
        "session-only": "scheme_unsupported",
        "basic-only": "scheme_unsupported",
        "jwt-only": "scheme_unsupported",
        "token-first": "credentials_invalid",
    },
    "stale-session": {
        "session-first": "session_expired",
        "session-only": "session_expired",
        "basic-only": "credentials_missing",
        "jwt-only": "credentials_missing",
        "token-first": "credentials_missing",
    },
}


def _send(client: APIClient, path: str, kind: str) -> Any:
    if kind == "bad-basic":
        return client.get(path, HTTP_AUTHORIZATION=basic("alice", "wrong-password"))
    if kind == "bad-bearer":
        return client.get(path, HTTP_AUTHORIZATION="Bearer abc.def.ghi")
    if kind == "bad-token":
        return client.get(path, HTTP_AUTHORIZATION="Token " + "0" * 40)
    if kind == "stale-session":
        client.cookies[django_settings.SESSION_COOKIE_NAME] = "no-such-session-key"
    return client.get(path)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(ORDER_CODES))
@pytest.mark.parametrize("view", list(ORDER_VIEWS))
def test_401_whatever_the_order_of_authentication_classes(api_client, user, view, kind):
    response = _send(api_client, f"/api/order/{view}/", kind)

    code = ORDER_CODES[kind][view]
    body = assert_failure(response, 401, code)
    bearer_failed = code == "token_invalid"
    expected = challenge_header(
        ORDER_VIEWS[view], "invalid_token" if bearer_failed else None, body["detail"]
    )
    assert response["WWW-Authenticate"] == expected
    if bearer_failed:
        assert response["WWW-Authenticate"].count("error=") == 1


@pytest.mark.django_db
def test_session_first_view_is_not_downgraded_to_403(api_client):
    """DRF asks only the first class for a challenge; Session first used to mean 403."""
    response = api_client.get("/api/order/session-first/")

    assert_failure(
        response,
        401,
        "credentials_missing",
        www_authenticate='Basic realm="api", charset="UTF-8", Bearer realm="api"',
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("view", "names"),
    [
        pytest.param("session-first", ["session cookie", "Basic", "Bearer"]),
        pytest.param("session-only", ["session cookie"]),
        pytest.param("basic-only", ["Basic"]),
        pytest.param("jwt-only", ["Bearer"]),
        pytest.param("token-first", ["Token", "Bearer"]),
    ],
)
def test_hints_name_every_accepted_scheme_readably(api_client, view, names):
    missing = assert_failure(api_client.get(f"/api/order/{view}/"), 401, "credentials_missing")
    unsupported = assert_failure(
        api_client.get(f"/api/order/{view}/", HTTP_AUTHORIZATION="Digest x"),
        401,
        "scheme_unsupported",
    )

    for hint in (missing["hint"], unsupported["hint"]):
        for name in names:
            assert name in hint
        assert "(or " not in hint
        assert ": or " not in hint


@pytest.mark.django_db
def test_session_only_hint_does_not_point_to_the_authorization_header(api_client):
    body = assert_failure(api_client.get("/api/order/session-only/"), 401, "credentials_missing")

    assert "session cookie" in body["hint"]
    assert "Authorization header" not in body["hint"]


# --- query counts ---------------------------------------------------------------------------

factory = APIRequestFactory()


def _drf_request(header: str | None = None, session_key: str | None = None) -> Request:
    """A DRF Request as the middleware stack leaves it (session loaded lazily, lazy user)."""
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    django_request = factory.get("/api/me/", **extra)
    if session_key:
        django_request.COOKIES[django_settings.SESSION_COOKIE_NAME] = session_key
    SessionMiddleware(lambda request: None).process_request(django_request)
    AuthenticationMiddleware(lambda request: None).process_request(django_request)
    return Request(django_request)


def _queries(authenticator: Any, request: Request) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as captured:
        result = authenticator.authenticate(request)
    return len(captured.captured_queries), result


#: the lockout's failure counters (database store); Redis keeps them out of the database
COUNTER_TABLE = "auth401_failurecounter"
SAVEPOINT = re.compile(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.I)


def _split(captured: CaptureQueriesContext) -> tuple[int, int, int]:
    """(queries of the authentication itself, statements on the lockout counter table,
    savepoint statements)."""
    sqls = [q["sql"] for q in captured.captured_queries]
    counter = sum(COUNTER_TABLE in sql for sql in sqls)
    savepoints = sum(bool(SAVEPOINT.match(sql)) for sql in sqls)
    return len(sqls) - counter - savepoints, counter, savepoints


def _redis_counters() -> bool:
    return django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache") and (
        getattr(django_settings, "AUTH401", {}).get("COUNTER_STORE", "auto") == "auto"
    )


def _credentials(kind: str, user: Any) -> dict[str, str]:
    if kind == "jwt":
        from rest_framework_simplejwt.tokens import AccessToken

        return {"header": "Bearer " + str(AccessToken.for_user(user))}
    if kind == "token":
        return {"header": "Token " + Token.objects.create(user=user).key}
    if kind == "basic":
        return {"header": basic(user.get_username(), PASSWORD)}
    client = APIClient()
    client.force_login(user)
    return {"session_key": client.cookies[django_settings.SESSION_COOKIE_NAME].value}


CLASS_PAIRS = {
    "jwt": (jwt_authentication.JWTAuthentication, auth401_authentication.JWTAuthentication),
    "token": (drf_authentication.TokenAuthentication, auth401_authentication.TokenAuthentication),
    "basic": (drf_authentication.BasicAuthentication, auth401_authentication.BasicAuthentication),
    "session": (
        drf_authentication.SessionAuthentication,
        auth401_authentication.SessionAuthentication,
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("with_status_row", [False, True], ids=["no-status-row", "status-row"])
@pytest.mark.parametrize("kind", list(CLASS_PAIRS))
def test_same_number_of_queries_as_the_upstream_class(
    user, kind, with_status_row, frozen, django_assert_max_num_queries
):
    if with_status_row:
        accounts.lock(user)
        frozen.shift(2)
        accounts.unlock(user)
        frozen.shift(2)
        user.refresh_from_db()
        assert user.auth401_status.state == "active"
    credentials = _credentials(kind, user)
    upstream, ours = CLASS_PAIRS[kind]

    if kind == "basic":
        with override_settings(
            AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"]
        ):
            expected, upstream_result = _queries(upstream(), _drf_request(**credentials))
    else:
        expected, upstream_result = _queries(upstream(), _drf_request(**credentials))
    assert upstream_result is not None and upstream_result[0].pk == user.pk

    # Basic logins also take and give back a lockout slot: on the database counter store one
    # upsert and one update on the counter table, on Redis none; inside a transaction (the
    # test's, or ATOMIC_REQUESTS) each of the two operations may add a savepoint pair.
    counter_budget, savepoint_budget = (2, 4) if kind == "basic" else (0, 0)
    request = _drf_request(**credentials)
    with (
        django_assert_max_num_queries(expected + counter_budget + savepoint_budget),
        CaptureQueriesContext(connection) as captured,
    ):
        result = ours().authenticate(request)
    assert result is not None and result[0].pk == user.pk
    own, counter, savepoints = _split(captured)
    assert own == expected
    assert counter <= counter_budget
    assert savepoints <= savepoint_budget
    if _redis_counters():
        assert counter == 0


@pytest.mark.django_db
def test_basic_with_redis_counters_adds_no_database_statement(user, django_assert_num_queries):
    if not _redis_counters():
        pytest.skip("the failure counters are in the database (no REDIS_URL)")
    header = basic(user.get_username(), PASSWORD)
    with override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"]):
        expected, _ = _queries(drf_authentication.BasicAuthentication(), _drf_request(header))

    request = _drf_request(header)
    with django_assert_num_queries(expected):
        result = auth401_authentication.BasicAuthentication().authenticate(request)
    assert result is not None and result[0].pk == user.pk


@pytest.mark.django_db
def test_session_logged_in_through_model_backend_costs_no_extra_query(
    user, django_assert_num_queries
):
    client = APIClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session_key = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    expected, _ = _queries(
        drf_authentication.SessionAuthentication(), _drf_request(session_key=session_key)
    )
    request = _drf_request(session_key=session_key)
    with django_assert_num_queries(expected):
        result = auth401_authentication.SessionAuthentication().authenticate(request)
    assert result is not None and result[0].pk == user.pk


@pytest.mark.django_db
def test_full_request_with_valid_jwt_stays_cheap(
    api_client, user, access_token, django_assert_max_num_queries
):
    token = access_token(user)

    with django_assert_max_num_queries(1):
        response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + token)

    assert response.status_code == 200, response.content


# --- AllowAny ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_allow_any_answers_without_credentials(api_client):
    response = api_client.get("/api/public/")

    assert response.status_code == 200, response.content
    assert response.json() == {"user": None}
    assert response.has_header("X-Request-ID")


@pytest.mark.django_db
def test_allow_any_ignores_a_stale_session_cookie(api_client):
    api_client.cookies[django_settings.SESSION_COOKIE_NAME] = "no-such-session-key"

    response = api_client.get("/api/public/")

    assert response.status_code == 200, response.content
    assert response.json() == {"user": None}


@pytest.mark.django_db
def test_allow_any_still_rejects_a_wrong_basic_password(api_client, user):
    response = api_client.get("/api/public/", HTTP_AUTHORIZATION=basic("alice", "wrong-password"))

    assert_failure(
        response, 401, "credentials_invalid", www_authenticate=challenge_header(DEFAULT_CHALLENGES)
    )


# --- account state: disclosed only to callers with valid credentials --------------------------


@pytest.mark.django_db
def test_suspended_user_with_wrong_password_gets_credentials_invalid(api_client, account_factory):
    suspended = account_factory("suspended")

    response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic(suspended.username, "wrong-password")
    )

    assert_failure(
        response, 401, "credentials_invalid", www_authenticate=challenge_header(DEFAULT_CHALLENGES)
    )


@pytest.mark.django_db
def test_suspended_user_with_right_password_gets_account_suspended(api_client, account_factory):
    suspended = account_factory("suspended")

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(suspended.username, PASSWORD))

    body = assert_failure(response, 403, "account_suspended")
    assert body["detail"] == "This account is suspended."


@pytest.mark.django_db
def test_suspended_user_with_jwt_gets_account_suspended(
    api_client, account_factory, frozen, access_token
):
    suspended = account_factory("suspended")
    frozen.shift(2)
    token = access_token(suspended)  # issued after the suspension: not merely revoked

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + token)

    assert_failure(response, 403, "account_suspended")


@pytest.mark.django_db
def test_inactive_user_with_right_password_gets_account_inactive(api_client, account_factory):
    inactive = account_factory("inactive")

    right = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(inactive.username, PASSWORD))
    wrong = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(inactive.username, "wrong"))

    body = assert_failure(right, 403, "account_inactive")
    assert body["detail"] == "This account is inactive."
    assert_failure(wrong, 401, "credentials_invalid")


@pytest.mark.django_db
def test_unknown_user_gets_credentials_invalid(api_client, user):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("nobody", PASSWORD))

    assert_failure(
        response, 401, "credentials_invalid", www_authenticate=challenge_header(DEFAULT_CHALLENGES)
    )


# --- revocation ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_issued_before_suspension_is_revoked_after_reinstatement(
    api_client, user, access_token, frozen
):
    before = access_token(user)
    frozen.shift(2)
    accounts.suspend(user)
    frozen.shift(2)
    accounts.reinstate(user)
    frozen.shift(2)
    after = access_token(user)

    old = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + before)
    new = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + after)

    body = _bearer_failure(old, "token_revoked")
    assert body["detail"] == "The token has been revoked."
    assert new.status_code == 200, new.content
    assert new.json()["username"] == "alice"


@pytest.mark.django_db
def test_drf_token_created_before_suspension_is_revoked(api_client, user, frozen):
    key = Token.objects.create(user=user).key
    frozen.shift(2)
    accounts.suspend(user)
    frozen.shift(2)
    accounts.reinstate(user)

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Token " + key)

    assert_failure(response, 401, "token_revoked")


@pytest.mark.django_db
def test_token_issued_before_an_admin_lock_is_locked_while_it_lasts_then_revoked(
    api_client, user, access_token, frozen
):
    """What the catalogue's token_revoked row says: during an admin lock every token gets
    account_locked; once it ends, the tokens issued before it are revoked."""
    before = access_token(user)
    frozen.shift(2)
    accounts.lock(user, reason="phishing report")
    during = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + before)
    frozen.shift(2)
    accounts.unlock(user)
    frozen.shift(2)
    after_unlock = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + before)
    fresh = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + access_token(user))

    assert_failure(during, 403, "account_locked")
    _bearer_failure(after_unlock, "token_revoked")
    assert fresh.status_code == 200, fresh.content


@pytest.mark.django_db
def test_password_change_revokes_older_jwts(api_client, user, jwt_pair, frozen):
    access, refresh = jwt_pair(user)
    frozen.shift(2)
    user.set_password("a-new-password-2")
    user.save()
    frozen.shift(2)
    new_access, new_refresh = jwt_pair(user)

    old_access = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + access)
    old_refresh = api_client.post("/api/token/refresh/", {"refresh": refresh}, format="json")
    fresh = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + new_access)
    fresh_refresh = api_client.post("/api/token/refresh/", {"refresh": new_refresh}, format="json")

    _bearer_failure(old_access, "token_revoked")
    _bearer_failure(old_refresh, "token_revoked")
    assert fresh.status_code == 200, fresh.content
    assert fresh_refresh.status_code == 200, fresh_refresh.content
    assert set(fresh_refresh.json()) >= {"access"}


@pytest.mark.django_db
def test_saving_the_user_without_a_password_change_revokes_nothing(
    api_client, user, access_token, frozen
):
    token = access_token(user)
    frozen.shift(2)
    user.first_name = "Alice"
    user.save()

    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Bearer " + token)

    assert response.status_code == 200, response.content


# -- tokens without a usable iat: issued at the epoch for revocation ----------------------------


def _token_without_iat(user: Any, token_type: str, iat: Any = None) -> str:
    """A token signed with the real key whose ``iat`` is absent (``iat=None``) or unusable."""
    now = int(datetime.now(UTC).timestamp())
    payload: dict[str, Any] = {
        "token_type": token_type,
        "exp": now + 300,
        "jti": f"no-iat-{token_type}-{iat!r}",
        "user_id": str(user.pk),
    }
    if iat is not None:
        payload["iat"] = iat
    return jwt.encode(payload, django_settings.SECRET_KEY, algorithm="HS256")


@pytest.mark.django_db
@pytest.mark.parametrize("iat", [None, True], ids=["absent", "bool"])  # PyJWT reads True as 1
def test_token_without_usable_iat_is_revoked_by_a_later_admin_lock(user, api_client, iat):
    token = _token_without_iat(user, "access", iat)
    header = f"Bearer {token}"
    assert api_client.get("/api/me/", HTTP_AUTHORIZATION=header).status_code == 200
    accounts.lock(user)
    accounts.unlock(user)
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=header)
    body = assert_failure(response, 401, "token_revoked")
    assert body["detail"] == "The token has been revoked."

    refresh = _token_without_iat(user, "refresh", iat)
    response = api_client.post("/api/token/refresh/", {"refresh": refresh}, format="json")
    assert_failure(response, 401, "token_revoked")


@pytest.mark.django_db
def test_token_without_iat_is_revoked_by_a_later_password_change(user, api_client):
    token = _token_without_iat(user, "access")
    header = f"Bearer {token}"
    assert api_client.get("/api/me/", HTTP_AUTHORIZATION=header).status_code == 200
    user.set_password("another-horse-2")
    user.save()
    assert_failure(api_client.get("/api/me/", HTTP_AUTHORIZATION=header), 401, "token_revoked")


@pytest.mark.django_db
def test_token_without_iat_stays_valid_without_any_revocation(user, api_client):
    """The epoch only matters against a lock or password change: nothing else refuses it."""
    token = _token_without_iat(user, "access")
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": "alice",
        "email": "",
        "is_staff": False,
        "auth": "JWTAuthentication",
    }


@pytest.mark.django_db
def test_nul_in_basic_username_and_token(user, api_client):
    header = "Basic " + base64.b64encode(b"ali\x00ce:wrong").decode()
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=header)
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION="Token abc\x00def")
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
