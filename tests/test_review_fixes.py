"""Regressions of the audit trail and the lockout: a wrong password with a malformed body is
still recorded; IPv6 clients share their /64 counter.  (These move to per-module files when the
lockout and audit modules settle.)"""

import pytest

from auth401.models import AuthEvent
from tests.conftest import basic

pytestmark = pytest.mark.django_db


def test_wrong_password_with_a_malformed_body_is_still_audited(user, api_client):
    response = api_client.generic(
        "POST",
        "/api/order/basic-only/",
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic("alice", "wrong"),
    )
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")
    event = AuthEvent.objects.get()
    assert (event.code, event.username, event.request_id) == (
        "credentials_invalid",
        "alice",
        response["X-Request-ID"],
    )


def test_ipv6_clients_share_their_64(api_client, auth401_settings):
    from auth401 import lockout

    auth401_settings(IP_FAILURE_LIMIT=2)
    for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(f"u{host}", "x"), REMOTE_ADDR=host)
    assert lockout.peek("2001:db8:1:2::77", ip=True).locked_ms > 0
    assert lockout.peek("2001:db8:1:3::1", ip=True).locked_ms == 0
