import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.checks import Error, Info, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from auth401.checks import (
    COUNTER_STORE_INFO,
    DEPLOYMENT,
    MAX_BELOW_DURATION,
    NOT_A_DICT,
    OTHER_VALUE,
    REDIS_EVICTION,
    UNKNOWN_KEY,
    USER_LOADING,
    VALUE_IDS,
    WIRING,
    check_deployment,
    check_disclosure,
    check_settings,
    check_wiring,
)
from auth401.conf import RULES


@pytest.fixture
def leeway(settings):
    """SIMPLE_JWT with a few seconds of leeway (the test settings keep simplejwt's 0)."""
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "LEEWAY": timedelta(seconds=5)}
    return settings


def test_clean_settings_have_no_messages(leeway):
    assert check_settings() == []
    assert check_wiring() == []
    assert check_deployment() == []


def assert_ids(messages, *expected):
    """Exactly these check ids, in this order (django-cors-headers' style)."""
    assert [m.id for m in messages] == list(expected), messages


def test_bad_value_is_an_error_naming_the_key(settings):
    settings.AUTH401 = {"FAILURE_LIMIT": 0}
    assert check_settings() == [
        Error("AUTH401['FAILURE_LIMIT'] must be a positive int, got 0.", id="auth401.E011")
    ]


# key -> a wrong value; one row per rule, each with its own id (checks.VALUE_IDS)
WRONG_VALUES = {
    "FAILURE_LIMIT": 0,
    "FAILURE_WINDOW": 5,
    "IP_FAILURE_LIMIT": -1,
    "LOCKOUT_DURATION": timedelta(0),
    "LOCKOUT_MAX_DURATION": "1h",
    "LOCKOUT_STATUS_CODE": 500,
    "TRUSTED_PROXIES": "10.0.0.0/8",
    "DISCLOSE_ACCOUNT_STATE": "yes",
    "RESPONSE_FORMAT": "xml",
    "API_PATH_PREFIXES": ["api/"],
    "PASSWORD_MAX_AGE": 90,
    "AUDIT_SUCCESS": 1,
    "AUDIT_RETENTION": None,
    "AUDIT_BATCH_DELAY": timedelta(minutes=5),
    "DOCS_URL": "https://example.com/errors/",
    "FALLBACK_EXCEPTION_HANDLER": "not.a.module.handler",
    "COUNTER_STORE": "memcached",
    "COUNTER_CACHE": "no-such-cache",
    "LOCKOUT_ENABLED": "no",
    "LOCKOUT_KEYS": ["email"],
    "NEVER_LOCK_NETWORKS": ["not-a-network"],
    "ALWAYS_LOCK_NETWORKS": ["not-a-network"],
    "COUNTER_TIMEOUT": "fast",
    "ADMIN_USER_ACTIONS": "off",
    "DEVICES_ENABLED": "on",
    "DEVICE_COOKIE_NAME": "device cookie",
    "DEVICE_FAILURE_LIMIT": 0,
    "NOTIFY_OWNER": 1,
    "NOTIFY_NEW_DEVICE": None,
    "NOTIFY_BASE_URL": "https://example.com/app/",
    "LOCKOUT_FAIL_OPEN": "sometimes",
    "REPEATED_PASSWORD_MEMORY": 11,
}


@pytest.mark.parametrize(("key", "value"), WRONG_VALUES.items(), ids=list(WRONG_VALUES))
def test_each_wrong_value_has_its_own_id(settings, key, value):
    if key not in RULES:
        pytest.skip(f"{key} is not an AUTH401 setting in this version")
    settings.AUTH401 = {key: value}
    [error] = check_settings()
    assert error.id == VALUE_IDS[key]
    assert isinstance(error, Error)
    assert error.msg.startswith(f"AUTH401[{key!r}] must be ")
    assert error.msg.endswith(f", got {value!r}.")


def test_every_setting_has_a_value_id_and_a_wrong_value():
    assert set(RULES) <= set(VALUE_IDS)
    assert set(RULES) <= set(WRONG_VALUES)
    every_id = [*VALUE_IDS.values(), UNKNOWN_KEY, NOT_A_DICT, MAX_BELOW_DURATION, OTHER_VALUE]
    assert len(every_id) == len(set(every_id))


def test_unknown_key_is_e001_with_a_suggestion(settings):
    settings.AUTH401 = {"FAILURE_LIMT": 3}
    assert check_settings() == [
        Error(
            "AUTH401['FAILURE_LIMT'] is not a setting.",
            hint="Did you mean 'FAILURE_LIMIT'?",
            id="auth401.E001",
        )
    ]


def test_auth401_not_a_dict(settings):
    settings.AUTH401 = ["FAILURE_LIMIT", 5]
    assert check_settings() == [Error("AUTH401 must be a dict, got list", id="auth401.E010")]


def test_max_duration_shorter_than_duration(settings):
    settings.AUTH401 = {
        "LOCKOUT_DURATION": timedelta(hours=2),
        "LOCKOUT_MAX_DURATION": timedelta(hours=1),
    }
    assert_ids(check_settings(), "auth401.E012")


def test_max_duration_below_the_default_duration(settings):
    settings.AUTH401 = {"LOCKOUT_MAX_DURATION": timedelta(minutes=1)}
    assert_ids(check_settings(), "auth401.E012")


def test_several_problems_each_with_its_id(settings):
    settings.AUTH401 = {"FAILURE_LIMIT": 0, "NOPE": 1, "RESPONSE_FORMAT": "xml"}
    assert_ids(check_settings(), "auth401.E011", "auth401.E001", "auth401.E020")


def test_checks_are_bound(settings):
    settings.AUTH401 = {"LOCKOUT_STATUS_CODE": 500}
    with pytest.raises(SystemCheckError, match=r"auth401\.E017.*LOCKOUT_STATUS_CODE"):
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
    assert_ids(check_wiring(), "auth401.W002")


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


def test_failing_open_states_its_risk(leeway, auth401_settings):
    auth401_settings(LOCKOUT_FAIL_OPEN=True)
    [warning] = check_deployment()
    assert warning == _deployment("auth401.W013")
    assert isinstance(warning, Warning)
    assert "guesses without limit" in warning.msg
    assert "lockout_unavailable" in warning.hint
    auth401_settings(LOCKOUT_FAIL_OPEN=False)
    assert check_deployment() == []


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


def test_debug_with_disclosed_account_state_is_an_info_under_deploy_only(leeway):
    leeway.DEBUG = True
    assert check_deployment() == []
    assert check_disclosure() == [_deployment("auth401.I001")]
    assert isinstance(check_disclosure()[0], Info)


def test_debug_without_disclosed_account_state_is_fine(leeway, auth401_settings):
    leeway.DEBUG = True
    auth401_settings(DISCLOSE_ACCOUNT_STATE=False)
    assert check_disclosure() == []


def test_no_debug_no_disclosure_reminder(leeway):
    leeway.DEBUG = False
    assert check_disclosure() == []


def test_deployment_checks_stay_quiet_on_a_bad_auth401_value(settings):
    settings.DEBUG = True
    settings.USE_X_FORWARDED_HOST = True
    settings.AUTH401 = {"TRUSTED_PROXIES": "10.0.0.0/8"}  # a string, not a list: E001
    assert check_deployment() == []
    assert check_disclosure() == []
    assert_ids(check_settings(), "auth401.E018")


def test_path_prefix_without_a_slash_is_an_error(settings):
    settings.AUTH401 = {"API_PATH_PREFIXES": ["api/"]}
    assert check_settings() == [
        Error(
            "AUTH401['API_PATH_PREFIXES'] must be a list of path prefixes starting with '/', "
            "got ['api/'].",
            id="auth401.E021",
        )
    ]


def _check_output(*args):
    out, err = StringIO(), StringIO()
    call_command("check", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_deployment_checks_are_bound(settings):
    settings.DEBUG = True
    output = _check_output()
    assert "auth401.W008" in output
    assert "auth401.I001" not in output  # a plain `check` (and runserver, migrate) stays quiet


def test_disclosure_reminder_under_check_deploy(settings):
    settings.DEBUG = True
    assert "auth401.I001" in _check_output("--deploy")


def test_every_check_id_is_documented():
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "checks.md"
    listed = set(re.findall(r"^\| `(auth401\.[EWI]\d{3})` \|", page.read_text("utf-8"), re.M))
    documented = {*WIRING, *DEPLOYMENT, *VALUE_IDS.values()}
    documented |= {UNKNOWN_KEY, NOT_A_DICT, MAX_BELOW_DURATION, OTHER_VALUE, REDIS_EVICTION}
    documented |= {USER_LOADING, COUNTER_STORE_INFO}
    assert listed == documented


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


def test_notify_owner_without_auth401_urls_warns(leeway, auth401_settings, settings):
    auth401_settings(NOTIFY_OWNER=True)
    assert check_deployment() == []  # the test URLconf includes auth401.urls
    settings.ROOT_URLCONF = "tests.urls_without_auth401"
    assert check_deployment() == [_deployment("auth401.W011")]
    auth401_settings(NOTIFY_OWNER=False)
    assert check_deployment() == []


def test_counters_written_through_from_redis_need_the_upsert_too(monkeypatch, settings):
    from django.db import connections

    from auth401.checks import check_deployment

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    settings.AUTH401 = {"COUNTER_STORE": "auto"}
    monkeypatch.setattr(connections["default"], "vendor", "mysql")
    assert "auth401.E002" in [m.id for m in check_deployment()]
