"""The generated references in docs/ are true to the code: the settings table is rendered from
``auth401.conf`` (``DEFAULTS`` and ``RULES``) and every ``auth401_*`` command's options from its
own argparse parser, as the code table is rendered from the catalogue (tests/test_readme.py).

After changing a setting, a command's options or a code, regenerate every generated table with
``AUTH401_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/test_readme.py tests/test_docs.py``."""

from __future__ import annotations

import argparse
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management import get_commands, load_command_class

import auth401
from auth401.conf import DEFAULTS, RULES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SETTINGS_PAGE = DOCS / "settings.md"
COMMANDS_PAGE = DOCS / "commands.md"
UPDATE = "AUTH401_UPDATE_DOCS"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"


def assert_generated(page: Path, name: str, block: str) -> None:
    """``page`` holds ``block`` between its ``name`` markers (rewritten first with UPDATE=1)."""
    start_marker, end_marker = markers(name)
    text = page.read_text(encoding="utf-8")
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    if os.environ.get(UPDATE) == "1":
        page.write_text(text[:start] + block + text[end:], encoding="utf-8")
        text = page.read_text(encoding="utf-8")
        start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    assert text[start:end] == block, (
        f"docs/{page.name} is stale: run {UPDATE}=1 .venv/bin/python -m pytest "
        "tests/test_readme.py tests/test_docs.py"
    )


# -- settings ---------------------------------------------------------------------------------

_UNITS = (
    ("days", timedelta(days=1)),
    ("hours", timedelta(hours=1)),
    ("minutes", timedelta(minutes=1)),
    ("seconds", timedelta(seconds=1)),
    ("milliseconds", timedelta(milliseconds=1)),
)


def python_literal(value: Any) -> str:
    """A default as you would write it in settings.py."""
    if isinstance(value, timedelta):
        if not value:
            return "timedelta(0)"
        for unit, size in _UNITS:
            if unit == "days" and value < timedelta(days=2):
                continue  # timedelta(hours=24), as people write it
            if value % size == timedelta(0):
                return f"timedelta({unit}={value // size})"
        return repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    return repr(value)


def allowed_values(expected: str) -> str:
    """``RULES``' "what a good value looks like", with literals as code."""
    text = re.sub(r"'([^']*)'", r'`"\1"`', expected)
    text = re.sub(r"\b(None|True|False|int|403|429|CACHES)\b", r"`\1`", text)
    return text.replace("datetime.timedelta", "`timedelta`")


def settings_table() -> str:
    rows = ["| Key | Default | Allowed values | Effect |", "|---|---|---|---|"]
    for key, rule in RULES.items():
        default = python_literal(DEFAULTS[key])
        rows.append(
            f"| `{key}` | `{default}` | {allowed_values(rule.expected)} | {rule.description} |"
        )
    return "\n".join(rows) + "\n"


def test_every_setting_has_a_one_line_description():
    assert list(RULES) == list(DEFAULTS)
    for key, rule in RULES.items():
        assert rule.description.strip(), key
        assert "\n" not in rule.description and "|" not in rule.description, key
        assert rule.description.endswith("."), key


def test_python_literal():
    assert python_literal(timedelta(minutes=15)) == "timedelta(minutes=15)"
    assert python_literal(timedelta(hours=24)) == "timedelta(hours=24)"
    assert python_literal(timedelta(milliseconds=250)) == "timedelta(milliseconds=250)"
    assert python_literal(timedelta(seconds=90)) == "timedelta(seconds=90)"
    assert python_literal(timedelta(days=90)) == "timedelta(days=90)"
    assert python_literal(timedelta(0)) == "timedelta(0)"
    assert python_literal(["username", "ip"]) == '["username", "ip"]'
    assert python_literal(None) == "None"
    assert python_literal(403) == "403"


def test_settings_reference_is_generated_from_conf():
    table = settings_table()
    assert_generated(SETTINGS_PAGE, "settings", table)
    assert len(re.findall(r"^\| `[A-Z0-9_]+` \|", table, re.M)) == len(DEFAULTS)


# -- commands ---------------------------------------------------------------------------------


class _Recorder(argparse.ArgumentParser):
    """A plain parser that remembers what a command's ``add_arguments`` adds, and in which
    mutually exclusive group (Django's own options are not added here)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog=prog, add_help=False)
        #: (action, group number or None), in the order they were added
        self.recorded: list[tuple[argparse.Action, int | None]] = []

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:  # type: ignore[override]
        action = super().add_argument(*args, **kwargs)
        self.recorded.append((action, None))
        return action

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return _Group(self, super().add_mutually_exclusive_group(**kwargs))


class _Group:
    def __init__(self, recorder: _Recorder, group: Any) -> None:
        self.recorder, self.group, self.number = recorder, group, id(group)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = self.group.add_argument(*args, **kwargs)
        self.recorder.recorded.append((action, self.number))
        return action


def _name(action: argparse.Action) -> str:
    """``--basic USERNAME``, ``--follow``, ``target``, ``[header]``."""
    if not action.option_strings:
        name = action.metavar or action.dest
        return f"[{name}]" if action.nargs == "?" else str(name)
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return flag
    return f"{flag} {action.metavar or action.dest.upper()}"


def _usage(name: str, recorded: list[tuple[argparse.Action, int | None]]) -> str:
    words: list[str] = []
    groups_seen: set[int] = set()
    for action, group in recorded:
        if not action.option_strings:
            continue
        if group is None:
            words.append(f"[{_name(action)}]")
        elif group not in groups_seen:
            groups_seen.add(group)
            members = [_name(a) for a, g in recorded if g == group]
            words.append(f"[{' | '.join(members)}]")
    positional = [_name(a) for a, _ in recorded if not a.option_strings]
    return " ".join(["python manage.py", name, *words, *positional])


def _text(text: str) -> str:
    """Help text as Markdown: one line, no table breaks, no HTML tags (``<name>``)."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _help(action: argparse.Action) -> str:
    text = str(action.help or "")
    if "%(" in text:
        text = text % {**vars(action), "prog": "manage.py"}
    return _text(text)


def command_names() -> list[str]:
    return sorted(name for name, app in get_commands().items() if name.startswith("auth401_"))


def command_reference() -> str:
    parts = []
    for name in command_names():
        command = load_command_class("auth401", name)
        recorder = _Recorder(prog=f"manage.py {name}")
        command.add_arguments(recorder)
        lines = [f"### `{name}`", "", _text(str(command.help)), ""]
        lines += ["```console", _usage(name, recorder.recorded), "```", ""]
        if recorder.recorded:
            lines += ["| argument | meaning |", "|---|---|"]
            lines += [f"| `{_name(a)}` | {_help(a)} |" for a, _ in recorder.recorded]
            lines.append("")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def test_command_reference_covers_every_auth401_command():
    names = command_names()
    package = Path(auth401.__file__).resolve().parent  # the installed one, under nox
    files = sorted(p.stem for p in (package / "management" / "commands").glob("auth401_*.py"))
    assert names == files
    assert {"auth401_drain", "auth401_status", "auth401_unlock", "auth401_prune"} <= set(names)


def test_usage_lines():
    recorder = _Recorder(prog="manage.py x")
    recorder.add_argument("target", help="a name")
    recorder.add_argument("--reason", default="", help="why")
    group = recorder.add_mutually_exclusive_group()
    group.add_argument("--basic", metavar="USERNAME")
    group.add_argument("--bearer", action="store_true")
    recorder.add_argument("--follow", action="store_true")
    recorder.add_argument("header", nargs="?")
    assert _usage("x", recorder.recorded) == (
        "python manage.py x [--reason REASON] [--basic USERNAME | --bearer] [--follow] "
        "target [header]"
    )


def test_command_reference_is_generated_from_the_parsers():
    reference = command_reference()
    assert_generated(COMMANDS_PAGE, "commands", reference)
    for name in command_names():
        assert f"### `{name}`" in reference
    # the options support asks for most
    assert "| `--reason REASON` |" in reference
    assert "| `--by BY` |" in reference
    assert "| `--follow` |" in reference


# -- the changelog ----------------------------------------------------------------------------

CHANGELOG = DOCS / "changelog.md"


def test_changelog_is_keep_a_changelog():
    text = CHANGELOG.read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(.+?)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert versions[0] == ("Unreleased", "")
    assert all(date for _, date in versions[1:]) and ("0.1.0", "2026-12-03") in versions
    sections = set(re.findall(r"^### (.+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_changelog_names_every_code_setting_and_command():
    from auth401.codes import CATALOGUE

    text = CHANGELOG.read_text(encoding="utf-8")
    names = [*CATALOGUE, *DEFAULTS, *command_names()]
    assert [name for name in names if f"`{name}`" not in text] == []


# -- the deployment page ----------------------------------------------------------------------

DEPLOYMENT = DOCS / "deployment.md"


def test_the_logging_example_configures_the_auth401_logger():
    """The page's LOGGING, given to dictConfig in a fresh process (dictConfig replaces the
    test run's own handlers), prints a failure's record as the page quotes it."""
    import subprocess
    import sys

    text = DEPLOYMENT.read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S) if "LOGGING" in b]
    script = (
        "import logging.config, django\n"
        "django.setup()\n"
        f"{block}\n"
        "logging.config.dictConfig(LOGGING)\n"
        "from auth401 import events\n"
        "events.log(events.build(None, 'credentials_invalid', 401, username='alice', "
        "ip='203.0.113.7'))\n"
        "events.log(events.build(None, 'login_succeeded', None, username='alice'), logging.INFO)\n"
        "logging.getLogger('auth401').debug('not shown')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(
        " WARNING auth401.events auth401 401 credentials_invalid user='alice' ip=203.0.113.7 path= "
        "request_id="
    )
    assert " INFO auth401.events auth401 - login_succeeded user='alice'" in lines[1]
    assert "auth401 401 credentials_invalid user='alice' ip=203.0.113.7" in " ".join(text.split())
