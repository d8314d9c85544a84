from datetime import timedelta

import pytest

from auth401.conf import DEFAULTS, Problem, app_settings, validate


def test_defaults_are_the_contract():
    contract = {
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
        "DOCS_URL": None,
        "FALLBACK_EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
    }
    # Keys beyond the contract: where the lockout counters live, and how late the rows of
    # failures that checked no password may be written (issue 6).
    beyond = {
        "COUNTER_STORE": "auto",
        "COUNTER_CACHE": "default",
        "AUDIT_BATCH_DELAY": timedelta(seconds=1),
        "LOCKOUT_ENABLED": True,
        "LOCKOUT_KEYS": ["username", "ip"],
        "NEVER_LOCK_NETWORKS": [],
        "ALWAYS_LOCK_NETWORKS": [],
        "COUNTER_TIMEOUT": timedelta(milliseconds=250),
        "ADMIN_USER_ACTIONS": True,
        "DEVICES_ENABLED": True,
        "DEVICE_COOKIE_NAME": "auth401_device",
        "DEVICE_FAILURE_LIMIT": 5,
        "NOTIFY_OWNER": False,
        "NOTIFY_NEW_DEVICE": False,
        "NOTIFY_BASE_URL": None,
        "LOCKOUT_FAIL_OPEN": False,
        "REPEATED_PASSWORD_MEMORY": 3,
    }
    assert {**contract, **beyond} == DEFAULTS


def test_defaults_validate_clean():
    assert validate(DEFAULTS) == []
    assert validate(None) == []
    assert validate({}) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "AUDIT_BATCH_DELAY",
            timedelta(minutes=2),
            "AUTH401['AUDIT_BATCH_DELAY'] must be a datetime.timedelta from 0 to 60 seconds, got "
            "datetime.timedelta(seconds=120).",
        ),
        ("FAILURE_LIMIT", -1, "AUTH401['FAILURE_LIMIT'] must be a positive int, got -1."),
        ("FAILURE_LIMIT", True, "AUTH401['FAILURE_LIMIT'] must be a positive int, got True."),
        ("IP_FAILURE_LIMIT", "50", "AUTH401['IP_FAILURE_LIMIT'] must be a positive int, got '50'."),
        (
            "FAILURE_WINDOW",
            900,
            "AUTH401['FAILURE_WINDOW'] must be a positive datetime.timedelta, got 900.",
        ),
        (
            "LOCKOUT_DURATION",
            timedelta(0),
            "AUTH401['LOCKOUT_DURATION'] must be a positive datetime.timedelta, "
            "got datetime.timedelta(0).",
        ),
        ("LOCKOUT_STATUS_CODE", 401, "AUTH401['LOCKOUT_STATUS_CODE'] must be 403 or 429, got 401."),
        (
            "TRUSTED_PROXIES",
            ["10.0.0.0/33"],
            "AUTH401['TRUSTED_PROXIES'] must be a list of IP networks such as '10.0.0.0/8', "
            "got ['10.0.0.0/33'].",
        ),
        (
            "RESPONSE_FORMAT",
            "xml",
            "AUTH401['RESPONSE_FORMAT'] must be 'auth401', 'problem', 'standardized_errors' or "
            "'upstream', got 'xml'.",
        ),
        (
            "API_PATH_PREFIXES",
            ["api/"],
            "AUTH401['API_PATH_PREFIXES'] must be a list of path prefixes starting with '/', "
            "got ['api/'].",
        ),
        (
            "DOCS_URL",
            "https://example.com/errors",
            "AUTH401['DOCS_URL'] must be None or a URL containing '{code}', "
            "got 'https://example.com/errors'.",
        ),
        (
            "FALLBACK_EXCEPTION_HANDLER",
            "no.such.handler",
            "AUTH401['FALLBACK_EXCEPTION_HANDLER'] must be the dotted path of an importable "
            "exception handler, got 'no.such.handler'.",
        ),
        (
            "COUNTER_STORE",
            "memcached",
            "AUTH401['COUNTER_STORE'] must be 'auto', 'database' or 'cache', got 'memcached'.",
        ),
        (
            "COUNTER_CACHE",
            "nope",
            "AUTH401['COUNTER_CACHE'] must be the alias of a cache in CACHES, got 'nope'.",
        ),
        (
            "DISCLOSE_ACCOUNT_STATE",
            "yes",
            "AUTH401['DISCLOSE_ACCOUNT_STATE'] must be True or False, got 'yes'.",
        ),
        (
            "PASSWORD_MAX_AGE",
            90,
            "AUTH401['PASSWORD_MAX_AGE'] must be None or a positive datetime.timedelta, got 90.",
        ),
        (
            "DEVICE_COOKIE_NAME",
            "sessionid;",
            "AUTH401['DEVICE_COOKIE_NAME'] must be a cookie name (letters, digits, '-', '_', "
            "'.'), got 'sessionid;'.",
        ),
        (
            "DEVICE_COOKIE_NAME",
            "",
            "AUTH401['DEVICE_COOKIE_NAME'] must be a cookie name (letters, digits, '-', '_', "
            "'.'), got ''.",
        ),
        (
            "DEVICE_FAILURE_LIMIT",
            True,
            "AUTH401['DEVICE_FAILURE_LIMIT'] must be a positive int, got True.",
        ),
        (
            "NOTIFY_BASE_URL",
            "example.com",
            "AUTH401['NOTIFY_BASE_URL'] must be None or a scheme and host such as "
            "'https://example.com', got 'example.com'.",
        ),
        (
            "NOTIFY_BASE_URL",
            "ftp://example.com",
            "AUTH401['NOTIFY_BASE_URL'] must be None or a scheme and host such as "
            "'https://example.com', got 'ftp://example.com'.",
        ),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    assert validate({key: value}) == [Problem(key, message)]


def test_unknown_key_suggests_the_close_one():
    assert validate({"FAILURE_LIMT": 3}) == [
        Problem(
            "FAILURE_LIMT",
            "AUTH401['FAILURE_LIMT'] is not a setting.",
            "Did you mean 'FAILURE_LIMIT'?",
        )
    ]


def test_not_a_dict():
    assert validate(["FAILURE_LIMIT"]) == [Problem("AUTH401", "AUTH401 must be a dict, got list")]


def test_max_duration_shorter_than_duration():
    problems = validate(
        {"LOCKOUT_DURATION": timedelta(hours=2), "LOCKOUT_MAX_DURATION": timedelta(hours=1)}
    )
    assert [p.key for p in problems] == ["LOCKOUT_MAX_DURATION"]


def test_settings_reload_under_override(settings):
    assert app_settings.FAILURE_LIMIT == 5
    assert app_settings.trusted_networks == ()
    settings.AUTH401 = {"FAILURE_LIMIT": 3, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert app_settings.FAILURE_LIMIT == 3
    assert [str(n) for n in app_settings.trusted_networks] == ["10.0.0.0/8"]
    settings.AUTH401 = {}
    assert app_settings.FAILURE_LIMIT == 5
    assert app_settings.trusted_networks == ()


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError):
        app_settings.NOT_A_SETTING  # noqa: B018


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DEVICE_COOKIE_NAME", "__Host-device"),
        ("DEVICE_COOKIE_NAME", "dev.v2"),
        ("NOTIFY_BASE_URL", "https://example.com"),
        ("NOTIFY_BASE_URL", "http://127.0.0.1:8000/"),
        ("DEVICE_FAILURE_LIMIT", 1),
    ],
)
def test_good_device_and_notify_values(key, value):
    assert validate({key: value}) == []


@pytest.mark.parametrize("fmt", ["auth401", "problem", "standardized_errors", "upstream"])
def test_every_response_format_is_valid(fmt):
    assert validate({"RESPONSE_FORMAT": fmt}) == []
