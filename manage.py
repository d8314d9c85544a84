#!/usr/bin/env python
"""Django's command-line utility for the auth401 example project."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    local = os.environ.get("DATABASE_URL", "sqlite:").startswith("sqlite:")
    if sys.argv[1:2] == ["auth401_demo"] and local:
        # The demo on a local SQLite file is for a developer's machine: DEBUG on, unless
        # DJANGO_DEBUG says otherwise.  Against a database server (which may be a real one)
        # the demo's guard stays: DJANGO_DEBUG=1 or --yes.  Everything else (runserver,
        # migrate, check --deploy) runs with DEBUG off by default.
        os.environ.setdefault("DJANGO_DEBUG", "1")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and available on your "
            "PYTHONPATH environment variable? Did you forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
