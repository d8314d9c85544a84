"""The admin with a custom user model that has no ``username`` field (``USERNAME_FIELD =
"email"``), in a separate Django process with its own settings: every admin page, search,
action and export works with the model's own username field."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODELS = """
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models


class Manager(BaseUserManager):
    def create_user(self, email, password=None, **fields):
        user = self.model(email=email, **fields)
        user.set_password(password)
        user.save()
        return user

    def create_superuser(self, email, password=None, **fields):
        return self.create_user(email, password, is_staff=True, is_superuser=True, **fields)


class EmailUser(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    USERNAME_FIELD = "email"
    objects = Manager()
"""

SETTINGS = """
SECRET_KEY = "custom-user-test-not-secret-but-long-enough"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
ROOT_URLCONF = "customurls"
AUTH_USER_MODEL = "customuser.EmailUser"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "customuser", "auth401",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
AUTH401 = {"COUNTER_STORE": "database"}
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
"""

SCRIPT = """
import json, django
django.setup()
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
call_command("migrate", run_syncdb=True, verbosity=0)
from customuser.models import EmailUser
from auth401 import accounts
from auth401.models import AccountStatus, AuthEvent

root = EmailUser.objects.create_superuser("root@example.com", "pw")
bob = EmailUser.objects.create_user("bob@example.com", "pw")
carol = EmailUser.objects.create_user("carol@example.com", "pw")
accounts.suspend(carol, reason="Chargeback", by=root)
client = Client()
client.force_login(root)
out = {"user_admin": type(admin.site.get_model_admin(EmailUser)).__mro__[1].__name__}
users = "/admin/customuser/emailuser/"
form = client.post(users, {"action": "auth401_lock", "_selected_action": [bob.pk], "index": "0"})
out["form"] = [form.status_code, form.templates[0].name]
done = client.post(users, {"action": "auth401_lock", "_selected_action": [bob.pk],
                           "apply": "1", "reason": "Phishing"}, follow=True)
out["messages"] = [str(m) for m in done.context["messages"]]
status = AccountStatus.objects.get(user=bob)
out["status"] = [status.state, status.reason, status.changed_by.email]
pages = {
    "statuses": "/admin/auth401/accountstatus/?q=bob%40example",
    "status_page": f"/admin/auth401/accountstatus/{status.pk}/change/",
    "events": "/admin/auth401/authevent/?q=BOB%40example.com",
    "dashboard": "/admin/auth401/authevent/dashboard/",
    "user": f"{users}{bob.pk}/change/",
}
for name, url in pages.items():
    response = client.get(url)
    out[name] = response.status_code
    if name in ("statuses", "events"):
        out[name + "_rows"] = len(response.context["cl"].result_list)
unlock = client.post(f"/admin/auth401/accountstatus/user/{bob.pk}/unlock/", {"reason": "ok"})
out["unlock"] = [unlock.status_code, AccountStatus.objects.get(user=bob).state]
every = list(AuthEvent.objects.values_list("pk", flat=True))
export = client.post(
    "/admin/auth401/authevent/", {"action": "export_csv", "_selected_action": every}
)
out["csv"] = b"".join(export.streaming_content).decode().splitlines()[1:]
print(json.dumps(out))
"""


def test_admin_with_a_user_model_without_username(tmp_path):
    app = tmp_path / "customuser"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS)
    (app / "admin.py").write_text(
        "from django.contrib import admin\n"
        "from .models import EmailUser\n"
        "admin.site.register(EmailUser, admin.ModelAdmin)\n"
    )
    (tmp_path / "customsettings.py").write_text(SETTINGS)
    (tmp_path / "customurls.py").write_text(
        "from django.contrib import admin\nfrom django.urls import path\n"
        "urlpatterns = [path('admin/', admin.site.urls)]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PYTHONPATH": f"{tmp_path}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "customsettings",
            "PATH": "/usr/bin:/bin",
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    csv = out.pop("csv")
    assert out == {
        "user_admin": "AccountActionsMixin",
        "form": [200, "admin/auth401/account_action.html"],
        "messages": ["1 account locked."],
        "status": ["locked", "Phishing", "root@example.com"],
        "statuses": 200,
        "statuses_rows": 1,
        "status_page": 200,
        "events": 200,
        "events_rows": 1,  # the lock, found by the email in capitals
        "dashboard": 200,
        "user": 200,
        "unlock": [302, "active"],
    }
    assert [line.split(",")[4:8] for line in csv] == [
        ["admin_unlock", "", "bob@example.com", "bob@example.com"],
        ["admin_lock", "", "bob@example.com", "bob@example.com"],
        ["admin_suspend", "", "carol@example.com", "carol@example.com"],
    ]
    assert all(line.split(",")[15] == "root@example.com" for line in csv)
