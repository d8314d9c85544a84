"""auth401.parsers: JSON nested deeper than a parser takes, or larger than Django's limit, is a
400 (never a 500) on the token views, configured or not."""

from __future__ import annotations

import json
import logging

import pytest
from rest_framework import parsers as drf_parsers
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from auth401.parsers import TOO_DEEP, JSONParser, nesting_exceeds

pytestmark = pytest.mark.django_db

TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"


def nest(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def assert_parse_error(response, detail=TOO_DEEP):
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"detail": detail}


@pytest.mark.parametrize("path", [TOKEN, REFRESH])
@pytest.mark.parametrize("body", [nest(1000), nest(1000, "dict"), nest(100_000)])
def test_nesting_no_parser_takes_is_a_400(client, caplog, path, body):
    """2 KB of ``[`` made DRF's JSON parser raise RecursionError: a 500."""
    response = client.post(path, body, content_type="application/json")
    assert_parse_error(response)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", [TOKEN, REFRESH])
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_nesting_past_max_depth_is_a_400_before_anything_shows_it(client, path, accept):
    """900 levels parse, but the browsable API rendering the submitted value back overflowed."""
    body = json.dumps({"username": "a", "password": "b", "refresh": "x"})
    body = body[:-1] + ', "deep": ' + nest(900) + "}"
    response = client.post(path, body, content_type="application/json", HTTP_ACCEPT=accept)
    assert response.status_code == 400
    if accept == "application/json":
        assert_parse_error(response)


@pytest.mark.parametrize("path", [TOKEN, REFRESH])
def test_nesting_up_to_max_depth_is_parsed(client, path):
    body = {"username": "nobody", "password": "x", "refresh": "x", "deep": json.loads(nest(63))}
    response = client.post(path, body, content_type="application/json")
    assert response.status_code == 401  # read, then refused: the credentials are wrong
    assert response.json()["code"] in {"credentials_invalid", "token_invalid"}


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"a": "[" * 500, "b": ["]" * 500, "{" * 500]})
    assert not nesting_exceeds(text, 64)
    assert nesting_exceeds(nest(65), 64) and not nesting_exceeds(nest(64), 64)
    assert nesting_exceeds("[" + nest(64, "dict") + "]", 64)
    assert not nesting_exceeds("[" + nest(63, "dict") + "]", 64)
    assert not nesting_exceeds(json.dumps([[1] * 10_000] * 3), 64)


def test_a_body_over_the_upload_limit_is_a_400(client, settings, caplog):
    """As Django answers a form body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``; logged at INFO."""
    caplog.set_level(logging.INFO, logger="auth401")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"username": "a" * 2000, "password": "x"})
    response = client.post(TOKEN, body, content_type="application/json")
    assert response.status_code == 400
    records = [r for r in caplog.records if r.name == "auth401"]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]
    assert "client error RequestDataTooBig on POST /api/token/" in records[0].getMessage()


def test_parser_bounds_a_body_without_a_length(settings):
    """The parser reads at most the limit and one byte, whatever the stream says."""
    import io

    from django.core.exceptions import RequestDataTooBig

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    with pytest.raises(RequestDataTooBig):
        JSONParser().parse(io.BytesIO(b'"' + b"a" * 100 + b'"'), parser_context={})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    assert JSONParser().parse(io.BytesIO(b"[1]"), parser_context={}) == [1]


def _too_deep_for_json(depth: int) -> bool:
    try:
        json.loads(nest(depth))
    except RecursionError:
        return True
    return False


@pytest.mark.parametrize("view", [TokenObtainPairView, TokenRefreshView])
def test_without_the_parser_the_handler_answers_the_recursion_400(view, caplog):
    """A project still on DRF's own JSON parser: the handler answers its RecursionError as the
    ParseError it is (DRF's 400), not a 500."""
    depth = next((d for d in (5000, 100_000, 1_000_000) if _too_deep_for_json(d)), None)
    if depth is None:
        pytest.skip("this Python's json module reads any nesting depth: no RecursionError")
    handler = view.as_view(parser_classes=[drf_parsers.JSONParser])
    request = APIRequestFactory().post("/", nest(depth), content_type="application/json")
    response = handler(request)
    response.render()
    assert response.status_code == 400
    assert json.loads(response.content) == {"detail": TOO_DEEP}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_recursion_error_outside_a_parser_stays_a_500():
    """Only a parser's RecursionError is the client's: a view's own is still a fault."""
    from rest_framework.permissions import AllowAny
    from rest_framework.views import APIView

    class Recursive(APIView):
        permission_classes = [AllowAny]
        authentication_classes = []

        def get(self, request):
            raise RecursionError("a bug")

    with pytest.raises(RecursionError):
        Recursive.as_view()(APIRequestFactory().get("/"))


@pytest.mark.parametrize("charset", ["bz2_codec", "zlib_codec", "rot13"])
def test_a_charset_that_is_no_text_encoding_is_a_400(client, charset):
    """Decoding through a bytes-to-bytes codec would expand a small body without bound."""
    response = client.generic(
        "POST", TOKEN, b'{"username": "a"}', content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 400
    assert "charset" in response.json()["detail"].lower()


def test_a_utf16_body_is_read_in_its_charset(client):
    body = json.dumps({"username": "nobody", "password": "x"}).encode("utf-16")
    response = client.generic("POST", TOKEN, body, content_type="application/json; charset=utf-16")
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
