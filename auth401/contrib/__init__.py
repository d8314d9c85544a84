"""Optional integrations with third-party packages.

Nothing in auth401 imports these modules: each is imported only by a project that names it in
its settings (for example ``auth401.contrib.spectacular.AutoSchema``), and needs its package
installed (``pip install 'django-auth401[openapi]'``).
"""
