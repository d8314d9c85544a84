"""Property tests: whatever a client sends, the answer keeps the contract (issue 6, item 5).

Fuzzed: the ``Authorization`` header (any scheme-like prefix and any text up to 16 KB, in the
latin-1 range a WSGI server can deliver and beyond it), the JSON and form body of
``POST /api/token/``, ``X-Forwarded-For`` behind a trusted proxy, ``X-Request-ID``, and the
username of Basic credentials.  For every answer:

- never a 5xx (the test client re-raises a view's exception, so a crash fails loudly);
- every 401/403 is the contract's JSON body (the contract's members and no others, a
  catalogue code, ``request_id`` equal to ``X-Request-ID``) with ``Cache-Control: no-store``,
  and every 401 carries ``WWW-Authenticate``;
- no header holds CR, LF, a control character or anything outside printable ASCII, nor the
  raw fuzz input where that input holds anything a header could not carry safely;
  ``X-Request-ID`` echoes only a sane value (up to 128 of ``A-Za-z0-9-_.:``);
- a 2xx only for the real credentials;
- every failed login leaves exactly one ``AuthEvent`` row, with clean text.

Bounded (``max_examples``) so the file runs in well under 30 s; requests run in autocommit
(``transaction=True``) as they do in production.
"""

from __future__ import annotations

import base64
import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from auth401.codes import CATALOGUE
from auth401.models import AuthEvent
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=30,
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


def _unsafe_for_headers(text: str) -> bool:
    return not HEADER_SAFE.fullmatch(text)


def check_answer(response: Any, *fuzz: str) -> dict[str, Any] | None:
    """The contract's invariants for any answer; the parsed body of a 401/403."""
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
    body = json.loads(response.content)
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
