"""The auth401 example project: run it with ``manage.py`` at the repo root (not packaged)."""
