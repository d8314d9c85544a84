"""Login forms that tell a person why they cannot log in, from the same catalogue text.

``AuthenticationForm`` for ``LoginView(authentication_form=...)`` and
``AdminAuthenticationForm``, which auth401 installs as the default admin site's login form
when the project has not chosen one.  The reason comes from ``Auth401Backend`` (left on the
request), and passes through ``DISCLOSE_ACCOUNT_STATE`` like every API answer.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm as DjangoAdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm as DjangoAuthenticationForm

from .backends import stashed_failure
from .responses import effective


class Auth401FormMixin:
    request: object

    def get_invalid_login_error(self) -> forms.ValidationError:
        failure = stashed_failure(getattr(self, "request", None))
        if failure is None:
            return super().get_invalid_login_error()  # type: ignore[misc]
        failure = effective(failure)
        return forms.ValidationError(
            "%(detail)s %(hint)s",
            code=failure.code,
            params={"detail": failure.render_detail(), "hint": failure.render_hint()},
        )


class AuthenticationForm(Auth401FormMixin, DjangoAuthenticationForm):
    pass


class AdminAuthenticationForm(Auth401FormMixin, DjangoAdminAuthenticationForm):
    pass
