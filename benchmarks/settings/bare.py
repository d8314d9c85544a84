"""Bare DRF + simplejwt: DRF's own classes, default exception handler, ModelBackend."""

from .base import *  # noqa: F403
from .base import BARE_APPS, BARE_MIDDLEWARE, BARE_REST_FRAMEWORK, BARE_SIMPLE_JWT

INSTALLED_APPS = BARE_APPS
MIDDLEWARE = BARE_MIDDLEWARE
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
REST_FRAMEWORK = BARE_REST_FRAMEWORK
SIMPLE_JWT = BARE_SIMPLE_JWT
