"""auth401's forms for people: the login forms (the admin's and LoginView's) say why in words
for a person, with the time left when a lock has one; and the admin's reason form."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone, translation

from auth401 import accounts
from auth401.codes import CATALOGUE
from auth401.exceptions import Auth401Error
from auth401.forms import AccountChangeForm, people_message, time_left
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN_PATHS = ["/admin/login/", "/accounts/login/"]
INVALID = (
    "Invalid username, password or token. Check the username and password and try again. "
    "Repeated failures lock the account for a while."
)


def login_errors(client, path, username, password) -> list[str]:
    response = client.post(path, {"username": username, "password": password})
    assert response.status_code == 200  # the form again, never a bare 403 or a 500
    assert "_auth_user_id" not in client.session
    html = response.content.decode()
    assert "retry_after" not in html and "API token" not in html
    return list(response.context["form"].non_field_errors())


@pytest.fixture
def staff(user_factory):
    return lambda name="bob": user_factory(name, is_staff=True)


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_wrong_password(client, staff, path):
    staff()
    assert login_errors(client, path, "bob", "wrong") == [INVALID]
    assert login_errors(client, path, "nobody", "wrong") == [INVALID]


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_admin_lock_without_an_end_never_says_try_again(client, staff, path):
    accounts.lock(staff(), reason="Phishing")
    assert login_errors(client, path, "bob", PASSWORD) == [
        "This account is locked. Ask an administrator to unlock the account."
    ]


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_admin_lock_with_an_end_says_the_time_left(client, staff, path):
    with time_machine.travel(timezone.now(), tick=False):
        accounts.lock(staff(), until=timedelta(minutes=13, seconds=30))
        assert login_errors(client, path, "bob", PASSWORD) == [
            "This account is locked. Try again in 14 minutes, or ask an administrator to "
            "unlock the account."
        ]


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_automatic_lock_says_the_time_left(client, staff, auth401_settings, path):
    auth401_settings(FAILURE_LIMIT=2, LOCKOUT_DURATION=timedelta(minutes=15))
    staff()
    with time_machine.travel(timezone.now(), tick=False):
        for _ in range(2):
            client.post(path, {"username": "bob", "password": "wrong"})
        expected = [
            "This account is locked. Try again in 15 minutes, or ask an administrator to "
            "unlock the account."
        ]
        assert login_errors(client, path, "bob", PASSWORD) == expected
        assert login_errors(client, path, "bob", "wrong") == expected


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_suspended_and_inactive_keep_the_catalogue_text(client, staff, user_factory, path):
    accounts.suspend(staff("carol"))
    assert login_errors(client, path, "carol", PASSWORD) == [
        "This account is suspended. Contact support to have the account reinstated."
    ]


def test_state_is_hidden_when_not_disclosed(client, staff, auth401_settings):
    auth401_settings(DISCLOSE_ACCOUNT_STATE=False)
    accounts.suspend(staff("carol"))
    assert login_errors(client, "/admin/login/", "carol", PASSWORD) == [INVALID]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Auth401Error("account_locked"),
         ("This account is locked.", "Ask an administrator to unlock the account.")),
        (Auth401Error("account_locked", retry_after=30),
         ("This account is locked.",
          "Try again in 30 seconds, or ask an administrator to unlock the account.")),
        (Auth401Error("account_locked", retry_after=3 * 3600),
         ("This account is locked.",
          "Try again in 3 hours, or ask an administrator to unlock the account.")),
        (Auth401Error("token_revoked"),
         ("The token has been revoked.", "Log in again to get a new token.")),
    ],
)  # fmt: skip
def test_people_message(failure, expected):
    assert people_message(failure) == expected


@pytest.mark.skipif("address_locked" not in CATALOGUE, reason="the catalogue has no address_locked")
def test_people_message_for_a_locked_address():
    detail = str(CATALOGUE["address_locked"].detail)
    assert people_message(Auth401Error("address_locked", retry_after=600)) == (
        detail,
        "Too many failed logins came from your network. Try again in 10 minutes.",
    )
    assert people_message(Auth401Error("address_locked")) == (
        detail,
        "Too many failed logins came from your network. Ask an administrator to unlock it.",
    )


def test_people_message_takes_the_detail_from_the_catalogue_in_german():
    with translation.override("de"):
        detail, _hint = people_message(Auth401Error("account_locked"))
        assert detail == str(CATALOGUE["account_locked"].detail)
        assert detail != "This account is locked."


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1 second"),
        (59, "59 seconds"),
        (59.5, "1 minute"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (14 * 60 - 1, "14 minutes"),
        (119 * 60, "119 minutes"),
        (120 * 60, "2 hours"),
        (46 * 3600 + 1, "47 hours"),
        (47 * 3600 + 1, "2 days"),
        (48 * 3600, "2 days"),
        (30 * 86400, "30 days"),
    ],
)
def test_time_left(seconds, text):
    assert time_left(seconds) == text


# --- the admin's reason form ----------------------------------------------------------------


def test_reason_form_for_a_lock():
    form = AccountChangeForm(
        {"reason": "  Stolen \n laptop ", "duration": "7d"}, reason_required=True, asks_end=True
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["reason"] == "Stolen laptop"
    assert form.end() == timedelta(days=7)
    until = AccountChangeForm({"reason": "x", "until": "2099-05-06T07:08"}, asks_end=True)
    assert until.is_valid()
    assert until.end().isoformat() == "2099-05-06T07:08:00+00:00"
    forever = AccountChangeForm({"reason": "x"}, reason_required=True, asks_end=True)
    assert forever.is_valid() and forever.end() is None


def test_reason_form_without_an_end():
    form = AccountChangeForm({"reason": "", "duration": "7d"})
    assert list(form.fields) == ["reason"]
    assert form.is_valid() and form.cleaned_data == {"reason": ""}
    required = AccountChangeForm({"reason": " "}, reason_required=True)
    assert required.errors == {"reason": ["This field is required."]}
