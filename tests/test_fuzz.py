"""Property tests: whatever a client sends, the answer keeps the contract (issue 6, item 5).

Fuzzed: the ``Authorization`` header (any scheme-like prefix and any text up to 16 KB, in the
latin-1 range a WSGI server can deliver and beyond it), the JSON and form body of
``POST /api/token/``, ``X-Forwarded-For`` behind a trusted proxy, ``X-Request-ID``, the
username of Basic credentials; tokens signed with the real key carrying any JSON value (lone
surrogates, NUL, numbers of any size, containers) in any claim, on ``/api/me/`` and the refresh
and verify views; nested (to thousands of levels), oversized and odd-typed bodies to the token
views; any lookup and any action selection on the admin lists auth401 registers or extends, and
any credentials on its login forms.  For every answer:

- never a 5xx (the test client re-raises a view's exception, so a crash fails loudly);
- every 401/403 is the contract's JSON body (the contract's members and no others, a
  catalogue code, ``request_id`` equal to ``X-Request-ID``) with ``Cache-Control: no-store``,
  and every 401 carries ``WWW-Authenticate``;
- no header holds CR, LF, a control character or anything outside printable ASCII, nor the
  raw fuzz input where that input holds anything a header could not carry safely;
  ``X-Request-ID`` echoes only a sane value (up to 128 of ``A-Za-z0-9-_.:``);
- a 2xx only for the real credentials;
- every failed login leaves exactly one ``AuthEvent`` row, with clean text, and it says what
  the client got;
- nothing is logged as an unexpected error.

Bounded (``max_examples``) so the file runs in well under 30 s; requests run in autocommit
(``transaction=True``) as they do in production.  ``AUTH401_FUZZ_EXAMPLES=800`` runs the same
properties with that many examples each (about 12,000 requests); the module prints how many
answers it checked, by status.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import string
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from auth401.codes import CATALOGUE
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db(transaction=True)

#: ``AUTH401_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py`` runs the same properties with more
#: examples each (the long run; each example is one request or a few)
EXAMPLES = int(os.environ.get("AUTH401_FUZZ_EXAMPLES") or 30)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

ME = "/api/me/"
TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"
MEMBERS = frozenset({"status", "error", "code", "detail", "hint", "request_id"})
OPTIONAL = frozenset({"retry_after", "server_time", "docs"})
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")
#: what a quoted header parameter may hold (RFC 9110 qdtext without '"' and '\')
HEADER_SAFE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

# -- strategies ---------------------------------------------------------------------------------

#: what a WSGI server can put in a header (PEP 3333: latin-1 decoded bytes)
latin1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=64)
#: beyond it: any code point but surrogates (an ASGI server or a test client can deliver them)
anything = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=64)


def _long(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Up to 16 KB: a short fuzz string repeated."""
    return st.builds(
        lambda text, times: (text * times)[: 16 * 1024],
        base.filter(bool),
        st.integers(min_value=1, max_value=4000),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


text_payload = st.one_of(latin1, anything, _long(latin1), _long(anything))
scheme = st.one_of(
    st.sampled_from(["Basic", "Bearer", "Token", "basic", "BEARER", "tOkEn", "Digest", "JWT", ""]),
    st.text(alphabet=string.ascii_letters + "-_.", max_size=12),
    latin1.map(lambda s: s[:12]),
)
separator = st.sampled_from([" ", "", "  ", "\t", " \t ", "\x00", "\r\n "])
payload = st.one_of(
    text_payload,
    st.binary(max_size=256).map(_b64),  # base64 of any bytes (bad UTF-8, no colon, ...)
    st.tuples(anything, anything).map(lambda up: _b64(f"{up[0]}:{up[1]}".encode())),
    st.lists(st.binary(max_size=48).map(_b64), min_size=1, max_size=4).map(".".join),  # JWT-ish
)
authorization = st.builds(lambda s, sep, p: f"{s}{sep}{p}", scheme, separator, payload)

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), anything, _long(anything)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(anything, inner, max_size=4)
    ),
    max_leaves=10,
)
credential_keys = st.sampled_from(["username", "password", "refresh", "token", "access"])
json_body = st.dictionaries(st.one_of(credential_keys, anything), json_value, max_size=6)
form_body = st.dictionaries(
    st.one_of(credential_keys, latin1.filter(bool)), st.one_of(latin1, anything), max_size=6
)

ip_entry = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:{8080}"),
    st.ip_addresses(v=4).map(lambda a: f"{a}:443"),
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),  # a scoped IPv6 address
    st.sampled_from(["unknown", "", " ", "::ffff:10.0.0.1", "1.2.3.4.5", "_hidden"]),
    latin1,
)
forwarded_for = st.one_of(
    st.lists(ip_entry, max_size=8).map(", ".join),
    st.lists(ip_entry, max_size=8).map(",".join),
    _long(latin1),
)


# -- the answer check ---------------------------------------------------------------------------

#: status -> answers checked in this run (printed at the end of the module: the long run's count)
ANSWERS: Counter[int] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _count_answers():
    yield
    total = sum(ANSWERS.values())
    print(f"\nfuzz: {total} answers checked, by status {dict(sorted(ANSWERS.items()))}")


def _unsafe_for_headers(text: str) -> bool:
    return not HEADER_SAFE.fullmatch(text)


def check_answer(response: Any, *fuzz: str) -> dict[str, Any] | None:
    """The contract's invariants for any answer; the parsed body of a 401/403."""
    ANSWERS[response.status_code] += 1
    assert response.status_code < 500, response.content[:500]
    for name, value in response.items():
        assert PRINTABLE_ASCII.fullmatch(name), name
        assert PRINTABLE_ASCII.fullmatch(value), (name, value)
        for raw in fuzz:
            if len(raw) >= 4 and _unsafe_for_headers(raw):
                assert raw not in value, (name, value)
    request_id = response["X-Request-ID"]
    assert SANE_REQUEST_ID.fullmatch(request_id), request_id
    if response.status_code not in (401, 403):
        return None
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content.decode("utf-8"))  # strict: valid UTF-8
    assert MEMBERS <= set(body) <= MEMBERS | OPTIONAL, body
    assert body["code"] in CATALOGUE, body
    assert body["status"] == response.status_code == CATALOGUE[body["code"]].status_code()
    assert body["request_id"] == request_id
    assert all(isinstance(body[k], str) and body[k] for k in ("error", "detail", "hint"))
    if "retry_after" in body:
        assert response["Retry-After"] == str(body["retry_after"])
    if response.status_code == 401:
        assert response["WWW-Authenticate"]
    else:
        assert not response.has_header("WWW-Authenticate")
    return body


def _normalised(header: str) -> tuple[str, ...]:
    parts = header.split()
    return (parts[0].lower(), *parts[1:]) if parts else ()


@pytest.fixture
def real(user_factory, access_token, auth401_settings):
    """alice with her password, an access token and an API token; limits out of reach so the
    examples keep taking the full path instead of meeting a lock."""
    auth401_settings(FAILURE_LIMIT=10**6, IP_FAILURE_LIMIT=10**6)
    alice = user_factory("alice")
    key = Token.objects.create(user=alice).key
    headers = [basic("alice", PASSWORD), f"Bearer {access_token(alice)}", f"Token {key}"]
    return {"user": alice, "headers": headers, "normalised": {_normalised(h) for h in headers}}


# -- the properties -----------------------------------------------------------------------------


@FUZZ
@given(header=authorization)
def test_authorization_header(real, client, header):
    response = client.get(ME, HTTP_AUTHORIZATION=header)
    check_answer(response, header)
    if 200 <= response.status_code < 300:
        assert _normalised(header) in real["normalised"], header


@pytest.mark.parametrize("spacing", [" ", "  ", "\t", " \t "])
@pytest.mark.parametrize("which", ["basic", "bearer", "token"])
def test_real_credentials_with_any_spacing_succeed(real, client, which, spacing):
    """The counterpart of "2xx only for real credentials": the real ones do get in."""
    header = real["headers"][["basic", "bearer", "token"].index(which)]
    scheme_name, credentials = header.split(" ", 1)
    response = client.get(ME, HTTP_AUTHORIZATION=f"{scheme_name}{spacing}{credentials}")
    check_answer(response)
    assert response.status_code == 200, response.content


@FUZZ
@given(body=json_body, path=st.sampled_from([TOKEN, REFRESH]))
def test_token_endpoint_json_body(real, client, body, path):
    before = AuthEvent.objects.count()
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    answer = check_answer(response, *[v for v in body.values() if isinstance(v, str)])
    if 200 <= response.status_code < 300:
        assert path == TOKEN
        assert (body.get("username"), body.get("password")) == ("alice", PASSWORD)
    if answer is not None:
        assert AuthEvent.objects.count() == before + 1  # one row per failure


@FUZZ
@given(body=form_body)
def test_token_endpoint_form_body(real, client, body):
    response = client.post(TOKEN, data=body)
    check_answer(response, *body.values())
    if 200 <= response.status_code < 300:
        assert (body.get("username"), body.get("password")) == ("alice", PASSWORD)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=512), _long(latin1).map(str.encode)))
def test_token_endpoint_raw_json_bytes(real, client, raw):
    response = client.post(TOKEN, data=raw, content_type="application/json")
    check_answer(response)


@FUZZ
@given(
    header=st.one_of(st.none(), authorization),
    content_type=st.one_of(
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=xyz",
                "multipart/form-data",
                "text/plain",
                "application/json; charset=latin-1",
            ]
        ),
        latin1,
    ),
    raw=st.one_of(st.binary(max_size=512), _long(latin1).map(lambda s: s.encode("latin-1"))),
)
def test_failure_with_any_request_body(real, client, header, content_type, raw):
    """A failed authentication on a view that takes a body: whatever the body and its
    content type, the answer is about the credentials (the body is never parsed for it)."""
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    # generic(): the body goes out as these bytes (post() would re-encode them for a charset)
    response = client.generic("POST", ME, raw, content_type=content_type, **extra)
    check_answer(response, *([header] if header else []))
    if 200 <= response.status_code < 300:
        assert _normalised(header or "") in real["normalised"], header


@FUZZ
@given(forwarded=forwarded_for, wrong=st.booleans())
def test_forwarded_for_behind_trusted_proxy(real, client, auth401_settings, forwarded, wrong):
    auth401_settings(TRUSTED_PROXIES=["127.0.0.0/8"])
    before = AuthEvent.objects.count()
    header = basic("alice", "not-her-password" if wrong else PASSWORD)
    response = client.get(ME, HTTP_AUTHORIZATION=header, HTTP_X_FORWARDED_FOR=forwarded)
    check_answer(response, forwarded)
    if wrong:
        body = json.loads(response.content)
        assert (response.status_code, body["code"]) == (401, "credentials_invalid")
        events = list(AuthEvent.objects.order_by("pk")[before:])
        assert len(events) == 1, f"{len(events)} audit rows for one failure"
    else:
        assert response.status_code == 200


@FUZZ
@given(request_id=st.one_of(latin1, anything, _long(latin1), st.from_regex(SANE_REQUEST_ID)))
def test_request_id(real, client, request_id):
    response = client.get(ME, HTTP_X_REQUEST_ID=request_id)
    body = check_answer(response, request_id)
    assert body is not None and body["code"] == "credentials_missing"
    if SANE_REQUEST_ID.fullmatch(request_id):
        assert response["X-Request-ID"] == request_id
    else:
        assert re.fullmatch(r"[0-9a-f]{16}", response["X-Request-ID"]), response["X-Request-ID"]


@FUZZ
@given(username=st.one_of(anything, _long(anything), latin1), password=anything)
def test_basic_usernames(real, client, username, password):
    header = basic(username, password)
    before = AuthEvent.objects.count()
    response = client.get(ME, HTTP_AUTHORIZATION=header)
    check_answer(response, header, username)
    if 200 <= response.status_code < 300:
        assert (username, password) == ("alice", PASSWORD)
        return
    body = json.loads(response.content)
    assert body["code"] in {"credentials_invalid", "authorization_malformed"}, body
    events = list(AuthEvent.objects.order_by("pk")[before:])
    assert len(events) == 1, f"{len(events)} audit rows for one failure"
    assert len(events[0].username) <= 150
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", events[0].username)


# -- signed tokens with absurd time claims --------------------------------------------------------

#: values a JWT's exp/nbf/iat can hold in JSON: any size and type
claim_value = st.one_of(
    st.integers(),
    st.integers(min_value=10**15, max_value=10**400),
    st.integers(max_value=-(10**15), min_value=-(10**400)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e20, 1e300, -1e300, 253402300800, 2**63, 2**64, -1, 0, 0.5, True, False]),
    st.text(max_size=12),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
TOKEN_CODES = {"token_invalid", "token_expired", "token_not_yet_valid", "token_revoked"}


def signed_token(user: Any, token_type: str, claims: dict[str, Any]) -> str:
    """A token signed with the real key (SIMPLE_JWT's SIGNING_KEY: the SECRET_KEY here)."""
    import time

    import jwt
    from django.conf import settings as django_settings

    now = int(time.time())
    payload = {"token_type": token_type, "exp": now + 300, "iat": now, "jti": "fuzz"}
    payload["user_id"] = str(user.pk)
    payload.update(claims)
    return jwt.encode(payload, django_settings.SECRET_KEY, algorithm="HS256")


@FUZZ
@given(
    claims=st.dictionaries(st.sampled_from(["exp", "nbf", "iat"]), claim_value, min_size=1),
    path=st.sampled_from([ME, REFRESH]),
)
def test_signed_token_with_any_time_claims(real, client, claims, path):
    if path == ME:
        token = signed_token(real["user"], "access", claims)
        response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    else:
        token = signed_token(real["user"], "refresh", claims)
        response = client.post(REFRESH, {"refresh": token}, content_type="application/json")
    body = check_answer(response, token)
    if body is not None:
        assert body["code"] in TOKEN_CODES, (claims, body)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1e20},
        {"exp": 1e300},
        {"exp": 10**40},
        {"exp": 253402300800},
        {"exp": 2**63},
        {"exp": "tomorrow"},
        {"exp": [1]},
        {"exp": True},
        {"nbf": "soon"},
        {"nbf": {"a": 1}},
        {"iat": "yesterday"},
        {"iat": [1]},
    ],
    ids=repr,
)
@pytest.mark.parametrize("path", [ME, REFRESH])
def test_absurd_time_claims_are_token_invalid(real, client, claims, path):
    token_type = "access" if path == ME else "refresh"
    token = signed_token(real["user"], token_type, claims)
    if path == ME:
        response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    else:
        response = client.post(REFRESH, {"refresh": token}, content_type="application/json")
    body = check_answer(response, token)
    assert (response.status_code, body["code"]) == (401, "token_invalid"), body
    assert AuthEvent.objects.filter(code="token_invalid").count() == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"user_id": 1e400},  # an infinite float once read
        {"user_id": -1e400},
        {"user_id": "Infinity"},
        {"user_id": "a\x00b"},
        {"user_id": 10**40},
        {"jti": "a\x00b"},
    ],
    ids=repr,
)
@pytest.mark.parametrize("path", [ME, REFRESH])
def test_absurd_user_and_token_ids_are_token_invalid(real, client, claims, path):
    """A token signed with the real key whose user id or token id no database column holds
    (infinite, a NUL, out of range): a 401, never a 500."""
    token_type = "access" if path == ME else "refresh"
    token = signed_token(real["user"], token_type, claims)
    if path == ME:
        response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    else:
        response = client.post(REFRESH, {"refresh": token}, content_type="application/json")
    body = check_answer(response, token)
    if path == ME and "jti" in claims:
        assert response.status_code == 200  # access tokens are not looked up by id
        return
    assert (response.status_code, body["code"]) == (401, "token_invalid"), body
    assert AuthEvent.objects.filter(code="token_invalid").count() == 1


# -- signed tokens with any JSON value in any claim ------------------------------------------------

#: text of any code point, lone surrogates included (a JSON string can escape one: "\ud800")
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=24)
odd_text = st.sampled_from(
    ["\ud800", "\udfff", "a\x00b", "\x00", "", "\u2028", "\r\n", "access", "refresh", "untyped"]
    + ["ACCESS", " access", "\u00e9" * 40, "j" * 300, '"', "\\", "{}", "null"]
)
any_number = st.one_of(
    st.integers(),
    st.integers(min_value=10**15, max_value=10**4000),  # Python's JSON reads up to 4300 digits
    st.integers(min_value=-(10**4000), max_value=-(10**15)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e300, -1e300, 2**63, 2**64, 253402300800, True, False]),
)
any_scalar = st.one_of(st.none(), any_number, any_text, odd_text)
any_json = st.recursive(
    any_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)
    ),
    max_leaves=6,
)
#: the claims simplejwt, PyJWT and auth401 read, and some they do not
CLAIM_NAMES = ["token_type", "exp", "iat", "nbf", "jti", "user_id", "aud", "iss", "sub"]
CLAIM_NAMES += ["refresh_exp", "auth401", ""]
DROP = object()  # the claim is left out
claims_strategy = st.dictionaries(
    st.one_of(st.sampled_from(CLAIM_NAMES), any_text),
    st.one_of(any_json, st.just(DROP)),
    max_size=4,
)
VERIFY = "/api/token/verify/"


def sign_payload(payload: Any) -> str:
    """Any JSON payload, signed with the real key (not through ``jwt.encode``, which checks
    the claims it is given)."""
    import jwt
    from django.conf import settings as django_settings

    data = json.dumps(payload).encode()
    return jwt.api_jws.encode(data, django_settings.SECRET_KEY, algorithm="HS256")


def base_claims(user: Any, token_type: str) -> dict[str, Any]:
    import time
    import uuid

    now = int(time.time())
    return {
        "token_type": token_type,
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": str(user.pk),
    }


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value (what must not reach a header raw)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    return []


def no_error_logged(caplog: Any) -> None:
    """Nothing logged as an unexpected error (Django's own django.security records stay)."""
    errors = [
        (r.name, r.getMessage()[:200])
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name in ("auth401", "django.request")
    ]
    assert not errors, errors


def check_audit(response: Any, body: dict[str, Any] | None, before: int) -> None:
    """A refused answer leaves one row, and it says what the client got."""
    if body is None:
        return
    rows = list(AuthEvent.objects.order_by("pk").values_list("code", "status_code")[before:])
    assert rows == [(body["code"], response.status_code)], (rows, body)


@FUZZ
@given(
    claims=claims_strategy,
    where=st.sampled_from([ME, REFRESH, VERIFY]),
    rotate=st.booleans(),
    raw_payload=st.one_of(st.none(), any_json),
)
@example(claims={"token_type": "\ud800"}, where=ME, rotate=False, raw_payload=None)
@example(claims={"token_type": "\ud800"}, where=REFRESH, rotate=False, raw_payload=None)
@example(claims={"jti": DROP}, where=REFRESH, rotate=False, raw_payload=None)
@example(claims={"jti": "\ud800"}, where=VERIFY, rotate=True, raw_payload=None)
@example(claims={"user_id": ""}, where=REFRESH, rotate=True, raw_payload=None)
@example(claims={"exp": 10**400}, where=REFRESH, rotate=True, raw_payload=None)
@example(claims={}, where=ME, rotate=False, raw_payload=[1, "\ud800"])
def test_signed_token_with_any_claim_values(
    real, client, settings, caplog, claims, where, rotate, raw_payload
):
    """A token signed with the real key, with every JSON type and value (lone surrogates, NUL,
    numbers of any size, containers) in any claim, or a payload that is not an object: on
    the protected API and the refresh and verify views, never a 5xx; a 401/403 is a catalogue
    body with a safe challenge, its row says what the client got; nothing is logged as an
    unexpected error."""
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "ROTATE_REFRESH_TOKENS": rotate,
        "BLACKLIST_AFTER_ROTATION": rotate,
    }
    caplog.clear()
    token_type = "refresh" if where == REFRESH else "access"
    payload: Any = base_claims(real["user"], token_type)
    for name, value in claims.items():
        if value is DROP:
            payload.pop(name, None)
        else:
            payload[name] = value
    if raw_payload is not None and not isinstance(raw_payload, dict):
        payload = raw_payload  # a signed payload that is no claims object at all
    token = sign_payload(payload)
    before = AuthEvent.objects.count()
    if where == ME:
        response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    else:
        field = "refresh" if where == REFRESH else "token"
        response = client.post(where, {field: token}, content_type="application/json")
    body = check_answer(response, *_strings(payload))
    assert response.status_code in (200, 401, 403), response.content[:300]
    check_audit(response, body, before)
    no_error_logged(caplog)


def nested(depth: int, kind: str) -> str:
    opener, closer = {"list": ("[", "]"), "dict": ('{"a":', "}"), "mixed": ('[{"a":', "}]")}[kind]
    return opener * depth + ("1" if kind != "list" else "") + closer * depth


nested_body = st.builds(
    lambda depth, kind, wrap: (
        json.dumps({"username": "alice", "refresh": "x", "token": "x"})[:-1]
        + f', "x": {nested(depth, kind)}}}'
        if wrap
        else nested(depth, kind)
    ),
    st.one_of(st.integers(min_value=1, max_value=80), st.integers(min_value=80, max_value=3000)),
    st.sampled_from(["list", "dict", "mixed"]),
    st.booleans(),
)
odd_content_type = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-16",
            "application/json; charset=bz2_codec",
            "application/json; charset=nonsense",
            "application/json; charset=latin-1",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-32",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/problem+json",
            "*/*",
            "",
        ]
    ),
    latin1,
)
accept = st.sampled_from([None, "application/json", "text/html", "*/*", "x/y", "\x00"])


@FUZZ
@given(
    body=st.one_of(
        nested_body,
        st.binary(max_size=600),
        st.builds(lambda n, c: c * n, st.integers(4000, 9000), st.sampled_from([b"[", b"a", b"{"])),
        json_body.map(lambda b: json.dumps(b).encode()),
        # any JSON with lone surrogates, NUL and huge numbers, escaped as JSON allows
        st.dictionaries(st.one_of(credential_keys, any_text), any_json, max_size=4).map(
            lambda b: json.dumps(b).encode()
        ),
    ),
    content_type=odd_content_type,
    path=st.sampled_from([TOKEN, REFRESH, VERIFY]),
    accept_header=accept,
)
@example(
    body="[" * 1000 + "]" * 1000, content_type="application/json", path=TOKEN, accept_header=None
)
@example(
    body=nested(900, "list"),
    content_type="application/json",
    path=REFRESH,
    accept_header="text/html",
)
@example(
    body=b"a" * 5000,
    content_type="application/x-www-form-urlencoded",
    path=TOKEN,
    accept_header=None,
)
def test_token_views_any_body(
    real, client, settings, caplog, body, content_type, path, accept_header
):
    """Nested JSON (up to thousands of levels), bodies over the upload limit, any bytes and odd
    content types to the token views: never a 5xx, nothing logged as unexpected; a JSON
    answer's body is JSON."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    caplog.clear()
    raw = body.encode() if isinstance(body, str) else body
    extra = {"HTTP_ACCEPT": accept_header} if accept_header is not None else {}
    before = AuthEvent.objects.count()
    response = client.generic("POST", path, raw, content_type=content_type, **extra)
    answer = check_answer(response)
    assert response.status_code in (200, 400, 401, 403, 406, 415), response.content[:300]
    if response.status_code in (400, 415) and response["Content-Type"] == "application/json":
        assert isinstance(json.loads(response.content), dict)
    check_audit(response, answer, before)
    no_error_logged(caplog)


# -- the admin pages auth401 registers or extends ---------------------------------------------

ADMIN_PAGES = [
    "/admin/auth/user/",
    "/admin/auth401/authevent/",
    "/admin/auth401/accountstatus/",
    "/admin/auth401/authevent/dashboard/",
]
LOOKUP_KEYS = [
    "username", "username__regex", "username__in", "username__startswith", "id", "id__in",
    "last_login__year", "date_joined__date", "is_staff", "groups__id__exact", "q", "o", "p",
    "e", "all", "ip", "ip__in", "ip__startswith", "code", "status", "scheme", "kind", "created",
    "created_at__year", "note__iregex", "user_id", "user__username", "username_normalised",
    "state", "automatic", "reason", "locked_until__year", "user__password__startswith",
    "_facets", "_to_field", "_popup",
]  # fmt: skip
url_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=16)
lookup_value = st.one_of(
    url_text,
    st.sampled_from(
        ["\x00", "a\x00", "(", "[", "(?P<a>x)", "*", "99999999999999999999", "-1", "1.5", "abc"]
        + ["10.0.0.0/8", "::1", "1.2.3.4", "", "0", "1", "True", "9999-12-31", "99999", "-5"]
    ),
    st.integers().map(str),
)
query = st.lists(
    st.tuples(st.one_of(st.sampled_from(LOOKUP_KEYS), url_text), lookup_value), max_size=4
)


def check_admin(response: Any) -> None:
    ANSWERS[response.status_code] += 1
    assert response.status_code in (200, 302, 400, 403, 404), response.status_code


@FUZZ
@given(page=st.sampled_from(ADMIN_PAGES), params=query)
@example(page="/admin/auth/user/", params=[("username", "\x00")])
@example(page="/admin/auth401/authevent/", params=[("created_at__year", "99999")])
@example(page="/admin/auth401/accountstatus/", params=[("user__password__startswith", "x")])
def test_admin_pages_any_query(admin_client, caplog, page, params):
    """NUL, garbage, regular expressions, years and addresses in any lookup of the admin lists
    auth401 registers or extends: an answer or a redirect to one, never a 5xx."""
    caplog.clear()
    from urllib.parse import urlencode

    response = admin_client.get(f"{page}?{urlencode(params)}")
    check_admin(response)
    hops = 0
    while response.status_code == 302 and hops < 2:
        response = admin_client.get(response["Location"])
        check_admin(response)
        hops += 1
    no_error_logged(caplog)


ACTION_PAGES = {
    "/admin/auth/user/": ["auth401_lock", "auth401_unlock", "auth401_suspend", "delete_selected"],
    "/admin/auth401/authevent/": ["export_csv"],
    "/admin/auth401/accountstatus/": ["auth401_unlock", "auth401_reinstate", "auth401_lock"],
}
selection = st.lists(
    st.one_of(
        st.just("PK"),
        st.sampled_from(["abc", "", "1.5", "1\x00", "99999999999999999999", "-1", "0"]),
        url_text,
    ),
    max_size=3,
)


@FUZZ
@given(
    page=st.sampled_from(sorted(ACTION_PAGES)),
    choice=st.integers(0, 3),
    selected=selection,
    extra=st.dictionaries(
        st.sampled_from(["apply", "reason", "select_across", "index", "until", "post"]),
        lookup_value,
        max_size=3,
    ),
)
@example(page="/admin/auth/user/", choice=0, selected=["abc"], extra={})
@example(page="/admin/auth401/authevent/", choice=0, selected=["PK", "x"], extra={})
def test_admin_actions_any_selection(
    admin_client, user_factory, caplog, page, choice, selected, extra
):
    """Any ``_selected_action`` (non-numeric, NUL, out of range) with any action of these
    lists: the action, a warning, or Django's own answer; never a 5xx."""
    caplog.clear()
    bob = get_user_model().objects.filter(username="bob").first() or user_factory("bob")
    actions = ACTION_PAGES[page]
    pk = str(bob.pk)
    if page.endswith("authevent/"):
        pk = str(AuthEvent.objects.create(code="credentials_invalid", status_code=401).pk)
    elif page.endswith("accountstatus/"):
        from auth401.models import AccountStatus

        pk = str(AccountStatus.objects.get_or_create(user=bob)[0].pk)
    data = {
        "action": actions[choice % len(actions)],
        "_selected_action": [pk if s == "PK" else s for s in selected],
        **extra,
    }
    response = admin_client.post(page, data)
    check_admin(response)
    no_error_logged(caplog)


def encodable(text: str) -> bool:
    """Text a form can carry (no lone surrogate: no UTF-8 encodes one)."""
    return text.encode("utf-8", "ignore").decode() == text


@FUZZ
@given(
    path=st.sampled_from(["/admin/login/", "/accounts/login/"]),
    username=st.one_of(
        anything, latin1, odd_text.filter(lambda t: t.encode("utf-8", "ignore").decode() == t)
    ),
    password=st.one_of(anything, st.just(PASSWORD)),
    extra=st.dictionaries(st.sampled_from(["next", "this_is_the_login_form"]), latin1, max_size=2),
)
def test_login_forms_any_credentials(real, client, caplog, path, username, password, extra):
    """The admin's login form auth401 installs and its ``AuthenticationForm``: any username
    and password (NUL, controls, 16 KB) is a form answer or a login, never a 5xx."""
    caplog.clear()
    response = client.post(path, {"username": username, "password": password, **extra})
    check_admin(response)
    if response.status_code == 302:
        assert (username, password, path) == ("alice", PASSWORD, "/accounts/login/")
    no_error_logged(caplog)
