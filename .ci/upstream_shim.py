"""pytest plugin: run simplejwt's or DRF's own test suite with auth401 configured as its README
says (``-p upstream_shim``).

Before the suite's conftest calls ``settings.configure()``, the call is wrapped so that the
suite's settings gain auth401's: the app, the middleware after ``AuthenticationMiddleware``,
``Auth401Backend`` first, the exception handler, auth401's four authentication classes as the
defaults and its refresh serializer.  Once Django is set up, the upstream classes the tests
import are auth401's (simplejwt's ``JWTAuthentication`` and ``TokenRefreshSerializer``; DRF's
Token, Basic and Session classes), also after a test ``reload()``s their module as simplejwt's
tests do.

``AUTH401_SHIM_SETTINGS`` (a JSON object) adds to the ``AUTH401`` settings, for example
``{"RESPONSE_FORMAT": "problem"}``.  ``AUTH401_UNSWAPPED=1`` leaves everything upstream's (the
baseline).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from datetime import timedelta
from typing import Any

import pytest

SWAPPED = os.environ.get("AUTH401_UNSWAPPED") != "1"

SETTINGS: dict[str, Any] = json.loads(os.environ.get("AUTH401_SHIM_SETTINGS") or "{}")

#: upstream module -> {class name -> auth401's class}
SWAPS = {
    "rest_framework_simplejwt.authentication": {
        "JWTAuthentication": "auth401.authentication.JWTAuthentication",
    },
    "rest_framework_simplejwt.serializers": {
        "TokenRefreshSerializer": "auth401.serializers.TokenRefreshSerializer",
    },
    "rest_framework.authentication": {
        "TokenAuthentication": "auth401.authentication.TokenAuthentication",
        "BasicAuthentication": "auth401.authentication.BasicAuthentication",
        "SessionAuthentication": "auth401.authentication.SessionAuthentication",
    },
}

BACKEND = "auth401.backends.Auth401Backend"

AUTH401_CLASSES = [
    "auth401.authentication.JWTAuthentication",
    "auth401.authentication.TokenAuthentication",
    "auth401.authentication.BasicAuthentication",
    "auth401.authentication.SessionAuthentication",
]


def _with_auth401(options: dict[str, Any]) -> dict[str, Any]:
    """The suite's settings plus the README's configuration."""
    apps = list(options.get("INSTALLED_APPS", ()))
    if "rest_framework.authtoken" not in apps:
        apps.append("rest_framework.authtoken")  # auth401's TokenAuthentication reads it
    options["INSTALLED_APPS"] = (*apps, "auth401")
    middleware = list(options.get("MIDDLEWARE", ()))
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    position = middleware.index(auth) + 1 if auth in middleware else len(middleware)
    middleware.insert(position, "auth401.middleware.Auth401Middleware")
    options["MIDDLEWARE"] = tuple(middleware)
    options.pop("MIDDLEWARE_CLASSES", None)
    options["AUTHENTICATION_BACKENDS"] = [BACKEND, "django.contrib.auth.backends.ModelBackend"]
    options["REST_FRAMEWORK"] = {
        **options.get("REST_FRAMEWORK", {}),
        "EXCEPTION_HANDLER": "auth401.handlers.exception_handler",
        "DEFAULT_AUTHENTICATION_CLASSES": AUTH401_CLASSES,
    }
    options["SIMPLE_JWT"] = {
        **options.get("SIMPLE_JWT", {}),
        "TOKEN_REFRESH_SERIALIZER": "auth401.serializers.TokenRefreshSerializer",
    }
    # Audit rows of every failure at the end of its request (no batching thread, whose own
    # connection cannot see an in-memory SQLite database).
    options["AUTH401"] = {"AUDIT_BATCH_DELAY": timedelta(0), **SETTINGS}
    return options


def _swap(module: types.ModuleType) -> None:
    from django.utils.module_loading import import_string

    for name, replacement in SWAPS.get(module.__name__, {}).items():
        setattr(module, name, import_string(replacement))


def _reload(module: types.ModuleType) -> types.ModuleType:
    reloaded = _original_reload(module)
    if module.__name__ in SWAPS:
        _swap(reloaded)
    return reloaded


_original_reload = importlib.reload


try:
    import dj_database_url  # noqa: F401  # DRF's conftest imports it (DATABASE_URL is unset here)
except ImportError:
    _stub = types.ModuleType("dj_database_url")
    _stub.config = lambda **_: {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}  # type: ignore[attr-defined]
    sys.modules["dj_database_url"] = _stub


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: Any) -> None:
    if not SWAPPED:
        return
    from django.conf import LazySettings

    configure = LazySettings.configure

    def configure_with_auth401(self: Any, default_settings: Any = None, **options: Any) -> None:
        if default_settings is None:
            configure(self, **_with_auth401(options))
        else:
            configure(self, default_settings, **_with_auth401(options))

    LazySettings.configure = configure_with_auth401  # type: ignore[method-assign]


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: Any) -> None:
    if not SWAPPED:
        return
    from django.conf import settings

    # DRF's conftest sets its own backends after configure() when django-guardian is installed
    backends = list(settings.AUTHENTICATION_BACKENDS)
    if backends[:1] != [BACKEND]:
        settings.AUTHENTICATION_BACKENDS = [BACKEND, *(b for b in backends if b != BACKEND)]
    for name in SWAPS:
        _swap(importlib.import_module(name))
    importlib.reload = _reload  # simplejwt's tests reload its authentication module
