import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from auth401.checks import WIRING, check_settings, check_wiring


def ids(messages):
    return [m.id for m in messages]


def test_clean_settings_have_no_messages():
    assert check_settings() == []
    assert check_wiring() == []


def test_bad_value_is_an_error_naming_the_key(settings):
    settings.AUTH401 = {"FAILURE_LIMIT": 0}
    assert check_settings() == [
        Error("AUTH401['FAILURE_LIMIT'] must be a positive int, got 0.", id="auth401.E001")
    ]


def test_checks_are_bound(settings):
    settings.AUTH401 = {"LOCKOUT_STATUS_CODE": 500}
    with pytest.raises(SystemCheckError, match=r"auth401\.E001.*LOCKOUT_STATUS_CODE"):
        call_command("check")


def _warning(check_id):
    message, hint = WIRING[check_id]
    return Warning(message, hint=hint, id=check_id)


def test_foreign_exception_handler(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
    }
    assert check_wiring() == [_warning("auth401.W001")]


@pytest.mark.parametrize(
    "middleware",
    [
        [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "auth401.middleware.Auth401Middleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
    ],
    ids=["missing", "before-auth"],
)
def test_middleware_missing_or_misplaced(settings, middleware):
    settings.MIDDLEWARE = middleware
    assert ids(check_wiring()) == ["auth401.W002"]


def test_backend_not_first(settings):
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "auth401.backends.Auth401Backend",
    ]
    assert check_wiring() == [_warning("auth401.W003")]


def test_upstream_authentication_classes(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
    }
    assert check_wiring() == [_warning("auth401.W004")]


def test_refresh_serializer_not_auth401s(settings):
    settings.SIMPLE_JWT = {}
    assert check_wiring() == [_warning("auth401.W005")]


def test_every_warning_has_a_hint():
    assert all(message and hint for message, hint in WIRING.values())


def test_counters_in_a_per_process_cache(settings):
    settings.AUTH401 = {"COUNTER_STORE": "cache"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert check_wiring() == [_warning("auth401.W006")]
    settings.AUTH401 = {"COUNTER_STORE": "auto"}
    assert check_wiring() == []
