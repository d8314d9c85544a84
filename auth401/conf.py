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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTING_NAME = "AUTH401"

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
    # Rows of failures that checked no password (no or bad token, no credentials, 403s) are
    # written in batches at most this late; timedelta(0) writes each before the answer.
    "AUDIT_BATCH_DELAY": timedelta(seconds=1),
    "DOCS_URL": None,
    "FALLBACK_EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
    # Where the failure counters live.  "auto" uses Redis when
    # COUNTER_CACHE is Django's Redis cache, else the database; "database" forces the table.
    "COUNTER_STORE": "auto",
    "COUNTER_CACHE": "default",
    # False: failures are counted and audited, but nothing is ever locked (a kill switch).
    "LOCKOUT_ENABLED": True,
    # Which counters lock: "username" (FAILURE_LIMIT), "ip" (IP_FAILURE_LIMIT), and the
    # pair "username+ip" (FAILURE_LIMIT per username and address).
    "LOCKOUT_KEYS": ["username", "ip"],
    # CIDRs whose addresses are counted but never address-locked (offices behind NAT).
    "NEVER_LOCK_NETWORKS": [],
    # CIDRs always refused with address_locked, before any password check.
    "ALWAYS_LOCK_NETWORKS": [],
    # Connect and read timeout of the Redis counter calls.
    "COUNTER_TIMEOUT": timedelta(milliseconds=250),
    # True: when no counter store answers, password logins are checked uncounted (the
    # lockout is off meanwhile); False: they are refused with lockout_unavailable (503).
    "LOCKOUT_FAIL_OPEN": False,
    # A wrong password equal to one of the key's last N wrong ones (within the window) is
    # answered as always but not counted again; 0: every wrong password counts.
    "REPEATED_PASSWORD_MEMORY": 3,
    # The lock/suspend/unlock/reinstate actions and the account box on the project's own
    # registered user admin (False: leave the user admin alone; use AccountActionsMixin).
    "ADMIN_USER_ACTIONS": True,
}

RESPONSE_FORMATS = ("auth401", "problem", "standardized_errors")
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


# key -> (test, what a good value looks like).  One row per key: the validation is data too.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "FAILURE_LIMIT": (_positive_int, "a positive int"),
    "FAILURE_WINDOW": (_positive_duration, "a positive datetime.timedelta"),
    "IP_FAILURE_LIMIT": (_positive_int, "a positive int"),
    "LOCKOUT_DURATION": (_positive_duration, "a positive datetime.timedelta"),
    "LOCKOUT_MAX_DURATION": (_positive_duration, "a positive datetime.timedelta"),
    "LOCKOUT_STATUS_CODE": (_one_of(LOCKOUT_STATUS_CODES), "403 or 429"),
    "TRUSTED_PROXIES": (_networks, "a list of IP networks such as '10.0.0.0/8'"),
    "DISCLOSE_ACCOUNT_STATE": (_boolean, "True or False"),
    "RESPONSE_FORMAT": (
        _one_of(RESPONSE_FORMATS),
        "'auth401', 'problem' or 'standardized_errors'",
    ),
    "API_PATH_PREFIXES": (_path_prefixes, "a list of path prefixes starting with '/'"),
    "PASSWORD_MAX_AGE": (_optional_positive_duration, "None or a positive datetime.timedelta"),
    "AUDIT_SUCCESS": (_boolean, "True or False"),
    "AUDIT_RETENTION": (_positive_duration, "a positive datetime.timedelta"),
    "AUDIT_BATCH_DELAY": (_batch_delay, "a datetime.timedelta from 0 to 60 seconds"),
    "DOCS_URL": (_docs_url, "None or a URL containing '{code}'"),
    "FALLBACK_EXCEPTION_HANDLER": (
        _importable,
        "the dotted path of an importable exception handler",
    ),
    "COUNTER_STORE": (_one_of(COUNTER_STORES), "'auto', 'database' or 'cache'"),
    "COUNTER_CACHE": (_cache_alias, "the alias of a cache in CACHES"),
    "LOCKOUT_ENABLED": (_boolean, "True or False"),
    "LOCKOUT_KEYS": (
        _lockout_keys,
        "a non-empty list of distinct values from 'username', 'ip', 'username+ip'",
    ),
    "NEVER_LOCK_NETWORKS": (_networks, "a list of IP networks such as '10.0.0.0/8'"),
    "ALWAYS_LOCK_NETWORKS": (_networks, "a list of IP networks such as '192.0.2.0/24'"),
    "COUNTER_TIMEOUT": (_counter_timeout, "a datetime.timedelta above 0 and up to 5 seconds"),
    "LOCKOUT_FAIL_OPEN": (_boolean, "True or False"),
    "REPEATED_PASSWORD_MEMORY": (_password_memory, "an int from 0 to 10"),
    "ADMIN_USER_ACTIONS": (_boolean, "True or False"),
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
        test, expected = RULES[key]
        if not test(value):
            problems.append(
                Problem(key, f"{SETTING_NAME}[{key!r}] must be {expected}, got {value!r}.")
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
