"""django-axes on bare DRF: AxesStandaloneBackend first, AxesMiddleware last."""

from .base import *  # noqa: F403
from .base import (
    BARE_APPS,
    BARE_MIDDLEWARE,
    BARE_REST_FRAMEWORK,
    BARE_SIMPLE_JWT,
    UNREACHABLE_LIMIT,
)

INSTALLED_APPS = [*BARE_APPS, "axes"]
MIDDLEWARE = [*BARE_MIDDLEWARE, "axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
REST_FRAMEWORK = BARE_REST_FRAMEWORK
SIMPLE_JWT = BARE_SIMPLE_JWT
AXES_FAILURE_LIMIT = UNREACHABLE_LIMIT
