"""Settings for auth401's own test suite: SQLite + local memory by default; the database of
DATABASE_URL (read by dj-database-url: PostgreSQL, or SQLite URLs) and Redis when DATABASE_URL /
REDIS_URL are set (as .ci/run does)."""

import os
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path

from example_project._env import cache_from_env, database_from_env

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "auth401-tests-not-secret-but-long-enough-for-hs256"
# Tests import example_project.settings (to run its wiring here); with DEBUG off it refuses its
# public development key, so it gets this key too.
os.environ.setdefault("DJANGO_SECRET_KEY", SECRET_KEY)
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = True
LANGUAGE_CODE = "en"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_simplejwt.token_blacklist",
    "auth401",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "auth401.middleware.Auth401Middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "auth401.backends.Auth401Backend",
    "django.contrib.auth.backends.ModelBackend",
]

# Fast hashing keeps the suite quick; the timing tests count hasher calls instead.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "auth401.handlers.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "auth401.authentication.JWTAuthentication",
        "auth401.authentication.TokenAuthentication",
        "auth401.authentication.BasicAuthentication",
        "auth401.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Nesting deeper than 64 levels and bodies over DATA_UPLOAD_MAX_MEMORY_SIZE are a 400.
    "DEFAULT_PARSER_CLASSES": [
        "auth401.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

# The example project's optional OpenAPI setup, when installed (the dev extra brings it). The
# schema class must be set here, not in a test: drf-spectacular's decorators bind it at import.
if all(find_spec(name) for name in ("drf_spectacular", "drf_spectacular_sidecar")):
    INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "auth401.contrib.spectacular.AutoSchema"

SIMPLE_JWT = {
    "TOKEN_REFRESH_SERIALIZER": "auth401.serializers.TokenRefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "auth401.serializers.TokenVerifySerializer",
    "UPDATE_LAST_LOGIN": False,
}

# Rows of non-password failures are written after each request, like password failures, so a
# test sees them at once (tests/test_audit_batch.py covers the default one-second batches).
#
# Most lockout tests reach a lock by sending one wrong password again and again; the default
# REPEATED_PASSWORD_MEMORY (3) counts such repeats once, so the suite counts every failure and
# the tests of repeats (tests/test_lockout.py) set the default back explicitly.
AUTH401: dict = {"AUDIT_BATCH_DELAY": timedelta(0), "REPEATED_PASSWORD_MEMORY": 0}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR.parent / "example_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": database_from_env(BASE_DIR / "test.sqlite3")}
CACHES = {"default": cache_from_env(key_prefix=f"auth401-tests-{os.getpid()}")}

# One test database per test run, so that two runs at once (two checkouts, a developer and
# an editor's runner) cannot drop each other's database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not the shared in-memory database: concurrent threads then wait for SQLite's
    # write lock (the concurrency tests) instead of failing with "database table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_auth401_{os.getpid()}"}
