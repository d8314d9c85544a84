"""The catalogue is the contract: every code has its texts, and the README shows it as is."""

import os
import re
import string
from pathlib import Path

import pytest
from django.utils import translation

from auth401.codes import CATALOGUE, LOCKOUT_STATUS, REASONS, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- codes:start -->\n", "<!-- codes:end -->"

CONTRACT_CODES = {
    "credentials_missing": 401,
    "authorization_malformed": 401,
    "scheme_unsupported": 401,
    "credentials_invalid": 401,
    "token_invalid": 401,
    "token_expired": 401,
    "token_not_yet_valid": 401,
    "token_wrong_type": 401,
    "token_revoked": 401,
    "session_expired": 401,
    "password_expired": 401,
    "account_locked": LOCKOUT_STATUS,
    "address_locked": LOCKOUT_STATUS,
    "login_busy": 429,
    "account_suspended": 403,
    "account_inactive": 403,
    "permission_denied": 403,
    "csrf_failed": 403,
}


def test_catalogue_is_the_contracts():
    assert {r.code: r.status for r in REASONS} == CONTRACT_CODES
    assert list(CATALOGUE) == [r.code for r in REASONS]


@pytest.mark.parametrize("reason", REASONS, ids=lambda r: r.code)
def test_every_reason_has_texts(reason):
    with translation.override("en"):
        detail, hint = str(reason.detail), str(reason.hint)
    assert detail and hint and reason.when
    for text in (detail, hint):
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert fields <= {
            "schemes",
            "problem",
            "offered",
            "token_type",
            "expires_at",
            "not_before",
            "got",
            "expected",
            "reason",
            "header_note",
        }
    assert reason.bearer_error in (None, "invalid_request", "invalid_token", "insufficient_scope")


def test_readme_code_table_is_generated_from_the_catalogue():
    text = README.read_text(encoding="utf-8")
    table = markdown_table()
    start, end = text.index(START) + len(START), text.index(END)
    if os.environ.get("AUTH401_UPDATE_README") == "1":  # regenerate: set it and run this test
        README.write_text(text[:start] + table + text[end:], encoding="utf-8")
        text = README.read_text(encoding="utf-8")
        start, end = text.index(START) + len(START), text.index(END)
    assert text[start:end] == table, (
        "README's code table is stale: run AUTH401_UPDATE_README=1 .venv/bin/python -m pytest "
        "tests/test_codes.py"
    )
    assert len(re.findall(r"^\| `[a-z_]+` \|", table, re.M)) == len(CATALOGUE)
