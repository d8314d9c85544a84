"""The ``AUTH401`` settings dict: defaults, a lazily read settings object, and validation.

Read settings through ``auth401.conf.app_settings`` at call time.  The object caches each
value it has read and forgets them when ``settings.AUTH401`` changes (``override_settings``,
pytest-django's ``settings`` fixture), so tests never need ``importlib.reload``.

``validate()`` is a pure function over the raw dict; ``checks.py`` turns its problems into
system-check errors and ``Auth401Middleware`` refuses to boot with them, so a bad value never
turns into a 500 on the first request.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTING_NAME = "AUTH401"

#: every key and its default; ``RULES`` says what each one does and what it may be
DEFAULTS: dict[str, Any] = {
    "FAILURE_LIMIT": 5,
    "FAILURE_WINDOW": timedelta(minutes=15),
    "IP_FAILURE_LIMIT": 50,
    "LOCKOUT_DURATION": timedelta(minutes=15),
    "LOCKOUT_MAX_DURATION": timedelta(hours=24),
    "LOCKOUT_STATUS_CODE": 403,
    "TRUSTED_PROXIES": [],
    "DISCLOSE_ACCOUNT_STATE": True,
    "RESPONSE_FORMAT": "auth401",
    "API_PATH_PREFIXES": ["/api/"],
    "PASSWORD_MAX_AGE": None,
    "AUDIT_SUCCESS": False,
    "AUDIT_RETENTION": timedelta(days=90),
    "AUDIT_BATCH_DELAY": timedelta(seconds=1),
    "DOCS_URL": None,
    "FALLBACK_EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
    "COUNTER_STORE": "auto",
    "COUNTER_CACHE": "default",
    "LOCKOUT_ENABLED": True,
    "LOCKOUT_KEYS": ["username", "ip"],
    "NEVER_LOCK_NETWORKS": [],
    "ALWAYS_LOCK_NETWORKS": [],
    "COUNTER_TIMEOUT": timedelta(milliseconds=250),
    "LOCKOUT_FAIL_OPEN": False,
    "REPEATED_PASSWORD_MEMORY": 3,
    "ADMIN_USER_ACTIONS": True,
    "DEVICES_ENABLED": True,
    "DEVICE_COOKIE_NAME": "auth401_device",
    "DEVICE_FAILURE_LIMIT": 5,
    "NOTIFY_OWNER": False,
    "NOTIFY_NEW_DEVICE": False,
    # Scheme and host of the links in those emails ("https://example.com"); None: those of
    # the request that caused the lock, when there is one.
    "NOTIFY_BASE_URL": None,
}

#: "upstream": DRF's and simplejwt's own bodies and statuses, for clients of a migrating project
RESPONSE_FORMATS = ("auth401", "problem", "standardized_errors", "upstream")
COUNTER_STORES = ("auto", "database", "cache")
LOCKOUT_STATUS_CODES = (403, 429)
LOCKOUT_KEY_KINDS = ("username", "ip", "username+ip")


@dataclass(frozen=True)
class Problem:
    """One bad value in the ``AUTH401`` dict."""

    key: str
    message: str
    hint: str = ""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_duration(value: Any) -> bool:
    return isinstance(value, timedelta) and value > timedelta(0)


def _optional_positive_duration(value: Any) -> bool:
    return value is None or _positive_duration(value)


def _batch_delay(value: Any) -> bool:
    return isinstance(value, timedelta) and timedelta(0) <= value <= timedelta(seconds=60)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _one_of(options: tuple[Any, ...]) -> Callable[[Any], bool]:
    return lambda value: value in options


def _string_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _path_prefixes(value: Any) -> bool:
    return _string_list(value) and all(v.startswith("/") for v in value)


def _networks(value: Any) -> bool:
    if not _string_list(value):
        return False
    try:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return True


def _lockout_keys(value: Any) -> bool:
    return (
        _string_list(value)
        and len(value) > 0
        and all(v in LOCKOUT_KEY_KINDS for v in value)
        and len(set(value)) == len(value)
    )


def _counter_timeout(value: Any) -> bool:
    return isinstance(value, timedelta) and timedelta(0) < value <= timedelta(seconds=5)


#: the characters RFC 6265 allows in a cookie name (a token)
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")


def _cookie_name(value: Any) -> bool:
    return isinstance(value, str) and _COOKIE_NAME.fullmatch(value) is not None


def _base_url(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def _password_memory(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10


def _docs_url(value: Any) -> bool:
    return value is None or (isinstance(value, str) and "{code}" in value)


def _importable(value: Any) -> bool:
    if not isinstance(value, str):
        return callable(value)
    try:
        return callable(import_string(value))
    except ImportError:
        return False


def _cache_alias(value: Any) -> bool:
    return isinstance(value, str) and value in getattr(settings, "CACHES", {"default": None})


class Rule(NamedTuple):
    """How one setting is checked and described."""

    #: True for a good value
    test: Callable[[Any], bool]
    #: what a good value looks like (the system check's message says it)
    expected: str
    #: what the setting does, in one line (the settings reference is generated from it)
    description: str


# One row per key: the validation and the settings reference are data too.
RULES: dict[str, Rule] = {
    "FAILURE_LIMIT": Rule(
        _positive_int,
        "a positive int",
        "Failed password checks per username within `FAILURE_WINDOW` before the username is "
        "locked automatically. Usernames are counted case-folded and NFKC-normalised, so "
        "`ALICE` and `alice` share one counter.",
    ),
    "FAILURE_WINDOW": Rule(
        _positive_duration,
        "a positive datetime.timedelta",
        "How far back failures are counted.",
    ),
    "IP_FAILURE_LIMIT": Rule(
        _positive_int,
        "a positive int",
        "Failed password checks per client address (an IPv6 client: its /64) within "
        "`FAILURE_WINDOW`, across all usernames (password spraying), before the address is "
        "locked (`address_locked`).",
    ),
    "LOCKOUT_DURATION": Rule(
        _positive_duration,
        "a positive datetime.timedelta",
        "Length of the first automatic lock; each repeat doubles it.",
    ),
    "LOCKOUT_MAX_DURATION": Rule(
        _positive_duration,
        "a positive datetime.timedelta",
        "Upper bound of the doubling; it must not be shorter than `LOCKOUT_DURATION`.",
    ),
    "LOCKOUT_STATUS_CODE": Rule(
        _one_of(LOCKOUT_STATUS_CODES),
        "403 or 429",
        "Status of `account_locked` and `address_locked`: 429 for clients that expect "
        "django-axes' behaviour.",
    ),
    "TRUSTED_PROXIES": Rule(
        _networks,
        "a list of IP networks such as '10.0.0.0/8'",
        "Your own proxies, whose `X-Forwarded-For` is believed: the client address is the "
        "right-most entry outside these networks. Empty: `X-Forwarded-For` is ignored.",
    ),
    "DISCLOSE_ACCOUNT_STATE": Rule(
        _boolean,
        "True or False",
        "`False`: the account-state codes (`account_locked`, `account_suspended`, "
        "`account_inactive`, `password_expired`) are answered as `credentials_invalid`, even "
        "to a caller with the right password or a valid token.",
    ),
    "RESPONSE_FORMAT": Rule(
        _one_of(RESPONSE_FORMATS),
        "'auth401', 'problem', 'standardized_errors' or 'upstream'",
        "The body of 401 and 403 answers: auth401's JSON, RFC 9457 "
        "`application/problem+json` (`problem`), or drf-standardized-errors' shape "
        "(`standardized_errors`). `upstream` keeps DRF's and simplejwt's own bodies, messages "
        "and statuses for a migrating project's clients (see "
        "[Migrating from DRF and simplejwt](migrating.md)); auth401 still locks, records and "
        "logs with its own codes. In every format the code is in the `X-Auth401-Code` header.",
    ),
    "API_PATH_PREFIXES": Rule(
        _path_prefixes,
        "a list of path prefixes starting with '/'",
        "Plain Django views under these prefixes get the JSON body from the middleware; "
        "other paths get HTML.",
    ),
    "PASSWORD_MAX_AGE": Rule(
        _optional_positive_duration,
        "None or a positive datetime.timedelta",
        "Password logins with a password older than this answer `password_expired`. `None`: "
        "passwords never expire.",
    ),
    "AUDIT_SUCCESS": Rule(
        _boolean,
        "True or False",
        "Also record successful password logins (`login_succeeded`) in the audit trail.",
    ),
    "AUDIT_RETENTION": Rule(
        _positive_duration,
        "a positive datetime.timedelta",
        "Age after which `auth401_prune` deletes audit rows (unless given `--older-than`).",
    ),
    "AUDIT_BATCH_DELAY": Rule(
        _batch_delay,
        "a datetime.timedelta from 0 to 60 seconds",
        "The window of failures that name no identity: each process sums them into one row "
        "per code, client address and path (with a count) and writes the rows after the first "
        "response once the window has passed; also how often each process looks for recorded "
        "events to drain. `timedelta(0)`: after every response.",
    ),
    "DOCS_URL": Rule(
        _docs_url,
        "None or a URL containing '{code}'",
        "Adds a link to the code's documentation to each body (`docs`; `type` in the problem "
        "format), e.g. `https://example.com/errors/{code}`.",
    ),
    "FALLBACK_EXCEPTION_HANDLER": Rule(
        _importable,
        "the dotted path of an importable exception handler",
        "Gets every exception that is not a 401 or 403, unchanged (DRF's own handler, or "
        "drf-standardized-errors').",
    ),
    "COUNTER_STORE": Rule(
        _one_of(COUNTER_STORES),
        "'auto', 'database' or 'cache'",
        "Where failure counters, locks and audit events are recorded first. `auto` and "
        "`cache`: the Redis of `COUNTER_CACHE` when it is Django's `RedisCache`, else the "
        "database; `database`: always the database.",
    ),
    "COUNTER_CACHE": Rule(
        _cache_alias,
        "the alias of a cache in CACHES",
        "The cache whose Redis holds the counters (its `LOCATION`, `OPTIONS` and key prefix).",
    ),
    "LOCKOUT_ENABLED": Rule(
        _boolean,
        "True or False",
        "`False`: failures are still counted and recorded, but nothing is locked "
        "automatically (a kill switch; admin locks and suspensions still apply).",
    ),
    "LOCKOUT_KEYS": Rule(
        _lockout_keys,
        "a non-empty list of distinct values from 'username', 'ip', 'username+ip'",
        "Which counters lock: `username` (`FAILURE_LIMIT`), `ip` (`IP_FAILURE_LIMIT`), and "
        "the pair `username+ip` (`FAILURE_LIMIT` per username and address).",
    ),
    "NEVER_LOCK_NETWORKS": Rule(
        _networks,
        "a list of IP networks such as '10.0.0.0/8'",
        "Client networks that are counted but never address-locked (an office behind NAT); "
        "their usernames still lock.",
    ),
    "ALWAYS_LOCK_NETWORKS": Rule(
        _networks,
        "a list of IP networks such as '192.0.2.0/24'",
        "Client networks always refused with `address_locked`, before any password check.",
    ),
    "COUNTER_TIMEOUT": Rule(
        _counter_timeout,
        "a datetime.timedelta above 0 and up to 5 seconds",
        "Connect and read timeout of each Redis counter call; when Redis does not answer in "
        "time, the process counts in the database for a few seconds.",
    ),
    "LOCKOUT_FAIL_OPEN": Rule(
        _boolean,
        "True or False",
        "False: while no counter store can count (Redis and the database counter table both "
        "failing), password logins answer 503 lockout_unavailable, for real and unknown names "
        "alike; True: they are checked uncounted (the lockout is off meanwhile; auth401.W013).",
    ),
    "REPEATED_PASSWORD_MEMORY": Rule(
        _password_memory,
        "an int from 0 to 10",
        "A wrong password equal to one of the last N wrong ones of every counter of the attempt "
        "(within FAILURE_WINDOW) is answered as always but not counted again (a client retrying "
        "a stale saved password); 0: every wrong password counts.",
    ),
    "ADMIN_USER_ACTIONS": Rule(
        _boolean,
        "True or False",
        "Adds the lock, suspend, unlock and reinstate actions and an account box to your "
        "registered user admin. `False`: your user admin is left alone (use "
        "`auth401.admin.AccountActionsMixin`).",
    ),
    "DEVICES_ENABLED": Rule(
        _boolean,
        "True or False",
        "Trusted devices: a password login sets a signed cookie; attempts that present it count "
        "on the device's own counter and pass the username's automatic lock.",
    ),
    "DEVICE_COOKIE_NAME": Rule(
        _cookie_name,
        "a cookie name (letters, digits, '-', '_', '.')",
        "The name of the trusted-device cookie (HttpOnly, SameSite=Lax, Secure under HTTPS).",
    ),
    "DEVICE_FAILURE_LIMIT": Rule(
        _positive_int,
        "a positive int",
        "Wrong passwords from one trusted device before that device (only) is locked.",
    ),
    "NOTIFY_OWNER": Rule(
        _boolean,
        "True or False",
        "Email the owner of a real account when the lockout locks it, with a single-use "
        "self-service unlock link (needs auth401.urls).",
    ),
    "NOTIFY_NEW_DEVICE": Rule(
        _boolean,
        "True or False",
        "Email the owner when a device logs in to the account for the first time.",
    ),
    "NOTIFY_BASE_URL": Rule(
        _base_url,
        "None or a scheme and host such as 'https://example.com'",
        "Scheme and host of the links in those emails; None: those of the request that "
        "caused the lock.",
    ),
}
assert RULES.keys() == DEFAULTS.keys()


def validate(raw: Any) -> list[Problem]:
    """Every problem in a raw ``AUTH401`` value; an empty list when it is fine."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [Problem(SETTING_NAME, f"{SETTING_NAME} must be a dict, got {type(raw).__name__}")]
    problems: list[Problem] = []
    for key, value in raw.items():
        if key not in RULES:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "Remove it."
            problems.append(Problem(str(key), f"{SETTING_NAME}[{key!r}] is not a setting.", hint))
            continue
        rule = RULES[key]
        if not rule.test(value):
            problems.append(
                Problem(key, f"{SETTING_NAME}[{key!r}] must be {rule.expected}, got {value!r}.")
            )
    merged = {**DEFAULTS, **raw}
    low, high = merged["LOCKOUT_DURATION"], merged["LOCKOUT_MAX_DURATION"]
    if _positive_duration(low) and _positive_duration(high) and high < low:
        problems.append(
            Problem(
                "LOCKOUT_MAX_DURATION",
                f"{SETTING_NAME}['LOCKOUT_MAX_DURATION'] ({high}) is shorter than "
                f"LOCKOUT_DURATION ({low}).",
            )
        )
    return problems


class Auth401Settings:
    """Attribute access to the ``AUTH401`` dict, merged over ``DEFAULTS`` and cached per name.

    Derived values (``trusted_networks``, ``fallback_handler``) are cached here too, so
    ``reload()`` forgets them along with the rest.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> Mapping[str, Any]:
        return getattr(settings, SETTING_NAME, None) or {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid {SETTING_NAME} setting: {name!r}")
        cache = self.__dict__["_cache"]
        if name not in cache:
            cache[name] = self.user_settings.get(name, DEFAULTS[name])
        return cache[name]

    def _derived(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return self._derived(
            "trusted_networks",
            lambda: tuple(ipaddress.ip_network(c, strict=False) for c in self.TRUSTED_PROXIES),
        )

    @property
    def fallback_handler(self) -> Callable[..., Any]:
        def build() -> Callable[..., Any]:
            handler = self.FALLBACK_EXCEPTION_HANDLER
            return import_string(handler) if isinstance(handler, str) else handler

        return self._derived("fallback_handler", build)

    @property
    def api_path_prefixes(self) -> tuple[str, ...]:
        return self._derived("api_path_prefixes", lambda: tuple(self.API_PATH_PREFIXES))

    @property
    def never_lock_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return self._derived(
            "never_lock_networks",
            lambda: tuple(ipaddress.ip_network(c, strict=False) for c in self.NEVER_LOCK_NETWORKS),
        )

    @property
    def always_lock_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return self._derived(
            "always_lock_networks",
            lambda: tuple(ipaddress.ip_network(c, strict=False) for c in self.ALWAYS_LOCK_NETWORKS),
        )

    def reload(self) -> None:
        self._cache.clear()


app_settings = Auth401Settings()


@receiver(setting_changed)
def _reload_app_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTING_NAME, "REST_FRAMEWORK", "SIMPLE_JWT", "CACHES"):
        app_settings.reload()
