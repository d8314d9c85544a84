"""The README and the docs tell the truth: the test command is CI's, every example request gets
the answer the README says, the example answer is a real one, the install snippet pasted into a
new project passes ``check --deploy`` without an auth401 message, the code tables are generated
from ``codes.py``, and no internal note reaches a user."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from rest_framework_simplejwt.tokens import AccessToken

from auth401.codes import CATALOGUE, markdown_table
from tests.test_catalogue import assert_answer
from tests.test_example_project import demo, example  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CODES_PAGE = DOCS / "codes.md"
START, END = "<!-- codes:start -->\n", "<!-- codes:end -->"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


# -- the two commands -------------------------------------------------------------------------


def test_the_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [ci_command] = re.findall(r'^TEST_COMMAND="(.*)"$', ci, flags=re.M)
    commands = [line for block in code_blocks(readme(), "sh") for line in block.splitlines()]
    assert ci_command in commands
    assert ci_command.endswith(".venv/bin/python -m pytest")
    assert ci_command in (DOCS / "development.md").read_text(encoding="utf-8")


def test_the_demo_command_installs_like_the_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [ci_command] = re.findall(r'^TEST_COMMAND="(.*)"$', ci, flags=re.M)
    setup = ci_command.removesuffix(" -m pytest")
    assert f"{setup} manage.py auth401_demo --serve" in readme()


# -- the example requests ---------------------------------------------------------------------

CURL = re.compile(r"^(curl .+?)\s+# (\d{3}) ([a-z_]+)$", flags=re.M)


def readme_requests() -> list[tuple[str, int, str]]:
    return [(cmd, int(status), code) for cmd, status, code in CURL.findall(readme())]


def as_request(command: str) -> tuple[str, str, dict[str, str]]:
    """(method, path, headers) of a simple curl command line."""
    words = shlex.split(command)[1:]
    method, headers, url = "GET", {}, None
    while words:
        word = words.pop(0)
        if word == "-i":
            continue
        if word == "-u":
            pair = words.pop(0).encode()
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(pair).decode()
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        elif word == "-X":
            method = words.pop(0)
        elif word.startswith("http://127.0.0.1:8000/"):
            url = word
        else:
            raise AssertionError(f"this test cannot read curl option {word!r}: {command}")
    assert url is not None, command
    return method, url.removeprefix("http://127.0.0.1:8000"), headers


def test_the_readme_shows_example_requests():
    codes = {code for _, _, code in readme_requests()}
    assert {"credentials_missing", "credentials_invalid", "permission_denied"} <= codes


@pytest.mark.django_db
@pytest.mark.urls("example_project.urls")
@pytest.mark.parametrize(
    ("command", "status", "code"), readme_requests(), ids=[c for _, _, c in readme_requests()]
)
def test_each_readme_request_gets_the_answer_the_readme_says(
    demo,  # noqa: F811
    api_client,
    command,
    status,
    code,
):
    method, path, headers = as_request(command)
    response = api_client.generic(method, path, **headers)
    assert response.status_code == status
    # an admin's lock (bob) has no end, so no retry_after
    assert_answer(response, code, extras=frozenset() if code == "account_locked" else None)


@pytest.mark.django_db
@pytest.mark.urls("example_project.urls")
def test_the_example_answer_is_a_real_answer(example, api_client, user_factory):  # noqa: F811
    [http] = code_blocks(readme(), "http")
    head, _, body = http.partition("\n\n")
    status_line, *header_lines = head.splitlines()
    expected_headers = dict(line.split(": ", 1) for line in header_lines)
    expected_body = json.loads(body)

    alice = user_factory("alice")
    with time_machine.travel("2026-11-23 09:10:00+00:00", tick=False):
        token = AccessToken.for_user(alice)
        token.set_exp(lifetime=timedelta(minutes=65))
    with time_machine.travel("2026-11-23 10:42:07+00:00", tick=False):
        response = api_client.get(
            "/api/me/",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_X_REQUEST_ID=expected_body["request_id"],
        )
    assert status_line == f"HTTP/1.1 {response.status_code} Unauthorized"
    assert json.loads(response.content) == expected_body
    for name, value in expected_headers.items():
        assert response[name] == value, name


# -- the install snippet ----------------------------------------------------------------------


def install_snippets() -> tuple[str, str]:
    text = readme()
    install = text[text.index("## Install\n") :]
    settings_block, urls_block = code_blocks(install, "python")[:2]
    assert "INSTALLED_APPS +=" in settings_block
    assert "urlpatterns +=" in urls_block
    return settings_block, urls_block


#: the test's own production settings, so that Django's other deploy checks stay quiet too
SECURE = """
DEBUG = False
ALLOWED_HOSTS = ["api.example.com"]
SECRET_KEY = {key!r}
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
"""


def test_the_install_snippet_in_a_new_project_passes_check_deploy(tmp_path):
    settings_block, urls_block = install_snippets()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "PYTHONPATH")
    }
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    settings_py = tmp_path / "mysite" / "settings.py"
    secure = SECURE.format(key=secrets.token_urlsafe(50))
    settings_py.write_text(settings_py.read_text() + "\n" + settings_block + secure)
    urls_py = tmp_path / "mysite" / "urls.py"
    urls_py.write_text(urls_py.read_text() + "\n" + urls_block)

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "auth401" not in output
    assert output.strip() == "System check identified no issues (0 silenced)."

    # and the token URLs and the (public) schema route answer
    probe = (
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='api.example.com')\n"
        "r = c.post('/api/token/', {'username': 'x', 'password': 'y'}, secure=True)\n"
        "print(r.status_code, json.loads(r.content)['code'])\n"
        "print(c.get('/api/schema/', secure=True).status_code)\n"
    )
    env = {**env, "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=tmp_path, env=env, check=True
    )
    probed = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert probed.returncode == 0, probed.stderr
    assert probed.stdout.splitlines() == ["401 credentials_invalid", "200"]


def test_the_install_snippet_in_a_new_debug_project_adds_only_the_disclosure_reminder(tmp_path):
    """What the README says of a project as startproject writes it (DEBUG on): check --deploy
    shows one auth401 message, the reminder auth401.I001."""
    settings_block, urls_block = install_snippets()
    assert "and `DEBUG = False`, auth401 adds no message" in " ".join(readme().split())
    assert "adds one reminder, `auth401.I001`" in " ".join(readme().split())
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "PYTHONPATH")
    }
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    settings_py = tmp_path / "mysite" / "settings.py"
    settings_py.write_text(settings_py.read_text() + "\n" + settings_block)
    urls_py = tmp_path / "mysite" / "urls.py"
    urls_py.write_text(urls_py.read_text() + "\n" + urls_block)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.findall(r"\(auth401\.\w+\)", output) == ["(auth401.I001)"], output


# -- generated tables, links, size, wording ---------------------------------------------------


@pytest.mark.parametrize("page", [README, CODES_PAGE], ids=["README", "docs-codes"])
def test_code_table_is_generated_from_the_catalogue(page):
    text = page.read_text(encoding="utf-8")
    table = markdown_table()
    start, end = text.index(START) + len(START), text.index(END)
    if os.environ.get("AUTH401_UPDATE_DOCS") == "1":  # regenerate: set it and run this test
        page.write_text(text[:start] + table + text[end:], encoding="utf-8")
        text = page.read_text(encoding="utf-8")
        start, end = text.index(START) + len(START), text.index(END)
    assert text[start:end] == table, (
        f"{page.name}'s code table is stale: run AUTH401_UPDATE_DOCS=1 .venv/bin/python -m "
        "pytest tests/test_readme.py tests/test_docs.py"
    )
    assert len(re.findall(r"^\| `[a-z_]+` \|", table, re.M)) == len(CATALOGUE)


def test_readme_is_a_newcomers_page():
    assert len(readme().encode("utf-8")) <= 12 * 1024


def test_readme_links_to_docs_that_exist():
    links = re.findall(r"\]\((docs/[^)#]+)", readme())
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert [p.name for p in DOCS.glob("*.md") if p.name not in nav] == []


INTERNAL = re.compile(
    r"\bCONTRACT\b|§|(?i:\bissue \d|this machine|benchmarks issue|targets are met|"
    r"original contract|work session)"
    # review and CI talk: a targets table, report paths, CI keys of upstream test ids, the
    # CI matrix, what a change "no longer" does
    r"|^## Targets|benchmarks/results/|^- \*\*[a-z0-9]+-[a-z0-9-]+\*\*: |^CI runs|"
    r"no longer hides",
    flags=re.M,
)


@pytest.mark.parametrize(
    "page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name if p else ""
)
def test_no_internal_notes_in_user_text(page):
    found = INTERNAL.findall(page.read_text(encoding="utf-8"))
    assert found == []
