"""ASGI entry point of the auth401 example project.

    .venv/bin/uvicorn example_project.asgi:application

runs the same contract as ``manage.py runserver``, through Django's async handler and
auth401's async middleware path. In DEBUG, static files (the admin's, Swagger UI's from the
sidecar) are served too, as runserver does; in production let the web server serve them.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

application = get_asgi_application()

if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
