"""The reason-code catalogue, as data.

One ``Reason`` per code drives the response body, the headers, the README's code table and
the OpenAPI description.  Nothing else in auth401 branches on a particular code: modules ask a
``Reason`` for what they need (its status, its RFC 6750 ``error`` value, whether it carries
``retry_after`` or ``server_time``, whether it discloses the state of an account).

``detail`` and ``hint`` are lazily translated templates; their ``{placeholders}`` are filled
from the failure's parameters at render time.  ``code`` is never translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

#: Sentinel status of ``account_locked``: read ``AUTH401["LOCKOUT_STATUS_CODE"]``.
LOCKOUT_STATUS = 0


@dataclass(frozen=True)
class Reason:
    code: str
    status: int
    detail: Promise
    hint: Promise
    when: str
    #: RFC 6750 ``error`` parameter for the Bearer challenge, when the Bearer scheme failed.
    bearer_error: str | None = None
    #: optional body members this reason carries: ``retry_after``, ``server_time``.
    extras: frozenset[str] = field(default_factory=frozenset)
    #: True for codes that tell whether an account exists or what state it is in; they are
    #: replaced by ``credentials_invalid`` when ``DISCLOSE_ACCOUNT_STATE`` is False.
    discloses_account: bool = False

    def status_code(self) -> int:
        if self.status == LOCKOUT_STATUS:
            from .conf import app_settings

            return int(app_settings.LOCKOUT_STATUS_CODE)
        return self.status

    def title(self) -> str:
        return HTTPStatus(self.status_code()).phrase


#: (id of a lazy text, language) -> (the lazy text, its translation); bounded
_TRANSLATED: dict[tuple[int, str | None], tuple[Any, str]] = {}


def translated(text: Any, language: str | None = None) -> str:
    """``str(text)``, remembered per language for the catalogue's lazy texts: a failure
    renders several of them, and each ``gettext`` walks the translation catalogues.
    ``language``: the active language when the caller has already read it (never another)."""
    if not isinstance(text, Promise):
        return str(text)
    key = (id(text), language or translation.get_language())
    hit = _TRANSLATED.get(key)
    if hit is not None and hit[0] is text:
        return hit[1]
    value = str(text)
    if len(_TRANSLATED) < 4096:
        _TRANSLATED[key] = (text, value)
    return value


_TIME = frozenset({"server_time"})

#: ``{header_note}`` of ``credentials_missing``, given when the view accepts a header scheme
HEADER_NOTE = _(
    " If you did send an Authorization header, a proxy or web server in front of the "
    "application may have removed it: configure it to pass the header through."
)

REASONS: tuple[Reason, ...] = (
    Reason(
        "credentials_missing",
        401,
        _("Authentication credentials were not provided."),
        _("Authenticate with {schemes}.{header_note}"),
        "No credentials at all (the hint names the accepted schemes, and that a proxy or "
        "server may strip `Authorization`).",
    ),
    Reason(
        "authorization_malformed",
        401,
        _("The Authorization header could not be parsed: {problem}."),
        _(
            "Send exactly 'Authorization: <scheme> <credentials>' with one space, for example "
            "'Bearer <token>' or 'Basic <base64 of username:password in UTF-8>'."
        ),
        "`Authorization` present but unparsable (bad base64, no token, extra spaces, bad UTF-8).",
        bearer_error="invalid_request",
    ),
    Reason(
        "scheme_unsupported",
        401,
        _("The authentication scheme '{offered}' is not accepted here."),
        _("Authenticate with one of the accepted schemes: {schemes}."),
        "A scheme this view does not accept (e.g. `Digest`, or `Bearer` where only Basic is on).",
    ),
    Reason(
        "credentials_invalid",
        401,
        _("Invalid username, password or token."),
        _(
            "Check the username and password, or the API token, and try again. Repeated "
            "failures lock the account for a while."
        ),
        "Wrong username or password, unknown user, unknown API token.",
    ),
    Reason(
        "token_invalid",
        401,
        _("The token is not valid: {problem}."),
        _(
            "Log in again to get a new token. Do not alter tokens; if this persists, the "
            "client and the server disagree on the signing key, audience or issuer."
        ),
        "JWT with a bad signature, wrong algorithm, `alg: none`, missing claims, wrong "
        "audience/issuer.",
        bearer_error="invalid_token",
    ),
    Reason(
        "token_expired",
        401,
        _("The {token_type} token expired at {expires_at}."),
        _("Get a new access token from the refresh endpoint, or log in again."),
        "JWT past `exp` (with `server_time`); only for a token whose signature verified.",
        bearer_error="invalid_token",
        extras=_TIME,
    ),
    Reason(
        "token_not_yet_valid",
        401,
        _("The token is not valid before {not_before}."),
        _(
            "The clocks disagree: compare server_time with the client's clock and the token "
            "issuer's clock, and synchronise them (NTP)."
        ),
        "JWT before `nbf`/`iat` beyond the leeway: clock skew (with `server_time`).",
        bearer_error="invalid_token",
        extras=_TIME,
    ),
    Reason(
        "token_wrong_type",
        401,
        _("Wrong token type: got '{got}', expected '{expected}'."),
        _(
            "Send the access token in the Authorization header, and the refresh token only to "
            "the refresh endpoint."
        ),
        "A refresh token used as an access token, or the reverse.",
        bearer_error="invalid_token",
    ),
    Reason(
        "token_revoked",
        401,
        _("The token has been revoked."),
        _("Log in again to get a new token."),
        "Blacklisted refresh token, or a token issued before a password change, or before an "
        "admin lock or a suspension that has since ended (while it lasts the answer is "
        "`account_locked` or `account_suspended`; automatic locks revoke no token).",
        bearer_error="invalid_token",
    ),
    Reason(
        "session_expired",
        401,
        _("The session has expired or was ended."),
        _("Log in again to start a new session."),
        "A session cookie that no longer maps to a live session.",
    ),
    Reason(
        "password_expired",
        401,
        _("The password has expired."),
        _("Change the password, then log in again."),
        "Right password, older than `PASSWORD_MAX_AGE`.",
        discloses_account=True,
    ),
    Reason(
        "account_locked",
        LOCKOUT_STATUS,
        _("This account is locked."),
        _(
            "Try again later (after retry_after seconds, when the answer gives them), or ask "
            "an administrator to unlock the account."
        ),
        "Automatic lock after failures (with `retry_after`), or locked by an admin.",
        extras=frozenset({"retry_after"}),
        discloses_account=True,
    ),
    Reason(
        "address_locked",
        LOCKOUT_STATUS,
        _("Too many failed logins from your network."),
        _(
            "Logins from this network address are blocked for a while (retry_after seconds, "
            "when the answer gives them). Try again later, or ask an administrator to unblock "
            "the address."
        ),
        "The client's address (or network) is locked after `IP_FAILURE_LIMIT` failures or "
        "listed in `ALWAYS_LOCK_NETWORKS` (with `retry_after` when it ends); says nothing "
        "about any account.",
        extras=frozenset({"retry_after"}),
    ),
    Reason(
        "login_busy",
        429,
        _("Too many logins for this account are being checked right now."),
        _("Retry in a second or two (retry_after seconds)."),
        "More password checks for one key are in flight than the limit allows; retry in a "
        "second (`retry_after`); never a lock, never counted.",
        extras=frozenset({"retry_after"}),
    ),
    Reason(
        "lockout_unavailable",
        503,
        _("Logins cannot be checked right now."),
        _(
            "The server cannot count failed logins at the moment, so it checks no password. "
            "Retry after retry_after seconds; tokens and sessions you already have still work."
        ),
        "No counter store answers, so no password is checked (`retry_after`); for real and "
        "unknown names alike; not with `LOCKOUT_FAIL_OPEN`.",
        extras=frozenset({"retry_after"}),
    ),
    Reason(
        "account_suspended",
        403,
        _("This account is suspended."),
        _("Contact support to have the account reinstated."),
        "Suspended by an admin.",
        discloses_account=True,
    ),
    Reason(
        "account_inactive",
        403,
        _("This account is inactive."),
        _("Contact support: the account has been deactivated."),
        "`is_active = False`.",
        discloses_account=True,
    ),
    Reason(
        "permission_denied",
        403,
        _("You do not have permission to perform this action."),
        _("Use an account that has the required permission, or ask an administrator for it."),
        "Authenticated but not allowed.",
        bearer_error="insufficient_scope",
    ),
    Reason(
        "csrf_failed",
        403,
        _("CSRF check failed: {reason}"),
        _(
            "Send the value of the CSRF cookie in the X-CSRFToken header with every unsafe "
            "request, or authenticate with a token instead of the session."
        ),
        "Session-authenticated unsafe request without a valid CSRF token.",
    ),
)

CATALOGUE: dict[str, Reason] = {reason.code: reason for reason in REASONS}

#: What exactly was wrong, for the ``{problem}`` of ``authorization_malformed`` and
#: ``token_invalid`` (translated like the templates they fill).
PROBLEMS: dict[str, Promise] = {
    "no_credentials": _("no credentials after the scheme"),
    "spaces": _("the credentials contain spaces"),
    "not_ascii": _("the credentials are not ASCII"),
    "not_base64": _("the credentials are not valid base64 of 'username:password'"),
    "not_latin1": _("the header has characters outside ISO-8859-1"),
    "token_not_ascii": _("the token is not ASCII"),
    "no_user": _("it names no user"),
    "claim_missing": _("a required claim is missing"),
    "algorithm": _("its algorithm is not allowed"),
    "signature": _("its signature does not verify"),
    "audience": _("it is for another audience"),
    "issuer": _("it is from another issuer"),
    "not_jwt": _("it is not a well-formed JWT"),
    "unverifiable": _("it could not be verified"),
}

#: How hints name the accepted schemes that are not sent in the Authorization header.
COOKIE_SCHEMES: dict[str, Promise] = {"Session": _("a session cookie from logging in")}
SCHEMES_OR = _("{schemes}, or {cookie}")


def markdown_table() -> str:
    """The README's code table, rendered from the catalogue (a test keeps them equal)."""
    from django.utils import translation

    rows = [
        "| code | status | when | what the client should do next |",
        "|---|---|---|---|",
    ]
    with translation.override("en"):
        for r in REASONS:
            status = "`LOCKOUT_STATUS_CODE` (403)" if r.status == LOCKOUT_STATUS else str(r.status)
            hint = str(r.hint).replace("{header_note}", str(HEADER_NOTE))
            hint = re.sub(r"(\{\w+\})", r"`\1`", hint)  # placeholders as code
            rows.append(f"| `{r.code}` | {status} | {r.when} | {hint} |")
    return "\n".join(rows) + "\n"
