import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.checks import Error, Info, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from auth401.checks import DEPLOYMENT, WIRING, check_deployment, check_settings, check_wiring


def ids(messages):
    return [m.id for m in messages]


@pytest.fixture
def leeway(settings):
    """SIMPLE_JWT with a few seconds of leeway (the test settings keep simplejwt's 0)."""
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "LEEWAY": timedelta(seconds=5)}
    return settings


def test_clean_settings_have_no_messages(leeway):
    assert check_settings() == []
    assert check_wiring() == []
    assert check_deployment() == []


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


def _deployment(check_id, **params):
    level, message, hint = DEPLOYMENT[check_id]
    return level(message.format(**params), hint=hint, id=check_id)


def test_every_deployment_message_has_a_level_and_a_hint():
    for check_id, (level, message, hint) in DEPLOYMENT.items():
        assert level is {"E": Error, "W": Warning, "I": Info}[check_id.split(".")[1][0]]
        assert message
        assert hint


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("USE_X_FORWARDED_HOST", True, "USE_X_FORWARDED_HOST"),
        ("USE_X_FORWARDED_PORT", True, "USE_X_FORWARDED_PORT"),
        (
            "SECURE_PROXY_SSL_HEADER",
            ("HTTP_X_FORWARDED_PROTO", "https"),
            "SECURE_PROXY_SSL_HEADER",
        ),
    ],
)
def test_proxy_settings_without_trusted_proxies(leeway, setting, value, named):
    setattr(leeway, setting, value)
    assert check_deployment() == [_deployment("auth401.W007", found=named)]


def test_proxy_warning_names_every_proxy_setting(leeway):
    leeway.USE_X_FORWARDED_HOST = True
    leeway.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    [warning] = check_deployment()
    assert warning.id == "auth401.W007"
    assert "(USE_X_FORWARDED_HOST and SECURE_PROXY_SSL_HEADER set)" in warning.msg


def test_proxy_settings_with_trusted_proxies_are_fine(leeway, auth401_settings):
    leeway.USE_X_FORWARDED_HOST = True
    auth401_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
    assert check_deployment() == []


@pytest.mark.parametrize("value", [None, 0, 0.0, timedelta(0)], ids=["unset", "0", "0.0", "td0"])
def test_jwt_leeway_of_zero(settings, value):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "LEEWAY": value}
    if value is None:
        del settings.SIMPLE_JWT["LEEWAY"]
    assert check_deployment() == [_deployment("auth401.W008")]


@pytest.mark.parametrize("value", [3, 1.5, timedelta(seconds=5)])
def test_jwt_leeway_of_a_few_seconds_is_fine(settings, value):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "LEEWAY": value}
    assert check_deployment() == []


def test_jwt_leeway_does_not_matter_without_jwt_authentication(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "auth401.authentication.BasicAuthentication",
            "not.importable.Authentication",
        ],
    }
    assert check_deployment() == []


def test_jwt_leeway_with_simplejwts_own_class(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication"
        ],
    }
    assert check_deployment() == [_deployment("auth401.W008")]


def test_debug_with_disclosed_account_state_is_an_info(leeway):
    leeway.DEBUG = True
    assert check_deployment() == [_deployment("auth401.I001")]
    assert isinstance(check_deployment()[0], Info)


def test_debug_without_disclosed_account_state_is_fine(leeway, auth401_settings):
    leeway.DEBUG = True
    auth401_settings(DISCLOSE_ACCOUNT_STATE=False)
    assert check_deployment() == []


def test_deployment_checks_stay_quiet_on_a_bad_auth401_value(settings):
    settings.DEBUG = True
    settings.USE_X_FORWARDED_HOST = True
    settings.AUTH401 = {"TRUSTED_PROXIES": "10.0.0.0/8"}  # a string, not a list: E001
    assert check_deployment() == []
    assert ids(check_settings()) == ["auth401.E001"]


def test_path_prefix_without_a_slash_is_an_error(settings):
    settings.AUTH401 = {"API_PATH_PREFIXES": ["api/"]}
    assert check_settings() == [
        Error(
            "AUTH401['API_PATH_PREFIXES'] must be a list of path prefixes starting with '/', "
            "got ['api/'].",
            id="auth401.E001",
        )
    ]


def test_deployment_checks_are_bound(settings):
    settings.DEBUG = True
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "auth401.I001" in out.getvalue() + err.getvalue()
    assert "auth401.W008" in out.getvalue() + err.getvalue()


def test_every_check_id_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^  \| `(auth401\.[EWI]\d{3})` \|", readme, flags=re.M))
    assert listed == {"auth401.E001", *WIRING, *DEPLOYMENT}


def test_counters_on_a_database_without_upsert_returning(monkeypatch, settings):
    from django.db import connections

    from auth401.checks import check_deployment

    connection = connections["default"]
    settings.AUTH401 = {"COUNTER_STORE": "database"}
    monkeypatch.setattr(connection, "vendor", "mysql")
    assert [m.id for m in check_deployment() if m.id == "auth401.E002"] == ["auth401.E002"]
    message = next(m for m in check_deployment() if m.id == "auth401.E002")
    assert "mysql has no INSERT ... ON CONFLICT ... RETURNING" in message.msg
    monkeypatch.setattr(connection, "vendor", "postgresql")
    assert "auth401.E002" not in [m.id for m in check_deployment()]
