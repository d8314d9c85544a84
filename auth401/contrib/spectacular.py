"""drf-spectacular support: every protected operation documents auth401's 401 and 403 answers.

Install ``django-auth401[openapi]`` (drf-spectacular) and set::

    REST_FRAMEWORK = {
        ...,
        "DEFAULT_SCHEMA_CLASS": "auth401.contrib.spectacular.AutoSchema",
    }

Every operation that authenticates or checks permissions (and simplejwt's token views, which
answer bad credentials with 401) then lists:

- ``401``, ``403`` and ``429`` (``login_busy``; the locks too with ``LOCKOUT_STATUS_CODE =
  429``), each with the codes it can carry and when, and the headers every failure carries;
  on a view with throttles, ``429`` also documents the throttle's answer (DRF's ``Throttled``,
  whose body comes from ``FALLBACK_EXCEPTION_HANDLER``);
- a body referencing the ``Auth401Error`` component (``Auth401Problem`` with
  ``RESPONSE_FORMAT = "problem"``), whose ``code`` is the ``Auth401Code`` enum: exactly the
  catalogue of ``auth401.codes``;
- with ``RESPONSE_FORMAT = "upstream"``, DRF's and simplejwt's own body
  (``Auth401UpstreamError``: ``detail``, and simplejwt's ``code`` and ``messages``), each code
  under the status it is answered with there, and auth401's code in ``X-Auth401-Code``.

simplejwt's token views also document their ``400`` (a refused field, or a body that cannot be
parsed), and their request bodies say ``minLength: 1`` where a blank value is refused.

Responses an operation declares itself (``@extend_schema(responses={403: ...})``) are kept.
A project with its own ``AutoSchema`` subclass mixes in ``Auth401SchemaMixin`` instead.

Importing this module also registers OpenAPI security schemes for auth401's Bearer, Basic and
Session classes, and the schemas of the token serializers (auth401's refresh serializer answers
``access``, and ``refresh`` only with ``ROTATE_REFRESH_TOKENS``): drf-spectacular matches only
DRF's and simplejwt's own classes.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from drf_spectacular.authentication import BasicScheme, SessionScheme
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework.permissions import AllowAny

from auth401.codes import LOCKOUT_STATUS, REASONS
from auth401.conf import app_settings
from auth401.responses import CODE_HEADER, UPSTREAM, upstream_status

ERROR_COMPONENT = "Auth401Error"
PROBLEM_COMPONENT = "Auth401Problem"
CODE_COMPONENT = "Auth401Code"

#: what each status means to a client, before the list of its codes
STATUS_TEXT = {
    401: "Not authenticated: credentials are missing, unreadable, wrong or no longer valid. "
    "Send (new) credentials; `WWW-Authenticate` lists the accepted schemes.",
    403: "Refused: the caller is known (or proved the password) but may not do this, or the "
    "account may not be used. Sending the same credentials again will not help.",
    429: "Too many login attempts at once, or (with `LOCKOUT_STATUS_CODE = 429`) too many "
    "failed logins: retry after `Retry-After` seconds.",
    503: "No password was checked: the failed-login counters cannot be reached right now. "
    "Retry after `Retry-After` seconds; tokens and sessions keep working.",
}

_CODE_REF = {"$ref": f"#/components/schemas/{CODE_COMPONENT}"}
_OPTIONAL_MEMBERS: dict[str, dict[str, Any]] = {
    "retry_after": {
        "type": "integer",
        "minimum": 1,
        "description": "Seconds until a lock ends (locks with an end only); equals Retry-After.",
    },
    "server_time": {
        "type": "string",
        "format": "date-time",
        "description": "The server's clock (UTC), on token time errors: compare it with yours.",
    },
}
_SHARED_MEMBERS: dict[str, dict[str, Any]] = {
    "hint": {"type": "string", "description": "What the caller can do next (translated)."},
    "request_id": {
        "type": "string",
        "description": "Equals the X-Request-ID header: quote it to support.",
    },
}

#: plain Django views are not in the schema; their answers under API_PATH_PREFIXES are these
PLAIN_VIEWS = (
    "Plain Django views under `API_PATH_PREFIXES` (for example `login_required` views) answer "
    "with this body too: 401 `credentials_missing` or `session_expired` when there is no "
    'usable session (their `WWW-Authenticate` is `Session realm="api"`, since a session is '
    "all they accept), 401 `scheme_unsupported` when an `Authorization` header was sent "
    "instead, and 403 `permission_denied` when the view refuses."
)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "auth401's body for every 401 and 403. Build client logic on `code` and "
    "`status`, never on the translated `detail`. " + PLAIN_VIEWS,
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status.", "example": 401},
        "error": {
            "type": "string",
            "description": "The HTTP reason phrase.",
            "example": "Unauthorized",
        },
        "code": _CODE_REF,
        "detail": {"type": "string", "description": "What went wrong (translated)."},
        **_SHARED_MEMBERS,
        **_OPTIONAL_MEMBERS,
        "docs": {
            "type": "string",
            "format": "uri",
            "description": "A page about the code (with the DOCS_URL setting).",
        },
    },
    "required": ["status", "error", "code", "detail", "hint", "request_id"],
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "auth401's body in RFC 9457 form (RESPONSE_FORMAT = 'problem'). " + PLAIN_VIEWS,
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string", "description": "The HTTP reason phrase."},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong (translated)."},
        "instance": {"type": "string", "format": "uri-reference"},
        "code": _CODE_REF,
        **_SHARED_MEMBERS,
        **_OPTIONAL_MEMBERS,
    },
    "required": ["type", "title", "status", "detail", "instance", "code", "hint", "request_id"],
}

VALIDATION_COMPONENT = "Auth401TokenRequestError"
#: the token views' 400 (DRF's default shape, from FALLBACK_EXCEPTION_HANDLER)
VALIDATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The request body was refused: each refused field maps to its messages "
    "(`non_field_errors` for the body as a whole), or `detail` says why the body could not be "
    "parsed. Not an authentication failure: nothing was checked.",
    "properties": {
        "detail": {"type": "string", "description": "Why the body could not be parsed."},
    },
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
VALIDATION_TEXT = (
    "The request body is malformed or a field is missing or blank; fix the request (no "
    "credentials were checked, nothing was counted)."
)


def _standardized(description: str, error: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """drf-standardized-errors' body: ``type`` and a list of exactly one ``error``."""
    return {
        "type": "object",
        "description": description,
        "properties": {
            "type": {"type": "string", "enum": ["client_error"]},
            "errors": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {"type": "object", "properties": error, "required": required},
            },
        },
        "required": ["type", "errors"],
    }


_NULL_ATTR = {"type": "string", "nullable": True, "enum": [None]}

#: a throttle's 429 (DRF's ``Throttled``): auth401 hands it to FALLBACK_EXCEPTION_HANDLER, whose
#: body is documented for the handlers auth401 knows (by dotted path); any other: any body
THROTTLED_TEXT = (
    "A throttle of this operation refused the request (DRF's `Throttled`, code `throttled`): "
    "retry after `Retry-After` seconds. This answer's body is the fallback exception "
    "handler's, not auth401's, and it carries no `Cache-Control: no-store`."
)
THROTTLED_SCHEMAS: dict[str, dict[str, Any]] = {
    "rest_framework.views.exception_handler": {
        "type": "object",
        "description": "DRF's answer to a throttled request.",
        "properties": {"detail": {"type": "string", "description": "Why, and for how long."}},
        "required": ["detail"],
    },
    "drf_standardized_errors.handler.exception_handler": _standardized(
        "drf-standardized-errors' answer to a throttled request.",
        {
            "code": {"type": "string", "enum": ["throttled"]},
            "detail": {"type": "string", "description": "Why, and for how long."},
            "attr": _NULL_ATTR,
        },
        ["code", "detail", "attr"],
    ),
}

STANDARDIZED_COMPONENT = "Auth401StandardizedError"
STANDARDIZED_SCHEMA: dict[str, Any] = _standardized(
    "auth401's body in drf-standardized-errors' shape (RESPONSE_FORMAT = "
    "'standardized_errors'): one error, whose `code` is auth401's. " + PLAIN_VIEWS,
    {
        "code": _CODE_REF,
        "detail": {"type": "string", "description": "What went wrong (translated)."},
        "attr": _NULL_ATTR,
        **_SHARED_MEMBERS,
        **_OPTIONAL_MEMBERS,
        "docs": ERROR_SCHEMA["properties"]["docs"],
    },
    ["code", "detail", "attr", "hint", "request_id"],
)

UPSTREAM_COMPONENT = "Auth401UpstreamError"
UPSTREAM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "DRF's and simplejwt's own body (RESPONSE_FORMAT = 'upstream'), as they "
    "answer without auth401: `detail` (their translated message), and on simplejwt's errors "
    "its `code` (`token_not_valid`, `bad_authorization_header`, `user_not_found`, "
    "`user_inactive`, `password_changed`, `authentication_failed`) and, for a token no token "
    "class accepts, `messages`. auth401's own code is in the `X-Auth401-Code` header. A view "
    "whose first authentication class gives no challenge (a session) answers 403 where others "
    "answer 401, as DRF decides. Plain Django views under `API_PATH_PREFIXES` answer as a "
    "session-only DRF view: 403 with `detail`.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong (translated)."},
        "code": {"type": "string", "description": "simplejwt's code, on its errors only."},
        "messages": {
            "type": "array",
            "description": "simplejwt: why each of AUTH_TOKEN_CLASSES refused the token.",
            "items": {
                "type": "object",
                "properties": {
                    "token_class": {"type": "string"},
                    "token_type": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["detail"],
}

#: RESPONSE_FORMAT -> (media type, component name, schema, where a client reads the code)
FORMATS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "auth401": ("application/json", ERROR_COMPONENT, ERROR_SCHEMA, "`code`"),
    "problem": ("application/problem+json", PROBLEM_COMPONENT, PROBLEM_SCHEMA, "`code`"),
    "standardized_errors": (
        "application/json",
        STANDARDIZED_COMPONENT,
        STANDARDIZED_SCHEMA,
        "`code`",
    ),
    UPSTREAM: ("application/json", UPSTREAM_COMPONENT, UPSTREAM_SCHEMA, f"`{CODE_HEADER}`"),
}

_STRING = {"schema": {"type": "string"}}
HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": {
        **_STRING,
        "description": "One challenge per scheme the operation accepts (RFC 9110, 6750, 7617).",
    },
    "X-Request-ID": {**_STRING, "description": "Equals the body's request_id."},
    CODE_HEADER: {**_STRING, "description": "auth401's code (the Auth401Code enum)."},
    "Cache-Control": {**_STRING, "description": "Always no-store."},
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "On locks with an end: seconds to wait; equals retry_after.",
    },
}


def status_of(code_status: int) -> int:
    return int(app_settings.LOCKOUT_STATUS_CODE) if code_status == LOCKOUT_STATUS else code_status


def answer_status(reason: Any, challenged: bool = True) -> int:
    """The status ``reason`` answers with under current settings; with ``RESPONSE_FORMAT =
    "upstream"``, upstream's, and 403 for a 401 where the first class gives no challenge."""
    status = status_of(reason.status)
    if app_settings.RESPONSE_FORMAT == UPSTREAM:
        status = upstream_status(reason.code, status)
        if status == 401 and not challenged:
            status = 403
    return status


def codes_by_status(challenged: bool = True) -> dict[int, list[Any]]:
    """The catalogue's reasons grouped by the status they answer with under current settings."""
    grouped: dict[int, list[Any]] = {}
    for reason in REASONS:
        grouped.setdefault(answer_status(reason, challenged), []).append(reason)
    return grouped


def code_component() -> ResolvedComponent:
    listing = "\n".join(f"- `{r.code}` ({status_of(r.status)}): {r.when}" for r in REASONS)
    return ResolvedComponent(
        name=CODE_COMPONENT,
        type=ResolvedComponent.SCHEMA,
        object=CODE_COMPONENT,
        schema={
            "type": "string",
            "enum": [r.code for r in REASONS],
            "description": "Why auth401 refused the request; stable across releases.\n\n" + listing,
        },
    )


def describe(status: int, reasons: list[Any], where: str = "`code`") -> str:
    lines = [f"- `{r.code}`: {r.when}" for r in reasons]
    head = STATUS_TEXT.get(status, HTTPStatus(status).phrase)
    return f"{head}\n\n{where} is one of:\n\n" + "\n".join(lines)


if TYPE_CHECKING:
    _SchemaBase = SpectacularAutoSchema
else:  # a mixin at run time: the AutoSchema it is mixed into comes after it in the MRO
    _SchemaBase = object


class Auth401SchemaMixin(_SchemaBase):
    """Adds auth401's 401/403 responses to the operations of a drf-spectacular AutoSchema."""

    def auth401_token_view(self) -> bool:
        """One of simplejwt's token views (obtain, refresh, verify, blacklist)."""
        from rest_framework_simplejwt.views import TokenViewBase

        return isinstance(self.view, TokenViewBase)

    def auth401_protected(self) -> bool:
        """Whether the operation can answer 401/403: it authenticates, checks a permission,
        or is one of simplejwt's token views (their bad credentials are 401s)."""
        if self.auth401_token_view():
            return True
        if self.view.get_authenticators():
            return True
        return any(not isinstance(p, AllowAny) for p in self.view.get_permissions())

    def auth401_challenged(self) -> bool:
        """Whether a 401 of this operation stays 401 under ``RESPONSE_FORMAT = "upstream"``:
        DRF answers 403 when the view's first class gives no challenge (a session)."""
        from auth401.handlers import upstream_authenticate_header

        if self.auth401_token_view():
            return True
        authenticators = self.view.get_authenticators()
        return bool(authenticators) and bool(upstream_authenticate_header(authenticators[0], None))

    def auth401_responses(self) -> dict[str, dict[str, Any]]:
        media_type, name, schema, where = FORMATS[app_settings.RESPONSE_FORMAT]
        self.registry.register_on_missing(code_component())
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.registry.register_on_missing(component)
        responses = {}
        for status, reasons in sorted(codes_by_status(self.auth401_challenged()).items()):
            headers = ["X-Request-ID", CODE_HEADER, "Cache-Control"]
            if status == 401:
                headers.insert(0, "WWW-Authenticate")
            if any("retry_after" in r.extras for r in reasons):
                headers.append("Retry-After")
            responses[str(status)] = {
                "description": describe(status, reasons, where),
                "headers": {h: HEADERS[h] for h in headers},
                "content": {media_type: {"schema": component.ref}},
            }
        return responses

    def auth401_throttled(self) -> bool:
        """Whether the view has throttles (DRF's ``Throttled`` answers 429 then)."""
        return bool(self.view.get_throttles())

    def auth401_with_throttled(self, response: dict[str, Any]) -> dict[str, Any]:
        """``response`` (auth401's 429) that also documents the throttle's 429: the body
        ``FALLBACK_EXCEPTION_HANDLER`` answers it with (any body for a handler not known here)."""
        handler = app_settings.fallback_handler
        dotted = f"{handler.__module__}.{handler.__qualname__}"
        throttled = THROTTLED_SCHEMAS.get(dotted, {"description": "The fallback handler's body."})
        content = dict(response["content"])
        if "application/json" in content:
            ours = content["application/json"]["schema"]
            content["application/json"] = {"schema": {"anyOf": [ours, throttled]}}
        else:
            content["application/json"] = {"schema": throttled}
        return {
            **response,
            "description": f"{response['description']}\n\n{THROTTLED_TEXT}",
            "content": content,
        }

    def _get_response_bodies(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        responses = super()._get_response_bodies(*args, **kwargs)
        direction = kwargs.get("direction", args[0] if args else "response")
        if direction == "response" and self.auth401_protected():
            for status, response in self.auth401_responses().items():
                if status == "429" and self.auth401_throttled():
                    response = self.auth401_with_throttled(response)
                responses.setdefault(status, response)
            if self.auth401_token_view():
                responses.setdefault("400", self.auth401_validation_response())
        return responses

    def auth401_validation_response(self) -> dict[str, Any]:
        component = ResolvedComponent(
            name=VALIDATION_COMPONENT,
            type=ResolvedComponent.SCHEMA,
            object=VALIDATION_COMPONENT,
            schema=VALIDATION_SCHEMA,
        )
        self.registry.register_on_missing(component)
        return {
            "description": VALIDATION_TEXT,
            "content": {"application/json": {"schema": component.ref}},
        }


class AutoSchema(Auth401SchemaMixin, SpectacularAutoSchema):
    """drf-spectacular's AutoSchema with auth401's 401/403 responses."""


# drf-spectacular matches DRF's and simplejwt's own classes exactly (Token also subclasses):
# these make auth401's classes show up as the same security schemes.
class Auth401JWTScheme(SimpleJWTScheme):
    target_class = "auth401.authentication.JWTAuthentication"


class Auth401BasicScheme(BasicScheme):
    target_class = "auth401.authentication.BasicAuthentication"


class Auth401SessionScheme(SessionScheme):
    target_class = "auth401.authentication.SessionAuthentication"


#: what DRF's CharField strips (``str.strip``): a value of only these is blank once trimmed
_SPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: DRF's CharField refuses a NUL (ProhibitNullCharactersValidator) and a blank value
NOT_BLANK = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"


def _token_fields(**fields: dict[str, Any]) -> dict[str, Any]:
    """An object schema of string fields: ``{"name": {"readOnly"|"writeOnly": True}}``.
    Fields a client sends are ``minLength: 1``, hold no NUL and something besides whitespace:
    DRF's ``CharField`` refuses a null character, and a value blank once trimmed, with a 400."""
    properties: dict[str, Any] = {}
    for name, flags in fields.items():
        field: dict[str, Any] = {"type": "string", **flags}
        if not flags.get("readOnly"):
            field.update(minLength=1, pattern=NOT_BLANK)
        properties[name] = field
    return {"type": "object", "properties": properties, "required": sorted(properties)}


class Auth401TokenRefreshSerializerExtension(OpenApiSerializerExtension):
    """auth401's refresh serializer: ``refresh`` in, ``access`` out, and ``refresh`` out too
    only with ``ROTATE_REFRESH_TOKENS`` (read when the schema is built)."""

    target_class = "auth401.serializers.TokenRefreshSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        from rest_framework_simplejwt.settings import api_settings

        rotated = api_settings.ROTATE_REFRESH_TOKENS
        return _token_fields(
            refresh={} if rotated else {"writeOnly": True}, access={"readOnly": True}
        )


class Auth401TokenObtainPairSerializerExtension(OpenApiSerializerExtension):
    """simplejwt's obtain-pair serializer with ``minLength: 1`` on the credentials (it refuses
    blank ones); takes precedence over drf-spectacular's own extension for it."""

    target_class = "rest_framework_simplejwt.serializers.TokenObtainPairSerializer"
    match_subclasses = True
    priority = 1

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return _token_fields(
            **{self.target.username_field: {"writeOnly": True}},
            password={"writeOnly": True},
            access={"readOnly": True},
            refresh={"readOnly": True},
        )


class Auth401TokenVerifySerializerExtension(OpenApiSerializerExtension):
    target_class = "rest_framework_simplejwt.serializers.TokenVerifySerializer"
    match_subclasses = True
    priority = 1

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return _token_fields(token={"writeOnly": True})


class Auth401TokenBlacklistSerializerExtension(OpenApiSerializerExtension):
    target_class = "rest_framework_simplejwt.serializers.TokenBlacklistSerializer"
    match_subclasses = True
    priority = 1

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return _token_fields(refresh={"writeOnly": True})


__all__ = ["AutoSchema", "Auth401SchemaMixin", "ERROR_COMPONENT", "CODE_COMPONENT"]
