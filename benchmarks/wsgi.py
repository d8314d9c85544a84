"""WSGI entry point for gunicorn; ``DJANGO_SETTINGS_MODULE`` names the stack."""

from django.conf import settings
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

if getattr(settings, "BENCH_PROPOSED", False):
    from benchmarks.proposed import apply

    apply()
