"""One exception family for every catalogue reason.

``Auth401Error("token_expired", expires_at=..., token_type="access")`` builds the right DRF
type: codes with status 401 are ``AuthenticationFailed`` (so code that catches DRF's types
keeps working), the others ``PermissionDenied``.

Where auth401 overrides a seam of simplejwt or DRF, it raises the type upstream raises there,
with auth401's reason on top: ``InvalidTokenError`` is simplejwt's ``InvalidToken`` (its
``detail`` is upstream's dict, ``messages`` included), ``TokenAuthenticationFailed`` is
simplejwt's ``AuthenticationFailed``, and ``AuthenticationError`` is DRF's.  Any of them may
carry a 403 code (``account_inactive``: upstream refuses an inactive user with
``AuthenticationFailed``; auth401 answers 403 over HTTP).  ``failure.code`` is always
auth401's code; ``failure.detail`` keeps upstream's structure.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import translation
from rest_framework import exceptions
from rest_framework_simplejwt import exceptions as jwt_exceptions

from .codes import CATALOGUE, Reason, translated


class _Params(dict[str, Any]):
    """Template parameters; a missing one renders empty instead of raising."""

    def __getitem__(self, key: str) -> Any:
        return translated(super().__getitem__(key))

    def __missing__(self, key: str) -> str:
        return ""


class Auth401Error(exceptions.APIException):
    """A failure with a catalogue reason.

    ``scheme`` names the authentication scheme that failed ("Bearer", "Basic", "Token",
    "Session"), so the challenge of that scheme can carry RFC 6750 error parameters.
    ``retry_after`` is in seconds, ``server_time`` an aware datetime; other keyword arguments
    fill the reason's ``detail``/``hint`` templates.  ``detail`` replaces the catalogue text
    (used to keep a view's own permission message).
    """

    reason: Reason
    #: the user the failure is about, set where credentials named one (for the audit row);
    #: absent otherwise, so read it with ``getattr(failure, "user", None)``
    user: Any

    def __new__(cls, code: str, *args: Any, **kwargs: Any) -> Auth401Error:
        if cls is Auth401Error:
            cls = AuthenticationError if CATALOGUE[code].status == 401 else ForbiddenError
        return super().__new__(cls, code)

    def __init__(
        self,
        code: str,
        *,
        scheme: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
        server_time: datetime | None = None,
        **params: Any,
    ) -> None:
        self.reason = CATALOGUE[code]
        self.scheme = scheme
        self.params = _Params(params)
        self.custom_detail = detail
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        self.server_time = server_time
        self._arguments = {
            "scheme": scheme,
            "detail": detail,
            "retry_after": retry_after,
            "server_time": server_time,
            **params,
        }
        super().__init__(**self._upstream_arguments(code))
        self.status_code = self.reason.status_code()

    def _upstream_arguments(self, code: str) -> dict[str, Any]:
        """What the upstream exception class is built with: the text, and the code."""
        return {"detail": self.render_detail(), "code": code}

    def as_type(self, cls: type[Auth401Error], **upstream: Any) -> Auth401Error:
        """This failure as an instance of ``cls`` (one of the upstream-typed classes below),
        with the same code, texts and parameters; ``upstream`` fills simplejwt's detail dict
        (``code=``, ``messages=``).  ``self`` when it already is one and nothing is added."""
        if isinstance(self, cls) and not upstream:
            return self
        arguments = {**self._arguments, **upstream}
        if not issubclass(cls, _UpstreamDetail):
            arguments.pop("upstream_code", None)
            arguments.pop("messages", None)
        other = cls.__new__(cls, self.code)
        # The same texts: rendered once for both (upstream's constructors ask for them).
        other.__dict__["_rendered"] = self.__dict__.setdefault("_rendered", {})
        other.__init__(self.code, **arguments)  # type: ignore[misc]
        if "user" in self.__dict__:
            other.user = self.user
        # The same failure in another type: recorded once, whichever of the two is seen.
        other.origin = self.origin
        return other

    @property
    def event_id(self) -> str:
        """The id of this failure's audit event (shared with the failures ``as_type`` made
        from it): recorded once under it, whichever of them is seen."""
        origin = self.origin
        found = origin.__dict__.get("_event_id")
        if found is None:
            found = origin.__dict__["_event_id"] = uuid.uuid4().hex
        return found

    @event_id.setter
    def event_id(self, value: str) -> None:
        self.origin.__dict__["_event_id"] = value

    @property
    def origin(self) -> Auth401Error:
        """The failure this one was made from by ``as_type`` (itself otherwise)."""
        return self.__dict__.get("_origin", self)

    @origin.setter
    def origin(self, value: Auth401Error) -> None:
        self.__dict__["_origin"] = value

    @property
    def code(self) -> str:
        return self.reason.code

    def render_detail(self) -> str:
        if self.custom_detail is not None:
            return str(self.custom_detail)
        return self._render("detail")

    def render_hint(self) -> str:
        return self._render("hint")

    def _render(self, kind: str) -> str:
        """The reason's ``detail`` or ``hint`` text filled in, once per language (the
        exception, the body and the Bearer challenge each ask)."""
        key = (kind, translation.get_language())
        rendered = self.__dict__.setdefault("_rendered", {})
        text = rendered.get(key)
        if text is None:
            text = translated(getattr(self.reason, kind), key[1]).format_map(self.params)
            rendered[key] = text
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, scheme={self.scheme!r})"


class AuthenticationError(Auth401Error, exceptions.AuthenticationFailed):
    """DRF's ``AuthenticationFailed`` with a catalogue reason."""


class ForbiddenError(Auth401Error, exceptions.PermissionDenied):
    """DRF's ``PermissionDenied`` with a catalogue reason."""


if TYPE_CHECKING:
    _UpstreamBase = Auth401Error
else:  # a mixin at run time: the Auth401Error it is mixed into comes after it in the MRO
    _UpstreamBase = object


class _UpstreamDetail(_UpstreamBase):
    """simplejwt's errors carry ``detail`` as a dict (``detail``, ``code`` and, for
    ``InvalidToken``, ``messages``); these keep it, with auth401's text as its ``detail``
    and upstream's untranslated code as its ``code``."""

    default_code: str

    def __init__(
        self,
        code: str,
        *,
        upstream_code: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._upstream: dict[str, Any] = {"code": upstream_code or self.default_code}
        if messages is not None:
            self._upstream["messages"] = messages
        super().__init__(code, **kwargs)
        self._arguments.update(upstream_code=upstream_code, messages=messages)

    def _upstream_arguments(self, code: str) -> dict[str, Any]:
        text = self.render_detail()
        return {"detail": {"detail": text, **self._upstream}, "code": None}


class TokenAuthenticationFailed(  # type: ignore[misc]  # default_detail: str vs lazy str
    _UpstreamDetail, AuthenticationError, jwt_exceptions.AuthenticationFailed
):
    """simplejwt's ``AuthenticationFailed`` (user not found, inactive, password changed)."""


class InvalidTokenError(TokenAuthenticationFailed, jwt_exceptions.InvalidToken):
    """simplejwt's ``InvalidToken``: a token that did not validate, or names no user."""
