"""A JSON parser that answers 400 for bodies DRF's own cannot take safely.

DRF's ``JSONParser`` hands the body to Python's ``json``, whose decoder recurses once per level
of nesting: about a thousand ``[`` (2 KB) raise ``RecursionError``, which DRF does not catch (a
500), and a few hundred levels that do parse can still overflow later, when the browsable API
renders the submitted data back.  ``JSONParser`` here refuses nesting deeper than
``max_depth`` and bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's own limit for form
bodies) before anything else reads them::

    REST_FRAMEWORK = {
        "DEFAULT_PARSER_CLASSES": [
            "auth401.parsers.JSONParser",
            "rest_framework.parsers.FormParser",
            "rest_framework.parsers.MultiPartParser",
        ],
        ...
    }

Without it, ``auth401.handlers.exception_handler`` still answers a parser's ``RecursionError``
as a 400 (``raised_by_parser``), so simplejwt's token views never answer a 500 for it.
"""

from __future__ import annotations

import io
import re
import traceback
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: a JSON string (its brackets are text, not nesting)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")

TOO_DEEP = "JSON parse error - the body is nested too deeply"


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` (already known to parse) nests arrays and objects deeper than
    ``limit``; at most ``limit`` passes of C-speed substitutions, however long the text."""
    if len(text) <= 2 * limit:
        return False  # too short to nest that deep
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= 2 * limit:
        return False
    for _ in range(limit):
        if not brackets:
            return False
        brackets = _INNERMOST.sub("", brackets)  # one level less everywhere
    return bool(brackets)


class JSONParser(parsers.JSONParser):
    """DRF's ``JSONParser``, bounded: nesting deeper than ``max_depth`` is a ``ParseError``
    (400), and a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is ``RequestDataTooBig`` (400, as
    Django answers it for form bodies)."""

    #: deepest nesting of arrays and objects accepted (a subclass may change it)
    max_depth = 64

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        encoding = text_encoding(parser_context or {})
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if nesting_exceeds(body.decode(encoding, "replace"), self.max_depth):
            raise ParseError(TOO_DEEP)
        return data


def text_encoding(parser_context: Any) -> str:
    """The body's charset, when it is a text encoding.  ``codecs.lookup()`` also resolves
    bytes-to-bytes codecs (``bz2_codec``), through which a small body expands without bound
    (DRF refuses them itself only from 3.18 on)."""
    encoding = parser_context.get("encoding") or settings.DEFAULT_CHARSET
    try:
        "".encode(encoding)
    except (LookupError, UnicodeError):
        raise ParseError(f"Unsupported charset {encoding[:40]!r} in the Content-Type.") from None
    return str(encoding)


def raised_by_parser(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside a DRF parser's ``parse()`` (a frame whose ``self`` is
    a ``BaseParser``): an answer to the body, not a fault of the view."""
    return any(
        isinstance(frame.f_locals.get("self"), parsers.BaseParser)
        for frame, _line in traceback.walk_tb(exc.__traceback__)
    )


def too_deep() -> ParseError:
    return ParseError(TOO_DEEP)
