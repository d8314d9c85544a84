"""The admin package: registration, the user-admin integration, and the account changes
(lock, suspend, unlock, reinstate) that ask why first, from the user list, the AccountStatus
list and an account's page."""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import urlencode

from auth401 import accounts
from auth401.admin import AccountActionsMixin, AccountStatusAdmin, extend_user_admin
from auth401.admin.filters import CleanLookupsMixin
from auth401.models import AccountStatus, AuthEvent
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
STATUSES = "/admin/auth401/accountstatus/"
ACTIONS = [
    "auth401_lock",
    "auth401_unlock",
    "auth401_suspend",
    "auth401_reinstate",
    "auth401_revoke_devices",
]


@pytest.fixture
def root(admin_client):
    return get_user_model().objects.get(username="admin")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def choose(client, url, action, pks, **extra):
    """Pick an action in a changelist: the intermediate page comes back."""
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0"}
    return client.post(url, {**data, **extra})


def apply(client, url, action, pks, **fields):
    """Submit the intermediate page's form."""
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "apply": "1"}
    return client.post(url, {**data, **fields}, follow=True)


# --- registration and the user-admin integration --------------------------------------------


def test_user_admin_keeps_its_class_and_gains_the_actions():
    model_admin = admin.site.get_model_admin(get_user_model())
    assert isinstance(model_admin, UserAdmin)
    assert isinstance(model_admin, AccountActionsMixin)
    assert type(model_admin).__name__ == "UserAdmin"


def test_user_list_offers_the_actions(admin_client, user_factory):
    viewer = user_factory("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    choices = admin_client.get(USERS).context["action_form"].fields["action"].choices
    assert [name for name, _label in choices] == ["", "delete_selected", *ACTIONS]
    assert dict(choices)["auth401_lock"] == "Lock selected accounts"
    admin_client.force_login(viewer)
    assert admin_client.get(USERS).context["action_form"] is None  # no change permission
    viewer.user_permissions.add(Permission.objects.get(codename="change_user"))
    admin_client.force_login(viewer)
    assert admin_client.get(USERS).context["action_form"] is None  # users, not accounts
    viewer.user_permissions.add(Permission.objects.get(codename="change_accountstatus"))
    admin_client.force_login(viewer)
    choices = admin_client.get(USERS).context["action_form"].fields["action"].choices
    assert [name for name, _label in choices] == ["", *ACTIONS]


def test_extend_user_admin_is_opt_out(settings):
    site = admin.AdminSite(name="other")
    assert extend_user_admin(site) is False  # nothing registered for the user model
    site.register(get_user_model(), UserAdmin)
    settings.AUTH401 = {**settings.AUTH401, "ADMIN_USER_ACTIONS": False}
    from django.core.management import call_command

    call_command("check")  # a documented setting: no auth401.E001, the server starts
    assert extend_user_admin(site) is False
    assert type(site.get_model_admin(get_user_model())) is UserAdmin
    settings.AUTH401 = {**settings.AUTH401, "ADMIN_USER_ACTIONS": True}
    assert extend_user_admin(site) is True
    extended = type(site.get_model_admin(get_user_model()))
    assert extended.__mro__[1:4] == (AccountActionsMixin, CleanLookupsMixin, UserAdmin)
    assert extend_user_admin(site) is False  # once


def test_mixin_on_a_project_user_admin(rf, user_factory):
    class ProjectUserAdmin(AccountActionsMixin, UserAdmin):
        actions = ["project_action"]

        @admin.action(description="Project action")
        def project_action(self, request, queryset):
            return None

    site = admin.AdminSite(name="project")
    site.register(get_user_model(), ProjectUserAdmin)
    request = rf.get("/")
    request.user = user_factory("root", is_staff=True, is_superuser=True)
    names = list(site.get_model_admin(get_user_model()).get_actions(request))
    assert names == ["delete_selected", "project_action", *ACTIONS]
    assert extend_user_admin(site) is False  # already has them


def test_lookups_follow_the_user_models_username_field(monkeypatch, admin_client, user_factory):
    """A custom user model names its username field itself: the admin searches and shows
    that field, and never assumes ``username``."""
    model = get_user_model()
    bob = user_factory("bob", email="robert@example.com")
    accounts.lock(bob, reason="Phishing")
    monkeypatch.setattr(model, "USERNAME_FIELD", "email")
    assert AccountStatusAdmin(AccountStatus, admin.site).get_search_fields(None) == (
        "user__email",
        "reason",
    )
    found = admin_client.get(STATUSES, {"q": "robert@example"})
    assert [row.user for row in found.context["cl"].result_list] == [bob]
    assert admin_client.get(STATUSES, {"q": "bob"}).context["cl"].result_list.count() == 0
    page = admin_client.get(f"{STATUSES}{AccountStatus.objects.get().pk}/change/")
    assert page.status_code == 200
    export = admin_client.post(
        "/admin/auth401/authevent/",
        {"action": "export_csv", "_selected_action": [AuthEvent.objects.get().pk]},
    )
    rows = b"".join(export.streaming_content).decode().splitlines()
    # the username as typed at the time, then the user by its USERNAME_FIELD
    assert rows[1].split(",")[6:8] == ["bob", "robert@example.com"]


# --- the intermediate form on the lists -----------------------------------------------------


def test_lock_from_the_user_list_asks_why_and_until_when(admin_client, root, user_factory):
    bob, carol = user_factory("bob"), user_factory("carol")
    page = choose(admin_client, USERS, "auth401_lock", [bob.pk, carol.pk])
    assert page.status_code == 200
    assert page.templates[0].name == "admin/auth401/account_action.html"
    html = page.content.decode()
    assert "<h1>Lock accounts</h1>" in html
    assert "<li>bob</li>" in html and "<li>carol</li>" in html
    assert list(page.context["form"].fields) == ["reason", "duration", "until"]
    assert page.context["form"].fields["reason"].required
    assert f'<input type="hidden" name="_selected_action" value="{bob.pk}">' in html
    assert '<input type="hidden" name="action" value="auth401_lock">' in html
    assert not AccountStatus.objects.exists()  # nothing happens before the form is sent

    refused = apply(admin_client, USERS, "auth401_lock", [bob.pk], reason="  ")
    assert refused.context["form"].errors == {"reason": ["This field is required."]}
    assert not AccountStatus.objects.exists()

    before = timezone.now()
    done = apply(
        admin_client, USERS, "auth401_lock", [bob.pk, carol.pk], reason="Shared  password",
        duration="1h",
    )  # fmt: skip
    assert done.redirect_chain == [(USERS, 302)]
    assert messages_of(done) == ["2 accounts locked."]
    rows = AccountStatus.objects.order_by("user__username")
    assert [(r.user, r.state, r.reason, r.changed_by) for r in rows] == [
        (bob, "locked", "Shared password", root),
        (carol, "locked", "Shared password", root),
    ]
    for row in rows:
        assert (
            before + timedelta(hours=1) <= row.locked_until <= timezone.now() + timedelta(hours=1)
        )
    events = AuthEvent.objects.filter(code="admin_lock").order_by("username")
    assert [(e.username, e.user, e.actor, e.note) for e in events] == [
        ("bob", bob, root, "Shared password"),
        ("carol", carol, root, "Shared password"),
    ]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"reason": "x", "duration": "1h", "until": "2099-01-01T10:00"},
         {"__all__": ["Choose a duration or an end time, not both."]}),
        ({"reason": "x", "until": "2001-01-01T10:00"},
         {"until": ["The end must be in the future."]}),
        ({"reason": "x", "duration": "1y"},
         {"duration": ["Select a valid choice. 1y is not one of the available choices."]}),
        ({"reason": "x" * 256},
         {"reason": ["Ensure this value has at most 255 characters (it has 256)."]}),
    ],
)  # fmt: skip
def test_lock_form_refuses_bad_ends(admin_client, user_factory, fields, errors):
    bob = user_factory("bob")
    response = apply(admin_client, USERS, "auth401_lock", [bob.pk], **fields)
    assert response.status_code == 200
    assert response.context["form"].errors == errors
    assert not AccountStatus.objects.exists() and not AuthEvent.objects.exists()


def test_lock_until_a_time_and_until_unlocked(admin_client, user_factory):
    bob, carol = user_factory("bob"), user_factory("carol")
    apply(admin_client, USERS, "auth401_lock", [bob.pk], reason="Audit", until="2099-01-02T03:04")
    apply(admin_client, USERS, "auth401_lock", [carol.pk], reason="Left the company")
    ends = dict(AccountStatus.objects.values_list("user__username", "locked_until"))
    assert ends["bob"].isoformat() == "2099-01-02T03:04:00+00:00"  # TIME_ZONE = "UTC"
    assert ends["carol"] is None


def test_suspend_needs_a_reason_and_asks_no_end(admin_client, root, user_factory):
    bob = user_factory("bob")
    page = choose(admin_client, USERS, "auth401_suspend", [bob.pk])
    assert list(page.context["form"].fields) == ["reason"]
    refused = apply(admin_client, USERS, "auth401_suspend", [bob.pk])
    assert refused.context["form"].errors == {"reason": ["This field is required."]}
    done = apply(admin_client, USERS, "auth401_suspend", [bob.pk], reason="Chargeback")
    assert messages_of(done) == ["1 account suspended."]
    row = AccountStatus.objects.get(user=bob)
    assert (row.state, row.reason, row.changed_by, row.locked_until) == (
        "suspended", "Chargeback", root, None,
    )  # fmt: skip
    event = AuthEvent.objects.get(code="admin_suspend")
    assert (event.user, event.actor, event.note) == (bob, root, "Chargeback")


def test_unlock_and_reinstate_from_the_status_list(admin_client, root, user_factory):
    bob, carol = user_factory("bob"), user_factory("carol")
    accounts.lock(bob, reason="Phishing")
    accounts.suspend(carol, reason="Chargeback")
    ids = list(AccountStatus.objects.order_by("pk").values_list("pk", flat=True))
    page = choose(admin_client, STATUSES, "auth401_unlock", ids)
    assert list(page.context["form"].fields) == ["reason"]
    assert not page.context["form"].fields["reason"].required
    done = apply(admin_client, STATUSES, "auth401_unlock", ids, reason="Verified by phone")
    assert messages_of(done) == [
        "1 account unlocked.",
        "carol was not locked; its failure counter was cleared.",
    ]
    states = dict(AccountStatus.objects.values_list("user__username", "state"))
    assert states == {"bob": "active", "carol": "suspended"}
    unlock = AuthEvent.objects.get(code="admin_unlock")
    assert (unlock.user, unlock.actor, unlock.note) == (bob, root, "Verified by phone")
    assert AccountStatus.objects.get(user=bob).reason == "Verified by phone"

    done = apply(admin_client, STATUSES, "auth401_reinstate", ids)  # no reason: allowed
    assert messages_of(done) == ["2 accounts reinstated."]
    states = dict(AccountStatus.objects.values_list("user__username", "state"))
    assert states == {"bob": "active", "carol": "active"}
    reinstated = AuthEvent.objects.filter(code="admin_reinstate").order_by("username")
    assert [(e.username, e.actor, e.note) for e in reinstated] == [
        ("bob", root, ""),
        ("carol", root, ""),
    ]


def test_a_failing_change_is_an_error_message_not_a_500(admin_client, user_factory, monkeypatch):
    """The audit table refusing writes (or any error in accounts) is reported, never
    claimed as done; the other accounts still change."""
    bob, carol = user_factory("bob"), user_factory("carol")
    real = accounts.lock

    def lock(user, **kwargs):
        if user.username == "bob":
            raise RuntimeError("audit table refuses writes")
        return real(user, **kwargs)

    monkeypatch.setattr(accounts, "lock", lock)
    done = apply(admin_client, USERS, "auth401_lock", [bob.pk, carol.pk], reason="Phishing")
    assert done.status_code == 200
    shown = messages_of(done)
    assert shown[0] == "1 account locked."
    assert shown[1].startswith("Could not lock bob: the change was not recorded. The error is in ")
    assert list(AccountStatus.objects.values_list("user__username", "state")) == [
        ("carol", "locked")
    ]


# --- an account's page ----------------------------------------------------------------------


def test_account_page_is_a_view_page_with_buttons(admin_client, user_factory):
    bob = user_factory("bob")
    accounts.lock(bob, reason="Shared password")
    row = AccountStatus.objects.get(user=bob)
    page = admin_client.get(f"{STATUSES}{row.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html and "deletelink" not in html
    assert (
        f'href="/admin/auth401/accountstatus/user/{bob.pk}/unlock/" class="auth401-unlock"' in html
    )
    assert f'href="/admin/auth401/accountstatus/user/{bob.pk}/suspend/"' in html
    assert "/lock/" not in html and "/reinstate/" not in html
    assert "Shared password" in html
    # nothing is edited behind auth401.accounts' back
    eve = user_factory("eve")
    posted = admin_client.post(f"{STATUSES}{row.pk}/change/", {"user": eve.pk, "state": "active"})
    assert posted.status_code == 403
    row.refresh_from_db()
    assert (row.user, row.reason, row.state) == (bob, "Shared password", "locked")
    assert admin_client.get(f"{STATUSES}add/").status_code == 403
    assert admin_client.post(f"{STATUSES}{row.pk}/delete/", {"post": "yes"}).status_code == 403


def test_lock_and_unlock_from_the_account_page(admin_client, root, user_factory):
    bob = user_factory("bob")
    url = f"{STATUSES}user/{bob.pk}/lock/"
    page = admin_client.get(url)
    assert page.status_code == 200 and "<li>bob</li>" in page.content.decode()
    done = admin_client.post(url, {"reason": "Stolen laptop", "duration": "24h"}, follow=True)
    row = AccountStatus.objects.get(user=bob)
    assert done.redirect_chain == [(f"{STATUSES}{row.pk}/change/", 302)]
    assert messages_of(done) == ["1 account locked."]
    assert (row.state, row.reason, row.changed_by) == ("locked", "Stolen laptop", root)
    assert "Stolen laptop" in done.content.decode()

    done = admin_client.post(
        f"{STATUSES}user/{bob.pk}/unlock/", {"reason": "Laptop found", "next": "/admin/"},
        follow=True,
    )  # fmt: skip
    assert done.redirect_chain == [("/admin/", 302)]
    row.refresh_from_db()
    assert (row.state, row.reason) == ("active", "Laptop found")
    off_site = admin_client.post(
        f"{STATUSES}user/{bob.pk}/suspend/", {"reason": "x", "next": "https://evil.example/"}
    )
    assert off_site["Location"] == f"{STATUSES}{row.pk}/change/"


def test_account_action_view_refuses(admin_client, client, user_factory):
    bob = user_factory("bob")
    assert admin_client.get(f"{STATUSES}user/{bob.pk}/delete/").status_code == 404
    assert admin_client.get(f"{STATUSES}user/nobody/lock/").status_code == 404
    assert admin_client.get(f"{STATUSES}user/999999/lock/").status_code == 404
    viewer = user_factory("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_accountstatus"))
    client.force_login(viewer)
    assert client.post(f"{STATUSES}user/{bob.pk}/lock/", {"reason": "x"}).status_code == 403
    assert not AccountStatus.objects.exists()


def test_account_actions_need_the_user_change_permission_too(client, user_factory):
    """Locking or suspending ends the user's sessions and tokens: ``change_accountstatus``
    alone is not enough, on the account's page as in the lists."""
    bob = user_factory("bob")
    clerk = user_factory("clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="change_accountstatus"))
    client.force_login(clerk)
    response = client.post(f"{STATUSES}user/{bob.pk}/suspend/", {"reason": "x"})
    assert response.status_code == 403
    assert not AccountStatus.objects.exists()
    assert not AuthEvent.objects.exists()


def test_only_a_superuser_changes_a_superusers_account(client, user_factory):
    root = user_factory("root", is_staff=True, is_superuser=True)
    clerk = user_factory("clerk", is_staff=True)
    for codename in ("change_accountstatus", "change_user", "view_user"):
        clerk.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(clerk)
    response = client.post(f"{STATUSES}user/{root.pk}/suspend/", {"reason": "x"})
    assert response.status_code == 403
    # The user list's action refuses it too, naming the account, and changes nobody.
    bob = user_factory("bob")
    response = client.post(
        "/admin/auth/user/",
        {
            "action": "auth401_suspend",
            "_selected_action": [root.pk, bob.pk],
            "apply": "1",
            "reason": "cleanup",
        },
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert "root was not changed: only a superuser may change a superuser's account." in shown
    assert list(AccountStatus.objects.values_list("user__username", "state")) == [
        ("bob", "suspended")
    ]
    assert list(AuthEvent.objects.values_list("code", "username", "actor__username")) == [
        ("admin_suspend", "bob", "clerk")
    ]


def test_account_action_needs_csrf(user_factory):
    from django.test import Client

    bob = user_factory("bob")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user_factory("root", is_staff=True, is_superuser=True))
    assert strict.post(f"{STATUSES}user/{bob.pk}/lock/", {"reason": "x"}).status_code == 403
    assert not AccountStatus.objects.exists()


def login_section(client, user) -> str:
    """The "Account status" section of ``user``'s page, whitespace collapsed; asserts that it
    comes first, above the user's own fields."""
    html = client.get(f"{USERS}{user.pk}/change/").content.decode()
    start = html.index("Account status</h2>")
    assert start < html.index('name="username"')
    section = html[start:]
    return " ".join(section[: section.index("</fieldset>")].split())


def fact(section: str, name: str) -> str:
    """The text of one row of the facts table (tags kept)."""
    row = section[section.index(f'<tr class="auth401-fact-{name}">') :]
    return row[: row.index("</td></tr>")].split("<td>", 1)[1].strip()


def test_user_page_shows_the_account_status_and_its_buttons(admin_client, user_factory):
    bob = user_factory("bob")
    section = login_section(admin_client, bob)
    assert fact(section, "state") == '<span class="auth401-state">active</span>'
    assert fact(section, "reason") == "-"
    assert fact(section, "actor") == "-"
    assert fact(section, "end") == "-"
    assert fact(section, "counter") == '<span class="auth401-counter">0 of 5</span>'
    assert "No event of this user names a client address." in fact(section, "addresses")
    assert (
        f'<a class="button auth401-lock" href="/admin/auth401/accountstatus/user/{bob.pk}/lock/">'
        "Lock</a>"
    ) in section
    assert f'/admin/auth401/accountstatus/user/{bob.pk}/suspend/">Suspend</a>' in section
    assert "unlock" not in section and "reinstate" not in section
    assert '<a href="/admin/auth401/authevent/?q=bob">This user\'s events</a>' in section
    # the user form still saves: the section is read-only, and absent from the add page
    assert "auth401_account" not in admin_client.get(f"{USERS}add/").content.decode()


# --- trusted devices --------------------------------------------------------------------------


def _device_of(username: str, agent: str) -> None:
    from django.test import Client

    client = Client(REMOTE_ADDR="10.0.0.1", HTTP_USER_AGENT=agent)
    login = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert login.status_code == 302


def test_user_page_lists_the_devices_and_revokes_one(admin_client, user_factory):
    from auth401.models import Device

    bob = user_factory("bob")
    _device_of("bob", "Firefox/140.0")
    _device_of("bob", "curl/8.5.0")
    page = admin_client.get(f"{USERS}{bob.pk}/change/")
    html = page.content.decode()
    assert "Trusted devices" in html
    assert "Firefox/140.0" in html and "curl/8.5.0" in html and "10.0.0.1" in html
    [formset] = [f.formset for f in page.context["inline_admin_formsets"]]
    assert [form.instance.user_agent for form in formset.forms] == ["curl/8.5.0", "Firefox/140.0"]

    # Saving the user's page with one box ticked revokes that device only.
    data = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if value is not None and key not in ("password", "groups", "user_permissions")
    }
    data.update(
        {
            "date_joined_0": bob.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": bob.date_joined.strftime("%H:%M:%S"),
            f"{formset.prefix}-TOTAL_FORMS": "2",
            f"{formset.prefix}-INITIAL_FORMS": "2",
            f"{formset.prefix}-MIN_NUM_FORMS": "0",
            f"{formset.prefix}-MAX_NUM_FORMS": "1000",
            f"{formset.prefix}-0-id": str(formset.forms[0].instance.pk),
            f"{formset.prefix}-0-user": str(bob.pk),
            f"{formset.prefix}-0-revoke": "on",
            f"{formset.prefix}-1-id": str(formset.forms[1].instance.pk),
            f"{formset.prefix}-1-user": str(bob.pk),
        }
    )
    data.pop("last_login", None)
    saved = admin_client.post(f"{USERS}{bob.pk}/change/", data)
    assert saved.status_code == 302, saved.context["errors"] if saved.context else saved
    revoked = dict(Device.objects.values_list("user_agent", "revoked_at"))
    assert revoked["curl/8.5.0"] is not None
    assert revoked["Firefox/140.0"] is None


def test_revoke_all_devices_from_the_user_page_and_the_user_list(admin_client, root, user_factory):
    from auth401.models import Device

    bob = user_factory("bob")
    carol = user_factory("carol")
    for name in ("bob", "bob", "carol"):
        _device_of(name, "Firefox/140.0")
    html = admin_client.get(f"{USERS}{bob.pk}/change/").content.decode()
    url = f"/admin/auth401/accountstatus/user/{bob.pk}/revoke_devices/"
    assert f'<a class="button auth401-revoke_devices" href="{url}">Revoke devices</a>' in html

    done = admin_client.post(url, {"reason": "Lost phone"}, follow=True)
    assert messages_of(done) == ["1 account had their trusted devices revoked."]
    assert Device.objects.filter(user=bob, revoked_at__isnull=True).count() == 0
    assert Device.objects.filter(user=carol, revoked_at__isnull=True).count() == 1
    event = AuthEvent.objects.get(code="devices_revoked")
    assert (event.user, event.actor, event.note) == (bob, root, "2 device(s): Lost phone")

    done = apply(admin_client, USERS, "auth401_revoke_devices", [carol.pk], reason="")
    assert messages_of(done) == ["1 account had their trusted devices revoked."]
    assert not Device.objects.filter(revoked_at__isnull=True).exists()


def test_devices_off_hides_them_in_the_admin(admin_client, user_factory, auth401_settings):
    bob = user_factory("bob")
    _device_of("bob", "Firefox/140.0")
    auth401_settings(DEVICES_ENABLED=False)
    html = admin_client.get(f"{USERS}{bob.pk}/change/").content.decode()
    assert "Firefox/140.0" not in html and "revoke_devices" not in html
    choices = admin_client.get(USERS).context["action_form"].fields["action"].choices
    assert "auth401_revoke_devices" not in dict(choices)


# -- bad input: a warning or a redirect, never a 500 ----------------------------------------------


@pytest.mark.parametrize("selected", ["abc", "", "1.5", "1\x00", "99999999999999999999"], ids=repr)
@pytest.mark.parametrize(
    ("url", "action"),
    [
        (USERS, "auth401_lock"),
        (USERS, "auth401_suspend"),
        (USERS, "delete_selected"),
        (STATUSES, "auth401_unlock"),
        (STATUSES, "auth401_reinstate"),
    ],
)
def test_an_action_on_a_selection_that_is_no_key_changes_nothing(
    admin_client, user_factory, caplog, url, action, selected
):
    """A hand-made POST whose ``_selected_action`` is no primary key (Django's filter raised
    ValueError, a 500): a warning on the list, nothing changed, logged at INFO."""
    caplog.set_level(logging.INFO, logger="auth401")
    bob = user_factory("bob")
    accounts.lock(bob, reason="x")
    before = AuthEvent.objects.count()
    data = {"action": action, "_selected_action": [str(bob.pk), selected], "apply": "1"}
    response = admin_client.post(url, {**data, "reason": "r"})
    assert response.status_code == 302
    assert response["Location"] == url
    page = admin_client.get(response["Location"])
    assert messages_of(page) == [
        "The selection holds items that do not exist. No items have been changed."
    ]
    assert AuthEvent.objects.count() == before
    assert AccountStatus.objects.get(user=bob).state == "locked"
    assert get_user_model().objects.filter(pk=bob.pk).exists()
    assert [(r.levelno, r.exc_info) for r in caplog.records if r.name == "auth401"] == [
        (logging.INFO, None)
    ]


@pytest.mark.parametrize(
    "query",
    [
        "username=%00",
        "username__startswith=a%00",
        "username__in=a,%00",
        "username__regex=(",
        "last_login__year=99999",
        "date_joined__year=-5",
        "e=1&last_login__year=99999",
        "q=%00",
    ],
)
@pytest.mark.parametrize("url", [USERS, STATUSES, "/admin/auth401/authevent/"])
def test_lookups_the_database_refuses_are_a_redirect(admin_client, user_factory, url, query):
    """The user admin auth401 extends, and auth401's own: a NUL (PostgreSQL refuses it), a
    regular expression that does not compile, a year no date holds: the list without them
    (or ``?e=1``, as Django answers lookups it cannot build), never a 500."""
    user_factory("bob")
    field = {USERS: "username", STATUSES: "reason", "/admin/auth401/authevent/": "note"}[url]
    date = {USERS: "last_login", STATUSES: "changed_at"}.get(url, "created_at")
    query = (
        query.replace("username", field).replace("last_login", date).replace("date_joined", date)
    )
    response = admin_client.get(f"{url}?{query}")
    assert response.status_code == 302, response.content[:300]
    assert response["Location"] in (f"{url}?", f"{url}?e=1")
    assert admin_client.get(response["Location"]).status_code == 200


def test_a_lookup_the_admin_does_not_allow_is_a_400_logged_at_info(admin_client, caplog):
    """``DisallowedModelAdminLookup``: Django's 400, logged by auth401 at INFO without a
    traceback (it is the client's input, not an unexpected error)."""
    caplog.set_level(logging.INFO, logger="auth401")
    response = admin_client.get(f"{STATUSES}?user__password__startswith=pbkdf2")
    assert response.status_code == 400
    records = [r for r in caplog.records if r.name == "auth401"]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]
    assert (
        records[0]
        .getMessage()
        .startswith(f"auth401: client error DisallowedModelAdminLookup on GET {STATUSES} (")
    )


def test_user_page_an_administrators_lock(admin_client, root, user_factory):
    bob = user_factory("bob")
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False):
        accounts.lock(bob, reason="Phishing", by=root, until=timedelta(hours=3))
        status = AccountStatus.objects.get(user=bob)
        section = login_section(admin_client, bob)
    assert fact(section, "state") == (
        '<span class="auth401-state">locked</span> (by an administrator: refuses every login, '
        "sessions and tokens included)"
    )
    assert fact(section, "reason") == "Phishing"
    assert fact(section, "actor") == (
        f'<a href="/admin/auth/user/{root.pk}/change/">admin</a> &middot; 2026-12-01 09:00:00'
    )
    assert fact(section, "end") == "2026-12-01 12:00:00 (in 3 hours)"
    assert (
        f'<a class="button auth401-unlock" href="/admin/auth401/accountstatus/user/{bob.pk}'
        '/unlock/">Unlock</a>'
    ) in section
    assert f'<a href="/admin/auth401/accountstatus/{status.pk}/change/">' in section
    # once the end has passed the page says active, as the login does
    with time_machine.travel(datetime(2026, 12, 1, 12, 0, 1, tzinfo=UTC), tick=False):
        section = login_section(admin_client, bob)
    assert fact(section, "state") == '<span class="auth401-state">active</span>'
    assert (fact(section, "reason"), fact(section, "end")) == ("-", "-")


def test_user_page_suspended_and_inactive(admin_client, user_factory):
    bob = user_factory("bob", is_active=False)
    accounts.suspend(bob, reason="Chargeback")
    section = login_section(admin_client, bob)
    assert fact(section, "state") == (
        '<span class="auth401-state">suspended</span> (refuses every login, sessions and '
        'tokens included) <br><span class="auth401-inactive">Django\'s “active” flag is off: '
        "every login is refused (account_inactive).</span>"
    )
    assert fact(section, "reason") == "Chargeback"
    assert fact(section, "actor").startswith("code or a command (no administrator) &middot; ")
    assert fact(section, "end") == "until reinstated"
    assert f'/admin/auth401/accountstatus/user/{bob.pk}/reinstate/">Reinstate</a>' in section


LOCK_END = re.compile(
    r'<strong class="auth401-counter-locked">locked until '
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)</strong>"
)


def lock_end(text: str) -> datetime:
    found = LOCK_END.search(text)
    assert found, text
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)


def test_user_page_an_automatic_lock_and_its_end(
    admin_client, api_client, auth401_settings, user_factory
):
    """Wrong passwords lock the account: the page names the lockout, the reason, and the end
    (the account's and the counter's), and the address the guesses came from."""
    auth401_settings(FAILURE_LIMIT=3, IP_FAILURE_LIMIT=50)
    ann = user_factory("ann")
    for _ in range(3):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ann", "x"), REMOTE_ADDR="198.51.100.4")
    refused = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("ann", PASSWORD), REMOTE_ADDR="198.51.100.4"
    )
    assert refused.json()["code"] == "account_locked"
    before = timezone.now()
    section = login_section(admin_client, ann)
    status = AccountStatus.objects.get(user=ann)
    assert fact(section, "state") == (
        '<span class="auth401-state">locked</span> (automatically, by the lockout: refuses '
        "password logins only)"
    )
    assert fact(section, "reason") == "Locked automatically after 3 failed logins"
    assert fact(section, "actor").startswith("the lockout &middot; ")
    end = fact(section, "end")
    assert end == f"{status.locked_until:%Y-%m-%d %H:%M:%S} (in 15 minutes)"
    counter_end = lock_end(fact(section, "counter"))
    assert before + timedelta(minutes=14) < counter_end <= before + timedelta(minutes=15)
    addresses = fact(section, "addresses")
    assert "<td>198.51.100.4</td>" in addresses
    assert '<span class="auth401-counter">3 of 50</span>' in addresses
    assert "auth401-refused" not in addresses and "Unlock address" not in addresses


def test_user_page_shows_the_address_lock_that_refuses_the_user(
    admin_client, api_client, auth401_settings, user_factory
):
    """A user refused only by an address lock does not look normal: the page shows the lock
    of the address their events came from, and unlocks it with a reason, back to the page."""
    auth401_settings(IP_FAILURE_LIMIT=2, FAILURE_LIMIT=50)
    ann = user_factory("ann")
    api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("ann", "typo"), REMOTE_ADDR="192.0.2.8")
    for name in ("nobody-1", "nobody-2"):
        api_client.get("/api/me/", HTTP_AUTHORIZATION=basic(name, "x"), REMOTE_ADDR="203.0.113.9")
    refused = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("ann", PASSWORD), REMOTE_ADDR="203.0.113.9"
    )
    assert refused.json()["code"] == "address_locked"
    before = timezone.now()
    section = login_section(admin_client, ann)
    assert fact(section, "state") == '<span class="auth401-state">active</span>'
    assert fact(section, "counter") == '<span class="auth401-counter">1 of 50</span>'
    rows = fact(section, "addresses")
    row = rows[rows.index('<tr class="auth401-address auth401-refused">') :]
    row = row[: row.index("</tr>")]
    assert row.startswith('<tr class="auth401-address auth401-refused"> <td>203.0.113.9</td>')
    assert "(address_locked)" in row
    ends = lock_end(row)
    assert before + timedelta(minutes=14) < ends <= before + timedelta(minutes=15)
    page = f"{USERS}{ann.pk}/change/"
    unlock = "/admin/auth401/authevent/dashboard/unlock-address/?" + urlencode(
        {"address": "203.0.113.9", "next": page}
    )
    assert f'<a class="button auth401-unlock-address" href="{escape(unlock)}">' in row
    # the address of ann's typo before is listed, counted and not locked
    other = rows[rows.index('<tr class="auth401-address"> <td>192.0.2.8</td>') :]
    assert '<span class="auth401-counter">1 of 2</span>' in other[: other.index("</tr>")]
    assert rows.count("auth401-refused") == 1

    form = admin_client.get(unlock).content.decode()
    assert (
        "Recorded in the note of the address&#x27;s admin_unlock event in the audit trail (an "
        "address has no account status)."
    ) in form
    assert (
        escape(
            "The address's failure counter and lock are cleared, and the audit trail gets an "
            "admin_unlock event for 203.0.113.9 (in its client IP column) naming you, with "
            "“address 203.0.113.9: <reason>” as its note. No account's status changes."
        )
        in form
    )
    assert f'<input type="hidden" name="next" value="{page}">' in form
    done = admin_client.post(
        unlock, {"address": "203.0.113.9", "next": page, "reason": "Office NAT"}, follow=True
    )
    assert done.redirect_chain == [(page, 302)]
    assert messages_of(done) == ["Unlocked 203.0.113.9."]
    event = AuthEvent.objects.get(code="admin_unlock")
    assert (event.ip, event.user, event.actor.username, event.note) == (
        "203.0.113.9", None, "admin", "address 203.0.113.9: Office NAT",
    )  # fmt: skip
    assert not AccountStatus.objects.filter(user=ann).exists()
    assert "auth401-refused" not in login_section(admin_client, ann)


# --- the user list: a state column and filter -----------------------------------------------


@pytest.fixture
def states(user_factory):
    """One user per state: no row, reinstated, a lock that ended, an administrator's lock,
    an automatic lock, a suspension."""
    users = {name: user_factory(name) for name in
             ("plain", "reinstated", "ended", "locked", "auto", "suspended")}  # fmt: skip
    accounts.suspend(users["reinstated"], reason="x")
    accounts.reinstate(users["reinstated"])
    accounts.lock(users["ended"], reason="x", until=timezone.now() - timedelta(seconds=1))
    accounts.lock(users["locked"], reason="x", until=timedelta(hours=1))
    accounts.auto_lock(users["auto"], seconds=900, failures=5)
    accounts.suspend(users["suspended"], reason="x")
    return users


def test_user_list_has_a_state_column(admin_client, states):
    response = admin_client.get(USERS)
    rows = {row.username: row for row in response.context["cl"].result_list}
    admin_ = response.context["cl"].model_admin
    shown = {name: admin_.auth401_state(row) for name, row in rows.items()}
    assert shown == {
        "admin": "active", "plain": "active", "reinstated": "active", "ended": "active",
        "locked": "locked", "auto": "locked (automatic)", "suspended": "suspended",
    }  # fmt: skip
    html = response.content.decode()
    assert '<th scope="col" class="sortable column-auth401_state">' in html
    assert '<td class="field-auth401_state">locked (automatic)</td>' in html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("active", ["admin", "ended", "plain", "reinstated"]),
        ("locked", ["auto", "locked"]),
        ("automatic", ["auto"]),
        ("manual", ["locked"]),
        ("suspended", ["suspended"]),
        ("nonsense", []),
    ],
)
def test_user_list_filters_by_account_state(admin_client, states, value, expected):
    response = admin_client.get(USERS, {"auth401_state": value})
    assert response.status_code == 200
    found = sorted(u.username for u in response.context["cl"].result_list)
    assert found == expected


def test_user_list_filter_choices(admin_client, states):
    html = " ".join(admin_client.get(USERS).content.decode().split())
    section = html[html.index("By account state") :]
    section = section[: section.index("</ul>")]
    assert re.findall(r'<a href="\?([^"]*)">([^<]*)</a>', section) == [
        ("", "All"),
        ("auth401_state=active", "active"),
        ("auth401_state=locked", "locked"),
        ("auth401_state=automatic", "locked automatically"),
        ("auth401_state=manual", "locked by an administrator"),
        ("auth401_state=suspended", "suspended"),
    ]


def test_user_list_queries_do_not_grow_with_the_users(admin_client, user_factory):
    """The state column reads the joined account status: as many queries for 60 users in
    every state as for one."""

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(USERS)
            assert response.status_code == 200
        return len(queries)

    few = count()
    for i in range(20):
        accounts.lock(user_factory(f"l{i}"), reason="x")
        accounts.suspend(user_factory(f"s{i}"), reason="x")
        user_factory(f"a{i}")
    assert count() == few
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(USERS, {"auth401_state": "locked"})
    # a filtered list runs inside a savepoint (CleanLookupsMixin): two statements more
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == few


def test_user_page_when_the_counters_fail(admin_client, user_factory, monkeypatch, caplog):
    """A counter store that does not answer costs the counters, never the page."""
    from django.db import DatabaseError

    from auth401.admin import login_facts

    class Down:
        def peek(self, key):
            raise DatabaseError("counters down")

    bob = user_factory("bob")
    accounts.suspend(bob, reason="Chargeback")
    monkeypatch.setattr(login_facts, "get_store", Down)
    section = login_section(admin_client, bob)
    assert fact(section, "state").startswith('<span class="auth401-state">suspended</span>')
    assert fact(section, "reason") == "Chargeback"
    assert fact(section, "counter") == (
        '<span class="errornote">The failure counters could not be read; the error is in the '
        "server log.</span>"
    )
    assert "auth401-fact-addresses" not in section
    assert "the failure counters of user" in caplog.text


@pytest.mark.parametrize(
    ("action", "records", "reason_goes"),
    [
        ("lock",
         "Each account's status becomes “locked” with this reason, the end, you and the time; "
         "its sessions and tokens issued before now stop working; the audit trail gets an "
         "admin_lock event naming the account and you, with the reason as its note.",
         "Recorded as the reason on each account's status and as the note of its admin_lock "
         "event."),
        ("unlock",
         "Each locked account's status becomes “active” with this reason, you and the time, its "
         "failure counters are cleared, and the audit trail gets an admin_unlock event naming "
         "the account and you, with the reason as its note. An account that is not locked only "
         "has its failure counters cleared; nothing is recorded for it.",
         "Recorded as the reason on each unlocked account's status and as the note of its "
         "admin_unlock event."),
        ("suspend",
         "Each account's status becomes “suspended” with this reason, you and the time; its "
         "sessions and tokens issued before now stop working; the audit trail gets an "
         "admin_suspend event naming the account and you, with the reason as its note.",
         "Recorded as the reason on each account's status and as the note of its admin_suspend "
         "event."),
        ("reinstate",
         "Each account's status becomes “active”, whatever it was, with this reason, you and "
         "the time; its failure counters are cleared; the audit trail gets an admin_reinstate "
         "event naming the account and you, with the reason as its note. Sessions and tokens "
         "that a lock or suspension ended stay ended.",
         "Recorded as the reason on each account's status and as the note of its "
         "admin_reinstate event."),
    ],
)  # fmt: skip
def test_each_form_says_what_it_records_where(admin_client, user_factory, action, records,
                                              reason_goes):  # fmt: skip
    bob = user_factory("bob")
    for page in (
        admin_client.get(f"{STATUSES}user/{bob.pk}/{action}/"),
        choose(admin_client, USERS, f"auth401_{action}", [bob.pk]),
    ):
        assert page.context["records"] == records
        assert page.context["form"].fields["reason"].help_text == reason_goes
        html = page.content.decode()
        assert f'<p class="auth401-records" id="auth401-records">{escape(records)}</p>' in html
        assert f'<div class="help">{escape(reason_goes)}</div>' in html
