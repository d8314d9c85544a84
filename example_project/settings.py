"""Settings for the auth401 example project.

Runs on SQLite and a local-memory cache by default. Set ``DATABASE_URL`` (any URL that
dj-database-url reads, e.g. ``postgres://127.0.0.1/test`` or ``sqlite:////tmp/demo.sqlite3``)
and ``REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``) to run on PostgreSQL and Redis, so that
several app servers share one lockout state.

``DEBUG`` is off unless ``DJANGO_DEBUG=1`` (``manage.py auth401_demo`` turns it on for itself).
With ``DEBUG`` off the project refuses to start on its development signing key: set
``DJANGO_SECRET_KEY`` (simplejwt signs tokens with it; anyone who knows it can mint tokens).
"""

import os
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from example_project._env import cache_from_env, database_from_env, env_bool

BASE_DIR = Path(__file__).resolve().parent.parent

#: public, in this repository: for DEBUG only
DEVELOPMENT_SECRET_KEY = (
    "django-insecure-auth401-example-project-dev-only-key-do-not-use-in-production"
)
# At least 32 bytes: simplejwt signs HS256 tokens with SECRET_KEY, and PyJWT warns about
# shorter HMAC keys.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
DEBUG = env_bool("DJANGO_DEBUG", False)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "The example project refuses to run with DEBUG off on its development signing key, "
        "which is public: anyone could sign tokens for it. Set the environment variable "
        "DJANGO_SECRET_KEY to a long random value (python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))'), or set DJANGO_DEBUG=1 for local development."
    )
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

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

# OpenAPI (optional: `pip install -e '.[dev]'` or `'.[openapi]'` brings it): /api/schema/ and a
# Swagger UI at /api/docs/ whose JavaScript and CSS come from the sidecar app, never a CDN.
OPENAPI = all(find_spec(name) for name in ("drf_spectacular", "drf_spectacular_sidecar"))
if OPENAPI:
    INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language picks the language of `detail` and `hint` (English or German here); the
    # `code` never changes.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "auth401.middleware.Auth401Middleware",  # right after AuthenticationMiddleware
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "auth401.backends.Auth401Backend",  # first: account status and lockout gate
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "example_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_env(BASE_DIR / "db.sqlite3")}
CACHES = {"default": cache_from_env(key_prefix="auth401-example")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/api/me/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", _("English")), ("de", _("German"))]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "auth401.handlers.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "auth401.authentication.JWTAuthentication",  # wraps simplejwt
        "auth401.authentication.TokenAuthentication",  # wraps rest_framework.authtoken
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
if OPENAPI:
    # Documents auth401's 401/403 answers on every protected operation.
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "auth401.contrib.spectacular.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "auth401 example API",
        "DESCRIPTION": "Every 401 and 403 carries a stable `code`; see the Auth401Error schema.",
        "VERSION": "0.1.0",
        "SERVE_INCLUDE_SCHEMA": False,
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        # drf-spectacular's default hook, then links (login -> refresh -> protected views) and
        # request examples (example_project/openapi.py)
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "example_project.openapi.links_and_examples",
        ],
    }

SIMPLE_JWT = {
    "ROTATE_REFRESH_TOKENS": False,
    "TOKEN_REFRESH_SERIALIZER": "auth401.serializers.TokenRefreshSerializer",
    "UPDATE_LAST_LOGIN": False,
    # A few seconds of clock skew between servers must not turn valid tokens into
    # token_not_yet_valid or token_expired (system check auth401.W008).
    "LEEWAY": timedelta(seconds=5),
}

AUTH401 = {
    "PASSWORD_MAX_AGE": timedelta(days=90),
}

# The example project discloses account states on purpose (that is what it demonstrates), so
# the development reminder auth401.I001 (`check --deploy` only) is silenced. Decide this for your
# own production.
SILENCED_SYSTEM_CHECKS = ["auth401.I001"]
