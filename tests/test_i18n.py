"""Translations: German answers under LocaleMiddleware (the code never changes, the Bearer
challenge stays English ASCII), and a complete, compiled German catalogue."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.utils import translation
from rest_framework_simplejwt.tokens import AccessToken

import auth401
from auth401.codes import CATALOGUE
from tests.conftest import basic

#: the package's own catalogue: the checkout's, or the installed wheel's under nox
LOCALE = Path(auth401.__file__).resolve().parent / "locale"
TESTS_ROOT = Path(__file__).resolve().parent.parent
PO = LOCALE / "de" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "de" / "LC_MESSAGES" / "django.mo"
LOCALE_MIDDLEWARE = "django.middleware.locale.LocaleMiddleware"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"


@pytest.fixture
def locale_middleware(settings):
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index(SESSION_MIDDLEWARE) + 1, LOCALE_MIDDLEWARE)
    settings.MIDDLEWARE = middleware
    settings.LANGUAGES = [("en", "English"), ("de", "German")]
    return settings


def without_request_id(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "request_id"}


def test_wrong_password_in_german(locale_middleware, api_client, user):
    response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"), HTTP_ACCEPT_LANGUAGE="de"
    )
    assert response.status_code == 401
    assert response["Content-Language"] == "de"
    assert without_request_id(response.json()) == {
        "status": 401,
        "error": "Unauthorized",
        "code": "credentials_invalid",
        "detail": "Benutzername, Passwort oder Token ist ungültig.",
        "hint": "Prüfen Sie Benutzername und Passwort oder das API-Token und versuchen Sie es "
        "erneut. Wiederholte Fehlversuche sperren das Konto für eine Weile.",
    }
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", Token realm="api", Basic realm="api", charset="UTF-8"'
    )


def test_english_is_the_default(locale_middleware, api_client, user):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"))
    assert response.json()["detail"] == "Invalid username, password or token."
    response = api_client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"), HTTP_ACCEPT_LANGUAGE="fr"
    )
    assert response.json()["detail"] == "Invalid username, password or token."


def test_bearer_challenge_stays_english_ascii(locale_middleware, api_client, user):
    with time_machine.travel("2026-11-25 08:00:00+00:00", tick=False):
        token = str(AccessToken.for_user(user))
    with time_machine.travel("2026-11-25 10:00:00+00:00", tick=False):
        response = api_client.get(
            "/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9"
        )
    assert response.status_code == 401
    assert without_request_id(response.json()) == {
        "status": 401,
        "error": "Unauthorized",
        "code": "token_expired",
        "detail": "Das access-Token ist am 2026-11-25T08:05:00Z abgelaufen.",
        "hint": "Holen Sie ein neues Access-Token vom Refresh-Endpunkt oder melden Sie sich "
        "erneut an.",
        "server_time": "2026-11-25T10:00:00Z",
    }
    challenge = response["WWW-Authenticate"]
    assert challenge == (
        'Bearer realm="api", error="invalid_token", error_description="The access token expired '
        'at 2026-11-25T08:05:00Z.", Token realm="api", Basic realm="api", charset="UTF-8"'
    )
    assert challenge.isascii()


@pytest.mark.parametrize("code", list(CATALOGUE))
def test_every_catalogue_entry_has_a_german_translation(code):
    reason = CATALOGUE[code]
    with translation.override("en"):
        english = (str(reason.detail), str(reason.hint))
    with translation.override("de"):
        german = (str(reason.detail), str(reason.hint))
    assert german[0] != english[0]
    assert german[1] != english[1]
    # The same {placeholders}, so rendering a German template never loses a value.
    for en, de in zip(english, german, strict=True):
        assert sorted(re.findall(r"{\w+}", en)) == sorted(re.findall(r"{\w+}", de))


def read_po(path: Path) -> dict[tuple[str, ...], tuple[str, ...]]:
    """msgid (and msgid_plural) -> msgstr(s) of a .po file; fails on fuzzy entries."""
    entries: dict[tuple[str, ...], tuple[str, ...]] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith("#~")]
        fields: dict[str, str] = {}
        current = ""
        for line in lines:
            if line.startswith("#"):
                continue
            match = re.match(r"(msgid_plural|msgid|msgstr\[\d\]|msgstr) (\".*\")$", line)
            if match:
                current = match.group(1)
                fields[current] = ""
                line = match.group(2)
            fields[current] += (
                line[1:-1].encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
            )
        if fields.get("msgid"):  # not the header
            assert not any(line.startswith("#,") and "fuzzy" in line for line in lines), block
            key = (
                (fields["msgid"], fields["msgid_plural"])
                if "msgid_plural" in fields
                else (fields["msgid"],)
            )
            values = tuple(v for k, v in sorted(fields.items()) if k.startswith("msgstr"))
            entries[key] = values
    return entries


def test_german_catalogue_is_complete_and_compiled():
    entries = read_po(PO)
    assert len(entries) > 50
    untranslated = [key for key, values in entries.items() if not all(values)]
    assert untranslated == []
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for key, values in entries.items():
        if len(key) == 1:
            assert compiled.gettext(key[0]) == values[0], f"{key} is stale in django.mo"
        else:
            assert compiled.ngettext(key[0], key[1], 1) == values[0]
            assert compiled.ngettext(key[0], key[1], 2) == values[1]


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext's xgettext")
def test_every_translatable_string_of_the_package_is_in_the_catalogue(tmp_path):
    """Extract the package's strings as `makemessages` does; each must be in django.po.

    If this fails after you added or changed a string: `cd auth401 && django-admin
    makemessages -l de --no-location`, translate the new entries, then `django-admin
    compilemessages`, and commit both files."""
    package = tmp_path / "auth401"
    shutil.copytree(LOCALE.parent, package, ignore=shutil.ignore_patterns("__pycache__", "locale"))
    (package / "locale").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "de", "--no-location"],
        cwd=package,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": os.pathsep.join([str(LOCALE.parents[1]), str(TESTS_ROOT)]),
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr
    extracted = set(read_po(package / "locale" / "de" / "LC_MESSAGES" / "django.po"))
    assert len(extracted) > 50
    missing = extracted - set(read_po(PO))
    assert missing == set(), "untranslated: " + repr(sorted(missing))
