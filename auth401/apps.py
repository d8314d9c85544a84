from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class Auth401Config(AppConfig):
    name = "auth401"
    verbose_name = _("Authentication failures")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from . import checks as auth401_checks
        from . import signals  # noqa: F401  (connects the receivers)

        checks.register(auth401_checks.check_settings, checks.Tags.security)
        checks.register(auth401_checks.check_wiring, checks.Tags.security)
        checks.register(auth401_checks.check_deployment, checks.Tags.security)

        from django.apps import apps

        if apps.is_installed("django.contrib.admin"):
            # After the admin's autodiscovery (django.contrib.admin comes first in
            # INSTALLED_APPS): the account actions on the user admin unless
            # ADMIN_USER_ACTIONS is False, and auth401's login form unless the site has one.
            from django.contrib import admin

            from .admin.mixins import extend_user_admin
            from .forms import AdminAuthenticationForm

            extend_user_admin(admin.site)
            if admin.site.login_form is None:
                admin.site.login_form = AdminAuthenticationForm
