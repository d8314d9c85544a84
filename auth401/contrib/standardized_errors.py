"""drf-standardized-errors support: one error shape for the whole API.

Configure::

    REST_FRAMEWORK = {
        ...,
        "EXCEPTION_HANDLER": "auth401.handlers.exception_handler",
        "DEFAULT_SCHEMA_CLASS": "auth401.contrib.standardized_errors.AutoSchema",
    }
    AUTH401 = {
        "RESPONSE_FORMAT": "standardized_errors",
        "FALLBACK_EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    }

auth401's 401 and 403 then come in drf-standardized-errors' shape (``{"type": "client_error",
"errors": [{"code", "detail", "attr", "hint", "request_id", ...}]}``, ``code`` being auth401's),
every other error comes from drf-standardized-errors itself, and the schema class documents
both: drf-standardized-errors' error responses (400, 404, 405, 406, 415, 429, 500, as it decides
them) and auth401's 401 and 403 (and 429 with ``LOCKOUT_STATUS_CODE = 429``).
"""

from __future__ import annotations

from typing import Any

from drf_standardized_errors.handler import exception_handler as standardized_handler
from drf_standardized_errors.openapi import AutoSchema as StandardizedAutoSchema

from auth401.conf import app_settings
from auth401.contrib.spectacular import Auth401SchemaMixin, codes_by_status
from auth401.handlers import exception_handler as auth401_handler


class AutoSchema(Auth401SchemaMixin, StandardizedAutoSchema):
    """drf-standardized-errors' AutoSchema with auth401's 401/403 responses.

    drf-standardized-errors documents its errors only for views whose exception handler is
    its own; here the handler is auth401's, which hands every error that is not a 401/403 to
    drf-standardized-errors (``FALLBACK_EXCEPTION_HANDLER``), so its responses are kept for
    those statuses, and auth401 documents the ones it answers.
    """

    def auth401_composes(self) -> bool:
        return (
            self.view.get_exception_handler() is auth401_handler
            and app_settings.fallback_handler is standardized_handler
        )

    def _should_add_error_response(self, responses: dict[str, Any], status_code: str) -> bool:
        if not self.auth401_composes():
            return super()._should_add_error_response(responses, status_code)
        if status_code in responses:
            return False
        if self.auth401_protected() and int(status_code) in codes_by_status():
            return False  # auth401's own answer, documented by Auth401SchemaMixin
        if status_code == "400":
            return (
                self._should_add_parse_error_response()
                or self._should_add_validation_error_response()
            )
        check = getattr(self, f"_should_add_http{status_code}_error_response", None)
        return check() if check is not None else True


__all__ = ["AutoSchema"]
