"""System checks (``manage.py check``).

``auth401.E001``: a bad ``AUTH401`` value (one error per key, naming it).
``auth401.W0NN``: wiring that would make answers imprecise: messages, hints and ids are data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .conf import SETTING_NAME, validate

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
        "follow the auth401 contract.",
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
        "Point COUNTER_CACHE at a django.core.cache.backends.redis.RedisCache, or set "
        "COUNTER_STORE to 'database' (or 'auto').",
    ),
}


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, None)
    return [Error(p.message, hint=p.hint or None, id="auth401.E001") for p in validate(raw)]


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

    from ._counters import is_redis
    from .conf import app_settings

    if validate(getattr(settings, SETTING_NAME, None)):
        return False  # reported as auth401.E001
    return app_settings.COUNTER_STORE == "cache" and not is_redis(
        caches[app_settings.COUNTER_CACHE]
    )


def check_wiring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [Warning(WIRING[i][0], hint=WIRING[i][1], id=i) for i in _wiring_problems()]
