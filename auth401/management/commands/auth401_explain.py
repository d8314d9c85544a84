"""``manage.py auth401_explain [- | "<header>"] [--basic USERNAME | --bearer | --token]
[--from IP]``: which code, and why?

Secrets stay out of shell history and ``ps``: with ``-`` the header (or, with ``--basic``,
``--bearer`` or ``--token``, only the password or token) is read from standard input; with no
argument it is asked for at a prompt that does not echo (no terminal and nothing on standard
input: a clear error, exit status 1).  A header given as an argument works too, for headers
without a secret worth keeping.

For a client developer staring at a 401: paste the header, read step by step what the API sees
(the scheme and which of ``DEFAULT_AUTHENTICATION_CLASSES`` takes it, the Basic credentials and
the lockout's counters, the JWT's header, claims and times against the server clock, the
signature, the user and the account state), then the answer's ``detail`` and ``hint``, and
last ``code: <code> (<status>)`` or ``accepted: <username>``.

The verdict is the API's own: Basic asks ``decision.decide(..., dry_run=True)`` (the backend's
steps with read-only counter calls: nothing taken, counted or recorded); Bearer runs the JWT
class's own steps (``get_validated_token``, ``get_user``, ``check_account``); Token runs the
class's ``authenticate_credentials``.  ``--from IP`` is the client's address: its counters,
locks and ``ALWAYS_LOCK_NETWORKS`` count as they would for the API (without it they are not
read).  Session cookies are out of its sight.

It never prints a secret: no password, no token, no signature, no API key (only its
fingerprint, as in the audit trail).
"""

from __future__ import annotations

import base64
import getpass
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, cast

import jwt
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import authentication as drf_authentication
from rest_framework import exceptions as drf_exceptions
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt import settings as simplejwt  # rebound on changes

from auth401 import decision, lockout, responses
from auth401.accounts import cached_status
from auth401.authentication import describe_malformed
from auth401.client_ip import client_ip, parse_ip
from auth401.codes import PROBLEMS
from auth401.conf import app_settings
from auth401.events import clean, fingerprint
from auth401.exceptions import Auth401Error
from auth401.handlers import default_authenticators, failure_for_exception, unauthenticated
from auth401.upstream import PYJWT_REASONS, claim_time, unverified_claims

if TYPE_CHECKING:
    from rest_framework_simplejwt.tokens import Token

PATH = "/api/"  # the request the explanation imagines: a protected API view


def shown(value: Any, limit: int = 40) -> str:
    """A value from the header, safe to print: quoted, escapes for control characters, cut."""
    text = value if isinstance(value, str) else str(value)
    cut = text[:limit]
    return repr(cut) + ("..." if len(text) > limit else "")


def dotted(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def utc(moment: datetime) -> str:
    return responses.iso_utc(moment)


def relative(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    if seconds == 0:
        return "now"
    return f"in {seconds} s" if seconds > 0 else f"{-seconds} s ago"


def leeway() -> timedelta:
    value = simplejwt.api_settings.LEEWAY
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return timedelta(0)


class Explanation:
    """The lines printed so far, and the verdict: a failure, or the accepted user."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self.write = write
        self.failure: Auth401Error | None = None
        self.user: Any = None
        #: the request a login would come in (its client address), None without --from
        self.source: Any = None

    def say(self, text: str) -> None:
        self.write(text)

    def fail(self, failure: Auth401Error) -> None:
        self.failure = failure


def header_schemes(authenticator: Any) -> tuple[str, ...]:
    """The Authorization schemes an authenticator reads; () for the session."""
    if isinstance(authenticator, drf_authentication.SessionAuthentication):
        return ()
    if isinstance(authenticator, jwt_authentication.JWTAuthentication):
        types = simplejwt.api_settings.AUTH_HEADER_TYPES
        return tuple(types) if isinstance(types, list | tuple) else (types,)
    if isinstance(authenticator, drf_authentication.TokenAuthentication):
        return (authenticator.keyword,)
    if isinstance(authenticator, drf_authentication.BasicAuthentication):
        return ("Basic",)
    own = getattr(authenticator, "auth401_schemes", None)
    if own is not None:
        return tuple(own())
    challenge = authenticator.authenticate_header(None) or ""
    return (challenge.split()[0],) if challenge.split() else ()


def as_failure(exc: Exception, request: Any) -> Auth401Error:
    """What auth401's exception handler makes of an exception raised while authenticating."""
    if isinstance(exc, Auth401Error):
        return exc
    return failure_for_exception(exc, {"request": request}) or Auth401Error("credentials_invalid")


def unreadable(ex: Explanation, what: str, exc: Exception, request: Any, header: bytes) -> None:
    failure = as_failure(exc, request)
    problem = failure.params.get("problem") or describe_malformed(header)
    ex.say(f"{what}: cannot be read: {problem}.")
    ex.fail(failure)


# --- Basic -----------------------------------------------------------------------------------


def parse_only(
    ex: Explanation, authenticator: Any, request: Request, header: bytes, capture: Any, what: str
) -> Any:
    """Upstream's header parsing, with the credential check replaced by ``capture``; None
    (and the verdict given) when the header cannot be read."""
    parser = type(authenticator)()
    parser.authenticate_credentials = capture
    try:
        parsed = parser.authenticate(request)
    except (drf_exceptions.AuthenticationFailed, UnicodeError) as exc:
        unreadable(ex, what, exc, request, header)
        return None
    if parsed is None:  # pragma: no cover - the scheme matched, so the class reads it
        ex.fail(unauthenticated(request, []))
    return parsed


def counter_label(key: Any, ip: str | None) -> str:
    address = lockout.address_text(ip) if ip is not None else "?"
    return {
        "ip": f"address {address}",
        "username": "username",
        "username+ip": f"username from {address}",
    }.get(key.kind, key.kind)


def explain_counters(ex: Explanation, keys: list[Any], ip: str | None) -> None:
    """One line per counter the attempt touches (read only)."""
    for key in keys:
        try:
            seen = lockout.peek_key(key)
        except DatabaseError:
            ex.say(f"Counter, {counter_label(key, ip)}: cannot be read (no counter store answers).")
            continue
        lock_seconds = -(-seen.locked_ms // 1000)
        state = f"locked for {lock_seconds} s more" if seen.locked_ms > 0 else "not locked"
        never = "" if key.lockable else "; never locks here"
        ex.say(
            f"Counter, {counter_label(key, ip)}: {seen.failures} of {key.limit} failures in "
            f"the window; {state}{never}."
        )
    if ip is None:
        ex.say("(No --from: the client address's counters are not read; --from IP adds them.)")


#: the counters' kinds, as the output names them
KINDS = {"ip": "address", "username": "username", "username+ip": "username-from-address"}

#: what each refusal of the lock check means, by the trace's outcome
LOCK_CHECK_NOTES = {
    "busy: the in-flight bound is full": "Lockout: failures plus checks in flight already "
    "reach the limit; a real request waits about a second, then gets login_busy.",
    "refused: automatic lock on the account": "Lockout: the account carries an automatic "
    "lock, so the password is not even checked.",
    "refused: no counter store answers": "Lockout: no counter store can count, so password "
    "logins are refused (LOCKOUT_FAIL_OPEN is off).",
}


def explain_basic(ex: Explanation, authenticator: Any, request: Request, header: bytes) -> None:
    parsed = parse_only(
        ex, authenticator, request, header, lambda u, p, request=None: (u, p), "Credentials"
    )
    if parsed is None:
        return
    username, password = parsed
    ex.say("Credentials: valid base64 of 'username:password' in UTF-8.")
    ex.say(f"Username: {shown(username, 64)} (the password is never shown).")
    # The backend's own decision, dry: the same steps, nothing taken, counted or recorded.
    source = ex.source
    ip = client_ip(source) if source is not None else None
    verdict = decision.decide(source, username, password, scheme="Basic", dry_run=True)
    steps = dict(verdict.trace)
    failure = verdict.failure
    if steps.get("lookup", "").startswith("skipped"):
        ex.say(f"Address: {ip} is in ALWAYS_LOCK_NETWORKS, so it is refused before anything.")
        assert failure is not None
        ex.fail(failure)
        return
    user = verdict.account
    ex.say(f"User: found, id {user.pk}." if user is not None else "User: no such user.")
    keys = lockout.keys_for(str(username), user, ip)
    explain_counters(ex, keys, ip)
    checks = [outcome for name, outcome in verdict.trace if name == "lock check"]
    refused = next((c for c in checks if not c.startswith("admitted")), None)
    if refused is not None:
        note = LOCK_CHECK_NOTES.get(refused)
        kind = KINDS.get(refused.split()[1], refused.split()[1])
        if note is None and refused.endswith("locks now"):
            note = (
                f"Lockout: the {kind} counter already reaches its limit without a lock: this "
                "attempt locks it, and the password is not even checked."
            )
        elif note is None:
            note = f"Lockout: the {kind} is locked, so the password is not even checked."
        ex.say(note)
        assert failure is not None
        ex.fail(failure)
        return
    counter = (
        lockout.peek_key(next(k for k in keys if k.kind == "username"))
        if any(k.kind == "username" for k in keys)
        else None
    )
    limit = app_settings.FAILURE_LIMIT
    would_count = (
        f" A real request would count failure {counter.failures + 1} of {limit} for this username."
        if counter is not None
        else ""
    )
    if user is None:
        ex.say(f"Password: not checked (no user).{would_count}")
    elif steps.get("password check") == "wrong":
        ex.say(f"Password: wrong.{would_count}")
    else:
        ex.say("Password: right (checked here without counting anything).")
        explain_account(ex, user, failure)
        return
    locking = next((k for k in keys if f"the {k.kind} limit" in steps.get("count", "")), None)
    if locking is not None:
        ex.say(
            f"Lockout: that failure reaches the {KINDS[locking.kind]} counter's limit, so the "
            "answer is the lock."
        )
    assert failure is not None
    ex.fail(failure)


# --- Bearer (JWT) ----------------------------------------------------------------------------


def explain_signature(ex: Explanation, raw: bytes) -> None:
    from rest_framework_simplejwt.state import token_backend

    try:
        jwt.decode(
            raw,
            # simplejwt annotates the argument as a Token; it is the encoded JWT (PyJWKClient
            # reads its header), as TokenBackend.decode() passes it.
            token_backend.get_verifying_key(cast("Token", raw)),
            algorithms=[token_backend.algorithm],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except Exception as exc:  # noqa: BLE001 - any failure is "does not verify"
        why = next(
            (PROBLEMS[key] for cls, _, key in PYJWT_REASONS if isinstance(exc, cls) and key),
            "it could not be verified",
        )
        ex.say(
            f"Signature check: failed, {why}. The token was altered, or made with another key "
            "or algorithm: the claims above cannot be trusted."
        )
        return
    ex.say(f"Signature check: passed ({token_backend.algorithm} with this server's key).")


def explain_times(ex: Explanation, claims: dict[str, Any]) -> None:
    now = timezone.now()
    slack = leeway()
    labels = (("iat", "issued at (iat)"), ("nbf", "not before (nbf)"), ("exp", "expires (exp)"))
    for name, label in labels:
        moment = claim_time(claims, name)
        if moment is not None:
            text = f"{utc(moment)} ({relative(moment, now)})"
        else:
            text = f"{shown(claims[name])}, not a time" if name in claims else "none"
        ex.say(f"  {label}: {text}")
    ex.say(f"Server clock: {utc(now)}; leeway {int(slack.total_seconds())} s.")
    exp, nbf, iat = (claim_time(claims, n) for n in ("exp", "nbf", "iat"))
    for name, moment in (("nbf", nbf), ("iat", iat)):
        if moment is not None and moment > now + slack:
            ex.say(
                f"Time: {name} is {int((moment - now).total_seconds())} s in this server's "
                "future, beyond the leeway: the issuer's clock is ahead of this server's (clock "
                "skew)."
            )
    if exp is None:
        ex.say("Time: the token has no expiry.")
    elif exp < now - slack:
        ex.say(f"Time: expired {int((now - exp).total_seconds())} s ago, beyond the leeway.")
    elif exp < now:
        ex.say("Time: expired, but within the leeway.")
    else:
        ex.say(f"Time: valid for {int((exp - now).total_seconds())} s more.")


def explain_bearer(ex: Explanation, authenticator: Any, request: Request, header: bytes) -> None:
    try:
        raw = authenticator.get_raw_token(authenticator.get_header(request) or header)
    except drf_exceptions.AuthenticationFailed as exc:
        unreadable(ex, "Token", exc, request, header)
        return
    if raw is None:  # pragma: no cover - the scheme matched, so the class reads it
        ex.fail(unauthenticated(request, []))
        return
    try:
        token_header = jwt.get_unverified_header(raw)
    except jwt.InvalidTokenError:
        token_header = None
    if not isinstance(token_header, dict):
        ex.say("Token header: not a JWT (expected three base64url parts joined by dots).")
    else:
        alg, typ = token_header.get("alg"), token_header.get("typ")
        ex.say(
            f"Token header: alg {shown(alg) if alg is not None else 'missing'}, "
            f"typ {shown(typ) if typ is not None else 'missing'}."
        )
        if isinstance(alg, str) and alg.lower() == "none":
            ex.say("Token header: alg 'none' means unsigned: never accepted.")
    claims = unverified_claims(raw)
    type_claim, id_claim = (
        simplejwt.api_settings.TOKEN_TYPE_CLAIM,
        simplejwt.api_settings.USER_ID_CLAIM,
    )
    parts = [
        f"{name} {shown(claims[name]) if name in claims else 'missing'}"
        for name in (type_claim, id_claim)
        if name
    ]
    jti = simplejwt.api_settings.JTI_CLAIM
    if jti:
        parts.append(f"{jti} {'present' if jti in claims else 'missing'}")
    ex.say(f"Claims (as sent, before any check): {', '.join(parts)}.")
    explain_times(ex, claims)
    explain_signature(ex, raw)
    token_classes = simplejwt.api_settings.AUTH_TOKEN_CLASSES
    names = ", ".join(cls.__name__ for cls in token_classes)
    # The class's own steps, in authenticate()'s order: validation, the user, the account.
    try:
        validated = authenticator.get_validated_token(raw)
    except Exception as exc:  # noqa: BLE001 - whatever the class raises is its answer
        ex.say(f"Token classes ({names}): none accepts it.")
        ex.fail(as_failure(exc, request))
        return
    ex.say(f"Token classes ({names}): {type(validated).__name__} accepts it.")
    try:
        user = authenticator.get_user(validated)
    except Exception as exc:  # noqa: BLE001
        failure = as_failure(exc, request)
        if failure.code in ("token_invalid", "credentials_invalid"):
            ex.say(
                f"User: the token's {id_claim} {shown(claims.get(id_claim))} gives no usable user."
            )
            ex.fail(failure)
            return
        # get_user's own account checks (is_active, the password hash claim)
        found = getattr(exc, "user", None)
        if found is not None:
            ex.say(f"User: found, id {found.pk}.")
            explain_account(ex, found, failure)
        else:
            ex.fail(failure)
        return
    ex.say(f"User: found, id {user.pk}.")
    try:
        authenticator.check_account(user, validated)
    except Exception as exc:  # noqa: BLE001
        explain_account(ex, user, as_failure(exc, request))
        return
    explain_account(ex, user, None)


# --- Token (rest_framework.authtoken) --------------------------------------------------------


def explain_token(ex: Explanation, authenticator: Any, request: Request, header: bytes) -> None:
    parsed = parse_only(ex, authenticator, request, header, lambda key: (key, None), "Key")
    if parsed is None:
        return
    key = parsed[0]
    ex.say(f"Key: fingerprint {fingerprint(key)} (the key itself is never shown).")
    try:
        authenticator.get_model()
    except (ImportError, RuntimeError, LookupError):
        ex.say("Key: rest_framework.authtoken is not installed, so no key can match.")
        ex.fail(Auth401Error("credentials_invalid", scheme=authenticator.keyword))
        return
    # The class's own lookup and account check: the command cannot drift from the API.
    try:
        user, _token = authenticator.authenticate_credentials(key)
        failure = None
    except Auth401Error as exc:
        user, failure = getattr(exc, "user", None), exc
    if user is None:
        ex.say("Key: no such key.")
        ex.fail(failure or Auth401Error("credentials_invalid", scheme=authenticator.keyword))
        return
    ex.say(f"Key: known; it belongs to user id {user.pk}.")
    explain_account(ex, user, failure)


# --- shared ----------------------------------------------------------------------------------


#: what the account check found, for codes the account's state line does not already say
ACCOUNT_NOTES = {
    "password_expired": "Password: last changed longer ago than PASSWORD_MAX_AGE ({max_age}).",
    "token_revoked": "Credentials: issued before the account's last lock, suspension or password "
    "change, so they are revoked.",
}


def explain_account(ex: Explanation, user: Any, failure: Auth401Error | None) -> None:
    row = cached_status(user)
    state = row.effective_state() if row is not None else "active"
    ex.say(f"Account: {state}" + ("" if user.is_active else ", and is_active is False") + ".")
    if failure is not None:
        note = ACCOUNT_NOTES.get(failure.code)
        if note:
            ex.say(note.format(max_age=app_settings.PASSWORD_MAX_AGE))
        ex.fail(failure)
    else:
        ex.user = user


#: the base class each explainer understands; auth401's classes are subclasses of these
EXPLAINERS: tuple[tuple[type[Any], Callable[..., None]], ...] = (
    (jwt_authentication.JWTAuthentication, explain_bearer),
    (drf_authentication.TokenAuthentication, explain_token),
    (drf_authentication.BasicAuthentication, explain_basic),
)


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # a diagnostic: answer even when checks complain
    help = (
        "Explain which code the API would answer to an Authorization header, and why, without "
        "printing secrets or counting failures."
    )

    #: ``call_command("auth401_explain", "-", stdin=StringIO(...))`` reads from that stream
    stealth_options = ("stdin",)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "header",
            nargs="?",
            default=None,
            help=(
                'The Authorization header value, e.g. "Bearer eyJ..." ("" for none); "-" reads '
                "it from standard input; left out, it is asked for without echo."
            ),
        )
        parser.add_argument(
            "--from",
            dest="source",
            metavar="IP",
            default=None,
            help=(
                "The client address the request comes from: its address counters and "
                "locks (and ALWAYS_LOCK_NETWORKS) are read too, as the API would."
            ),
        )
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--basic",
            metavar="USERNAME",
            help="Build a Basic header for USERNAME; the password comes from stdin or a prompt.",
        )
        which.add_argument(
            "--bearer",
            action="store_true",
            help="Build a Bearer header; the token comes from stdin or a prompt.",
        )
        which.add_argument(
            "--token",
            action="store_true",
            help="Build a Token header (DRF API key); the key comes from stdin or a prompt.",
        )

    def read_header(self, header: str | None, options: dict[str, Any]) -> str:
        """The header to explain: the argument, a line of stdin (``-``) or a silent prompt;
        with ``--basic``/``--bearer``/``--token`` only the secret is read, and the header is
        built around it."""
        stdin: IO[str] = options.get("stdin") or sys.stdin
        username = options.get("basic")
        scheme = "Basic" if username is not None else "Bearer" if options.get("bearer") else None
        scheme = "Token" if options.get("token") else scheme
        if scheme is None:
            if header is None:
                return self.prompt("Authorization header (not shown; empty for none): ")
            return stdin.readline().rstrip("\r\n") if header == "-" else header
        if header not in (None, "-"):
            raise CommandError(
                f"With --{scheme.lower()}, give no header: the secret is read from standard "
                "input (-) or asked for at a prompt."
            )
        what = "Password" if username is not None else "Token"
        if header == "-":
            secret = stdin.readline().rstrip("\r\n")
        else:
            secret = self.prompt(f"{what} (not shown): ")
        if username is None:
            return f"{scheme} {secret}"
        pair = f"{username}:{secret}".encode("utf-8", "surrogateescape")
        return f"Basic {base64.b64encode(pair).decode('ascii')}"

    @staticmethod
    def prompt(text: str) -> str:
        """A no-echo prompt; with no terminal and nothing on standard input, a clear error
        (exit status 1) instead of a traceback."""
        try:
            return getpass.getpass(text)
        except EOFError:
            raise CommandError(
                "Nothing to read the secret from (no terminal, and standard input is empty): "
                'give it on standard input with "-" (e.g. auth401_explain - < file).'
            ) from None

    def handle(
        self, *args: Any, header: str | None = None, source: str | None = None, **options: Any
    ) -> None:
        request = None
        if source is not None:
            address = parse_ip(source)
            if address is None:
                raise CommandError(f"--from: {source!r} is not an IP address")
            request = RequestFactory().get(PATH, REMOTE_ADDR=str(address))
        header = self.read_header(header, options)
        ex = Explanation(self.stdout.write)
        ex.source = request
        self.explain(ex, header)
        if ex.failure is None and ex.user is not None:
            self.stdout.write(f"accepted: {clean(ex.user.get_username(), 150)}")
            return
        failure = ex.failure
        assert failure is not None
        answered = responses.effective(failure)
        if answered.code != failure.code:
            ex.say(
                f"DISCLOSE_ACCOUNT_STATE is False: the caller is told {answered.code} instead "
                f"of {failure.code}."
            )
        ex.say(f"detail: {answered.render_detail()}")
        ex.say(f"hint: {answered.render_hint()}")
        ex.say(f"code: {answered.code} ({answered.reason.status_code()})")

    def explain(self, ex: Explanation, header: str) -> None:
        text = header.strip()
        if text[:14].lower() == "authorization:":
            text = text[14:].strip()
        raw = text.encode("utf-8", "surrogateescape")
        factory = RequestFactory()
        meta: dict[str, Any] = {"HTTP_AUTHORIZATION": raw.decode("latin-1")} if raw else {}
        request = Request(factory.get(PATH, **meta))
        authenticators = default_authenticators()
        request.authenticators = authenticators
        parts = raw.split()
        if not parts:
            ex.say("Header: no Authorization header." if not raw else "Header: empty.")
        else:
            lengths = " + ".join(str(len(p)) for p in parts[1:])
            credentials = f"{lengths} characters of credentials" if lengths else "no credentials"
            ex.say(f"Header: scheme {shown(parts[0].decode('latin-1'))}, then {credentials}.")
        ex.say("Schemes of DEFAULT_AUTHENTICATION_CLASSES, in order:")
        for authenticator in authenticators:
            schemes = header_schemes(authenticator)
            listed = ", ".join(schemes) if schemes else "a session cookie (not this header)"
            ex.say(f"  {listed}: {dotted(authenticator)}")
        if not parts:
            ex.say(
                "Verdict: no credentials. (A session cookie would count too; this command "
                "cannot see cookies.)"
            )
            ex.fail(unauthenticated(request, authenticators))
            return
        offered = parts[0].decode("latin-1").lower()
        for authenticator in authenticators:
            if offered in {s.lower() for s in header_schemes(authenticator)}:
                ex.say(f"Scheme: accepted, by {dotted(authenticator)}.")
                for base, explainer in EXPLAINERS:
                    if isinstance(authenticator, base):
                        explainer(ex, authenticator, request, raw)
                        return
                ex.say("This class is not one auth401_explain knows: it cannot say more.")
                self.run(ex, authenticator, request)
                return
        ex.say("Scheme: not accepted by any of these classes.")
        ex.fail(unauthenticated(request, authenticators))

    @staticmethod
    def run(ex: Explanation, authenticator: Any, request: Request) -> None:
        """Let a class auth401_explain does not know decide (it may count or log)."""
        try:
            result = authenticator.authenticate(request)
        except Exception as exc:  # noqa: BLE001 - report whatever the class raised
            ex.fail(as_failure(exc, request))
            return
        if result is None:
            ex.fail(unauthenticated(request, [authenticator]))
        else:
            ex.user = result[0]
