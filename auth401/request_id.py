"""Request ids (the caller's own `X-Request-ID` when it is sane, else a new one), and the
small readers of the request that the response and audit layers share."""

from __future__ import annotations

import os
import random
import re
from typing import cast

from django.http import HttpRequest

HEADER = "X-Request-ID"
_META_KEY = "HTTP_X_REQUEST_ID"
_ATTRIBUTE = "auth401_request_id"
_SANE = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")

# Request ids correlate log lines, rows and answers; they grant nothing, so they need to be
# unique, not unguessable: a generator seeded from the OS once per process (again after a
# fork, so workers differ) instead of an os.urandom() system call per request.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def new_request_id() -> str:
    return f"{_random.getrandbits(64):016x}"


def http_request(request: object) -> HttpRequest:
    """The Django ``HttpRequest`` behind a DRF ``Request`` (or the request itself)."""
    inner: object = getattr(request, "_request", request)
    return cast(HttpRequest, inner)


#: body fields simplejwt's token views read a token from, in order
TOKEN_FIELDS = ("refresh", "token", "access")


def posted_token(request: object) -> str:
    """A token from a body the view has *already* parsed (simplejwt's token views), else "".
    Never parses a body itself: a failure path must not read uploads or raise ParseError."""
    data = getattr(request, "_full_data", None)  # DRF Request; its Empty marker when unparsed
    if not isinstance(data, dict):
        return ""
    return next((data[f] for f in TOKEN_FIELDS if isinstance(data.get(f), str) and data[f]), "")


def get_request_id(request: object) -> str:
    """The request's id, chosen once per request and kept on the ``HttpRequest``."""
    req = http_request(request)
    request_id: str | None = getattr(req, _ATTRIBUTE, None)
    if request_id is None:
        offered = req.META.get(_META_KEY, "")
        request_id = offered if _SANE.fullmatch(offered) else new_request_id()
        setattr(req, _ATTRIBUTE, request_id)
    return request_id
