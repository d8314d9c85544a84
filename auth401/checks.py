"""System checks (``manage.py check``), one id per rule.

``auth401.E001``: an ``AUTH401`` key that is not a setting.  ``auth401.E010``: ``AUTH401`` is
not a dict.  ``auth401.E011``-``E041``: a wrong value, one id per setting (``VALUE_IDS``), and
``auth401.E012`` for a ``LOCKOUT_MAX_DURATION`` shorter than ``LOCKOUT_DURATION``.
``auth401.W001``-``W006``: wiring that would make answers imprecise (``WIRING``).
``auth401.E002``, ``W007``, ``W008``, ``W011``: settings around auth401 that turn into surprises
in production (``DEPLOYMENT``).  ``auth401.I001`` (a reminder) and ``auth401.W010`` (the
counter Redis's persistence and eviction) run under ``check --deploy`` only.
Messages, hints, levels and ids are data; one function per concern.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS, RULES, SETTING_NAME, Problem, validate

HANDLER = "auth401.handlers.exception_handler"
MIDDLEWARE = "auth401.middleware.Auth401Middleware"
BACKEND = "auth401.backends.Auth401Backend"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
REFRESH_SERIALIZER = "auth401.serializers.TokenRefreshSerializer"
DRF_CLASSES = {
    "rest_framework.authentication.BasicAuthentication",
    "rest_framework.authentication.SessionAuthentication",
    "rest_framework.authentication.TokenAuthentication",
    "rest_framework_simplejwt.authentication.JWTAuthentication",
}

# id -> (message, hint)
WIRING: dict[str, tuple[str, str]] = {
    "auth401.W001": (
        "REST_FRAMEWORK['EXCEPTION_HANDLER'] is not auth401's: 401 and 403 answers will not "
        "have auth401's body, code and headers.",
        f"Set it to {HANDLER!r}; put your own handler in "
        f"{SETTING_NAME}['FALLBACK_EXCEPTION_HANDLER'].",
    ),
    "auth401.W002": (
        f"{MIDDLEWARE} is not in MIDDLEWARE, or comes before {AUTH_MIDDLEWARE}.",
        "Add it right after AuthenticationMiddleware.",
    ),
    "auth401.W003": (
        f"{BACKEND} is not first in AUTHENTICATION_BACKENDS: logins will not be gated by "
        "account state.",
        "Put it first, before django.contrib.auth.backends.ModelBackend.",
    ),
    "auth401.W004": (
        "DEFAULT_AUTHENTICATION_CLASSES lists DRF's or simplejwt's own classes: their failures "
        "get generic codes.",
        "Use the classes of the same names from auth401.authentication.",
    ),
    "auth401.W005": (
        "SIMPLE_JWT['TOKEN_REFRESH_SERIALIZER'] is not auth401's: refreshing ignores the "
        "account state, and a refresh token of a deleted user gives a 500.",
        f"Set it to {REFRESH_SERIALIZER!r}.",
    ),
    "auth401.W006": (
        f"{SETTING_NAME}['COUNTER_STORE'] is 'cache' but the counter cache is not Redis (a "
        "per-process or non-atomic cache): failure counts would not be shared between "
        "processes, so auth401 keeps them in the database instead.",
        "Point COUNTER_CACHE at a Redis cache (Django's "
        "django.core.cache.backends.redis.RedisCache or django-redis's "
        "django_redis.cache.RedisCache), or set COUNTER_STORE to 'database' (or 'auto').",
    ),
}


#: an ``AUTH401`` key that is not a setting
UNKNOWN_KEY = "auth401.E001"
#: ``AUTH401`` is not a dict
NOT_A_DICT = "auth401.E010"
#: ``LOCKOUT_MAX_DURATION`` is shorter than ``LOCKOUT_DURATION`` (both valid on their own)
MAX_BELOW_DURATION = "auth401.E012"
#: setting key -> the id of "this key has a wrong value".  Keys that ``conf.RULES`` does not
#: know yet are harmless here; ``test_checks`` asserts that every rule has an id.
VALUE_IDS: dict[str, str] = {
    "FAILURE_LIMIT": "auth401.E011",
    "FAILURE_WINDOW": "auth401.E013",
    "IP_FAILURE_LIMIT": "auth401.E014",
    "LOCKOUT_DURATION": "auth401.E015",
    "LOCKOUT_MAX_DURATION": "auth401.E016",
    "LOCKOUT_STATUS_CODE": "auth401.E017",
    "TRUSTED_PROXIES": "auth401.E018",
    "DISCLOSE_ACCOUNT_STATE": "auth401.E019",
    "RESPONSE_FORMAT": "auth401.E020",
    "API_PATH_PREFIXES": "auth401.E021",
    "PASSWORD_MAX_AGE": "auth401.E022",
    "AUDIT_SUCCESS": "auth401.E023",
    "AUDIT_RETENTION": "auth401.E024",
    "AUDIT_BATCH_DELAY": "auth401.E025",
    "DOCS_URL": "auth401.E026",
    "FALLBACK_EXCEPTION_HANDLER": "auth401.E027",
    "COUNTER_STORE": "auth401.E028",
    "COUNTER_CACHE": "auth401.E029",
    "LOCKOUT_ENABLED": "auth401.E030",
    "LOCKOUT_KEYS": "auth401.E031",
    "NEVER_LOCK_NETWORKS": "auth401.E032",
    "ALWAYS_LOCK_NETWORKS": "auth401.E033",
    "COUNTER_TIMEOUT": "auth401.E034",
    "ADMIN_USER_ACTIONS": "auth401.E035",
    "DEVICES_ENABLED": "auth401.E036",
    "DEVICE_COOKIE_NAME": "auth401.E037",
    "DEVICE_FAILURE_LIMIT": "auth401.E038",
    "NOTIFY_OWNER": "auth401.E039",
    "NOTIFY_NEW_DEVICE": "auth401.E040",
    "NOTIFY_BASE_URL": "auth401.E041",
    "LOCKOUT_FAIL_OPEN": "auth401.E042",
    "REPEATED_PASSWORD_MEMORY": "auth401.E043",
}
#: a wrong value of a key missing from ``VALUE_IDS`` (a new setting nobody mapped yet)
OTHER_VALUE = "auth401.E009"


def problem_id(problem: Problem, raw: Any) -> str:
    """The check id of one problem ``conf.validate(raw)`` found."""
    if problem.key == SETTING_NAME and not isinstance(raw, Mapping):
        return NOT_A_DICT
    if problem.key not in RULES:
        return UNKNOWN_KEY
    test = RULES[problem.key][0]
    if problem.key not in raw or test(raw[problem.key]):
        # The value (or its default) passes its own rule: the problem is between two settings.
        return MAX_BELOW_DURATION if problem.key == "LOCKOUT_MAX_DURATION" else OTHER_VALUE
    return VALUE_IDS.get(problem.key, OTHER_VALUE)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, None)
    return [Error(p.message, hint=p.hint or None, id=problem_id(p, raw)) for p in validate(raw)]


def _wiring_problems() -> list[str]:
    drf = getattr(settings, "REST_FRAMEWORK", {}) or {}
    found = []
    if drf.get("EXCEPTION_HANDLER") != HANDLER:
        found.append("auth401.W001")
    middleware = list(settings.MIDDLEWARE)
    if MIDDLEWARE not in middleware or (
        AUTH_MIDDLEWARE in middleware
        and middleware.index(MIDDLEWARE) < middleware.index(AUTH_MIDDLEWARE)
    ):
        found.append("auth401.W002")
    if list(settings.AUTHENTICATION_BACKENDS)[:1] != [BACKEND]:
        found.append("auth401.W003")
    if DRF_CLASSES.intersection(drf.get("DEFAULT_AUTHENTICATION_CLASSES", ())):
        found.append("auth401.W004")
    simple_jwt = getattr(settings, "SIMPLE_JWT", {}) or {}
    if simple_jwt.get("TOKEN_REFRESH_SERIALIZER") != REFRESH_SERIALIZER:
        found.append("auth401.W005")
    if _counters_in_a_local_cache():
        found.append("auth401.W006")
    return found


def _counters_in_a_local_cache() -> bool:
    from django.core.cache import caches

    from .conf import app_settings
    from .counters import is_redis

    if validate(getattr(settings, SETTING_NAME, None)):
        return False  # reported by check_settings
    return app_settings.COUNTER_STORE == "cache" and not is_redis(
        caches[app_settings.COUNTER_CACHE]
    )


def check_wiring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [Warning(WIRING[i][0], hint=WIRING[i][1], id=i) for i in _wiring_problems()]


#: settings that say Django sits behind a proxy (W007)
PROXY_SETTINGS = ("USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT", "SECURE_PROXY_SSL_HEADER")
JWT_BASE = "rest_framework_simplejwt.authentication.JWTAuthentication"

# id -> (level, message, hint).  ``{found}`` in a W007 message names the proxy settings seen.
DEPLOYMENT: dict[str, tuple[type[Error] | type[Warning] | type[Info], str, str]] = {
    "auth401.E002": (
        Error,
        "The lockout's failure counters are in the database (alone, or written through "
        "from Redis), and {vendor} has no INSERT ... ON CONFLICT ... RETURNING: every count "
        "there would fail (logged), and without Redis logins would be refused "
        "(lockout_unavailable).",
        "Use PostgreSQL or SQLite, or keep the counters in Redis: a RedisCache in CACHES and "
        f"{SETTING_NAME}['COUNTER_STORE'] = 'auto' (or 'cache').",
    ),
    "auth401.W007": (
        Warning,
        "Django seems to run behind a proxy ({found} set), but "
        f"{SETTING_NAME}['TRUSTED_PROXIES'] is empty: X-Forwarded-For is ignored, every "
        "client has the proxy's address, and "
        "IP_FAILURE_LIMIT failures from anyone lock that one address out for everyone.",
        f"List your proxies' networks in {SETTING_NAME}['TRUSTED_PROXIES'] (e.g. "
        "['10.0.0.0/8'] or ['127.0.0.1/32']); only they are believed, from the right.",
    ),
    "auth401.W008": (
        Warning,
        "SIMPLE_JWT['LEEWAY'] is 0 (simplejwt's default): a clock that is a second off between "
        "the server that issues a token and the one that checks it turns valid tokens into "
        "token_not_yet_valid or token_expired.",
        "Allow a few seconds of clock skew, e.g. SIMPLE_JWT['LEEWAY'] = timedelta(seconds=5), "
        "and keep the servers' clocks synchronised (NTP).",
    ),
    "auth401.W011": (
        Warning,
        f"{SETTING_NAME}['NOTIFY_OWNER'] is True but auth401's URLs are not included: the "
        "email telling an owner that their account is locked goes out without the "
        "self-service unlock link.",
        "Add path('auth401/', include('auth401.urls')) to your URLconf.",
    ),
    "auth401.W013": (
        Warning,
        f"{SETTING_NAME}['LOCKOUT_FAIL_OPEN'] is True: while no counter store answers (Redis "
        "and the database counter table both failing, or the database alone without Redis), "
        "every password is checked and none is counted or locked, so an attacker who can "
        "cause or wait for such an outage guesses without limit, and a name locked before "
        "answers differently from an unknown one.",
        "Leave it False (the default: password logins answer 503 lockout_unavailable until a "
        "store answers; tokens and sessions keep working) unless availability of password "
        "logins matters more to you than the guessing limit.",
    ),
    "auth401.W012": (
        Warning,
        "The lockout counts in the database: {why}, although the cache {other!r} is Redis.",
        f"To count in Redis, set {SETTING_NAME}['COUNTER_CACHE'] = {{other!r}} (a dedicated, "
        "persistent, non-evicting Redis is best); to keep the database, set "
        "COUNTER_STORE = 'database'.",
    ),
    "auth401.I001": (
        Info,
        f"DEBUG is True and {SETTING_NAME}['DISCLOSE_ACCOUNT_STATE'] is True: callers who "
        "present the right password or a valid token are told when their account is locked, "
        "suspended, inactive or has an expired password.",
        "Fine in development. For production, decide: keep it True (clearer answers for the "
        "account's owner) or set it to False (every login failure is credentials_invalid). "
        "Silence this with SILENCED_SYSTEM_CHECKS = ['auth401.I001'].",
    ),
}


def _message(check_id: str, **params: str) -> CheckMessage:
    level, message, hint = DEPLOYMENT[check_id]
    return level(message.format(**params), hint=hint.format(**params), id=check_id)


def _uses_simplejwt() -> bool:
    """True when a default authentication class is simplejwt's JWT class or a subclass."""
    drf = getattr(settings, "REST_FRAMEWORK", {}) or {}
    try:
        base = import_string(JWT_BASE)
    except ImportError:
        return False
    for path in drf.get("DEFAULT_AUTHENTICATION_CLASSES", ()):
        try:
            cls = import_string(path) if isinstance(path, str) else path
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, base):
            return True
    return False


def _leeway_is_zero() -> bool:
    leeway = (getattr(settings, "SIMPLE_JWT", {}) or {}).get("LEEWAY", 0)
    if isinstance(leeway, timedelta):
        return leeway == timedelta(0)
    return isinstance(leeway, int | float) and leeway == 0


def _unlock_url_resolves() -> bool:
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("auth401:unlock", args=["x"])
    except NoReverseMatch:
        return False
    return True


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, None)
    if validate(raw):
        return []  # reported by check_settings; the values below cannot be trusted
    merged = {**DEFAULTS, **(raw or {})}
    found: list[CheckMessage] = []
    proxy = [name for name in PROXY_SETTINGS if getattr(settings, name, None)]
    if proxy and not merged["TRUSTED_PROXIES"]:
        found.append(_message("auth401.W007", found=" and ".join(proxy)))
    if _uses_simplejwt() and _leeway_is_zero():
        found.append(_message("auth401.W008"))
    if merged["NOTIFY_OWNER"] and not _unlock_url_resolves():
        found.append(_message("auth401.W011"))
    if merged["LOCKOUT_FAIL_OPEN"]:
        found.append(_message("auth401.W013"))
    found += _counter_store_choice()
    vendor = _counter_database_vendor()
    if vendor not in (None, "postgresql", "sqlite"):
        found.append(_message("auth401.E002", vendor=vendor))
    return found


@register(Tags.security, deploy=True)
def check_disclosure(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``auth401.I001``, under ``manage.py check --deploy`` only."""
    raw = getattr(settings, SETTING_NAME, None)
    if validate(raw):
        return []
    if settings.DEBUG and {**DEFAULTS, **(raw or {})}["DISCLOSE_ACCOUNT_STATE"]:
        return [_message("auth401.I001")]
    return []


def _counter_store_choice() -> list[CheckMessage]:
    """``auth401.W012``: "auto" keeps the counters in the database although another cache
    alias is Redis (the silent fallback a project does not expect)."""
    from django.core.cache import caches

    from .conf import app_settings
    from .counters import choice, is_redis

    chosen = choice()
    if chosen.store != "database" or app_settings.COUNTER_STORE != "auto":
        return []
    for alias in getattr(settings, "CACHES", {}):
        if alias != chosen.alias and is_redis(caches[alias]):
            return [_message("auth401.W012", why=chosen.why, other=alias)]
    return []


#: the store the lockout counts in, and why (``check --deploy``)
COUNTER_STORE_INFO = "auth401.I002"


@register(Tags.security, deploy=True)
def check_counter_store(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``auth401.I002``, under ``manage.py check --deploy`` only: the counters are in Redis,
    through which cache and client library."""
    if validate(getattr(settings, SETTING_NAME, None)):
        return []
    from .counters import choice

    chosen = choice()
    if chosen.store != "redis":
        return []
    return [
        Info(
            f"The lockout counts in Redis: {chosen.why}; each step is one atomic script.",
            hint="Give the counters a dedicated, persistent (appendonly yes), non-evicting "
            "(maxmemory-policy noeviction) Redis through a cache alias of their own and "
            f"{SETTING_NAME}['COUNTER_CACHE'].",
            id=COUNTER_STORE_INFO,
        )
    ]


def _counter_database_vendor() -> str | None:
    """The database vendor: the counters always live there (with Redis, written through)."""
    from django.db import connection

    return connection.vendor


#: the counters' Redis evicts keys
REDIS_EVICTION = "auth401.W010"


@register(Tags.security, deploy=True)
def check_counter_redis(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """auth401.W010, under ``manage.py check --deploy`` only (a development Redis needs no
    persistence, and ``runserver`` or ``migrate`` should not ask Redis for its configuration):
    the counters' Redis may evict keys (a lock or a count could vanish under memory
    pressure), or has no AOF persistence (audit events not yet drained from its stream are
    lost when it restarts).  Read with CONFIG GET where the server allows it; any error (no
    connection, CONFIG renamed or refused) is silence, never a failed check."""
    if validate(getattr(settings, SETTING_NAME, None)):
        return []
    try:
        from .counters import redis_config

        config = redis_config("maxmemory-policy", "appendonly")
        if config is None:
            return []
    except Exception:
        return []
    found: list[CheckMessage] = []
    policy = config.get("maxmemory-policy", "")
    if policy and policy != "noeviction":
        found.append(
            Warning(
                f"The Redis of the auth401 counters evicts keys (maxmemory-policy={policy}).",
                hint="Use a dedicated Redis for the counters with maxmemory-policy noeviction "
                "and AOF persistence (appendonly yes): evicted keys are forgotten locks, "
                "counts and audit events.",
                id=REDIS_EVICTION,
            )
        )
    if config.get("appendonly", "") == "no":
        found.append(
            Warning(
                "The Redis of the auth401 counters has no persistence (appendonly no).",
                hint="Turn on AOF persistence (appendonly yes) on the counters' Redis: audit "
                "events not yet drained from its stream are lost when it restarts (locks and "
                "counts are copied back from the database).",
                id=REDIS_EVICTION,
            )
        )
    return found


#: users loaded through the ORM on PostgreSQL
USER_LOADING = "auth401.I003"


@register(Tags.database, deploy=True)
def check_user_loading(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``auth401.I003``, under ``check --deploy``: on PostgreSQL, users are loaded through the
    ORM instead of auth401's prepared statement (a custom manager, a multi-table user model),
    and why.  Silent where the statement is used, and on other databases."""
    from django.contrib.auth import get_user_model
    from django.db import connections, router

    from .users import way

    if connections[router.db_for_read(get_user_model())].vendor != "postgresql":
        return []
    found = way()
    if found.kind == "statement":
        return []
    return [
        Info(
            "auth401 loads users with their account status through the ORM (a query compiled "
            f"per request) instead of its prepared statement: {found.why}.",
            hint="Nothing to fix: answers are the same; authentication costs a little more.",
            id=USER_LOADING,
        )
    ]
