"""auth401's own pages (``auth401.urls``): the self-service unlock link of the lock email.

``unlock`` shows a page with one button (GET changes nothing: mail scanners open links) and
unlocks on POST, through ``accounts.unlock`` with the event ``self_service_unlock``.  It
answers 400 with one message for every link it refuses: bad or expired signature, used
before, an account no longer under the automatic lock the link was sent for (unlocked, locked
again, locked by an admin, suspended).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import accounts, notify
from .models import AccountStatus

logger = logging.getLogger("auth401")

TEMPLATE = "auth401/unlock.html"


def _locked_by(user: Any, changed_at: datetime) -> bool:
    """True while ``user`` is under the automatic lock that began at ``changed_at``."""
    status = AccountStatus.objects.filter(user=user).first()
    return (
        status is not None
        and status.automatic
        and status.changed_at == changed_at
        and status.effective_state() == AccountStatus.State.LOCKED
    )


def _page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    response = TemplateResponse(request, TEMPLATE, context, status=status)
    response["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def unlock(request: HttpRequest, token: str) -> HttpResponse:
    found = notify.read_unlock_token(token)
    if found is None or not _locked_by(*found):
        return _page(request, 400, refused=True)
    user, changed_at = found
    username = user.get_username()
    if request.method == "GET":
        return _page(request, username=username)
    try:
        status = accounts.unlock(
            user,
            reason="self-service unlock link",
            event="self_service_unlock",
            if_changed_at=changed_at,
        )
    except accounts.AccountChangeError:
        logger.exception("auth401: the self-service unlock of user %s failed", user.pk)
        return _page(request, 503, refused=True)
    if status is None or status.changed_at == changed_at:
        return _page(request, 400, refused=True)  # another request used the link first
    return _page(request, username=username, done=True)
