"""auth401's benchmarks: the same small API served by bare DRF + simplejwt, auth401 and
django-axes behind gunicorn, driven over loopback.  Run ``python -m benchmarks.run --help``."""
