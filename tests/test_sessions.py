"""Sessions follow the account: a lock or suspension ends them, for the admin as for DRF."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from auth401 import accounts
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(user_factory):
    return user_factory("root", is_staff=True, is_superuser=True)


def admin_login(client):
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    return client


@pytest.mark.parametrize(
    ("change", "code"), [("lock", "account_locked"), ("suspend", "account_suspended")]
)
def test_lock_or_suspension_ends_admin_and_api_sessions(client, staff, change, code):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        admin_login(client)
        assert client.get("/admin/").status_code == 200
        assert client.get("/api/me/").status_code == 200
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        getattr(accounts, change)(staff)
        assert client.get("/admin/").status_code == 302  # back to the login page
        response = client.get("/api/me/")
        # the session holder proved who they are, so the API says why
        assert (response.status_code, response.json()["code"]) == (403, code)
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        accounts.reinstate(staff)
        # The old session stays ended: it was issued before the lock.
        assert client.get("/admin/").status_code == 302
        response = client.get("/api/me/")
        assert (response.status_code, response.json()["code"]) == (401, "session_expired")
        admin_login(client)
        assert client.get("/admin/").status_code == 200


def test_session_state_is_hidden_when_not_disclosed(client, staff, auth401_settings):
    auth401_settings(DISCLOSE_ACCOUNT_STATE=False)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        admin_login(client)
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        accounts.suspend(staff)
        response = client.get("/api/me/")
    assert (response.status_code, response.json()["code"]) == (401, "credentials_invalid")


def test_password_change_keeps_the_changers_session(client, staff):
    admin_login(client)
    response = client.post(
        "/admin/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "N3w-pass-phrase",
            "new_password2": "N3w-pass-phrase",
        },
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/me/").status_code == 200
