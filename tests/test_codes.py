"""The catalogue is the contract: every code has its texts (tests/test_readme.py checks that the
README and the docs show it as is)."""

import string

import pytest
from django.utils import translation

from auth401.codes import CATALOGUE, LOCKOUT_STATUS, REASONS

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
    "lockout_unavailable": 503,
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
