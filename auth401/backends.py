"""``Auth401Backend``: the gate every ``django.contrib.auth.authenticate()`` call passes.

Put it first in ``AUTHENTICATION_BACKENDS``.  For username + password credentials it asks
``auth401.decision.decide`` (the lookup, the lockout, one password check also for unknown
usernames, the account state).  A failure stops the backend chain (``PermissionDenied``, as
django-axes does) so no later backend checks the same password again, and the failure is left
in the request's state for the response layer: DRF's Basic class, simplejwt's token view and
the HTML login forms read it with ``stashed_failure(request)``.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from . import events, lockout, state
from .accounts import failure_for
from .decision import decide, scheme_of
from .exceptions import Auth401Error
from .users import STATUS_RELATION as STATUS_RELATION  # re-exported: the relation's name
from .users import load_user


def stash_failure(request: Any, failure: Auth401Error) -> None:
    if request is not None:
        state.of(request).failure = failure


def stashed_failure(request: Any) -> Auth401Error | None:
    """The failure the backend decided for this request, if any (``state.of(request).failure``)."""
    if request is None:
        return None
    return state.of(request).failure


class Auth401Backend(ModelBackend):
    #: the scheme recorded on failures decided here, unless the request names its own
    scheme = "Password"

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        model = get_user_model()
        if username is None:
            username = kwargs.get(model.USERNAME_FIELD)
        if username is None or password is None:
            return None  # not username + password: for the other backends
        verdict = decide(request, username, password, scheme=scheme_of(request, self.scheme))
        failure = verdict.failure
        if failure is None:
            events.record_success(request, verdict.user, scheme_of(request, self.scheme))
            if request is not None:
                state.of(request).password_login = verdict.user  # devices.set_cookie binds it
            return verdict.user
        if request is not None:
            stash_failure(request, failure)
            if verdict.recorded:
                state.of(request).mark_recorded(failure)
            else:
                events.record_failure(
                    request,
                    failure,
                    username=str(username),
                    # login_busy and lockout_unavailable name no one: batched alike for
                    # real and unknown names
                    user=None if failure.code in lockout.NAMELESS_CODES else verdict.account,
                )
        raise PermissionDenied(failure.code)

    # ModelBackend's own async methods would skip the lockout and the account state: the
    # async API (``aauthenticate()``, ``request.auser()``) runs the sync ones in a thread.
    async def aauthenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        return await sync_to_async(self.authenticate)(request, username, password, **kwargs)

    async def aget_user(self, user_id: Any) -> Any:
        return await sync_to_async(self.get_user)(user_id)

    def get_user(self, user_id: Any) -> Any:
        """Like ModelBackend's, with the AccountStatus joined; locked or suspended: None."""
        user = load_user("pk", user_id)
        if user is None or failure_for(user) is not None:
            return None
        return user
