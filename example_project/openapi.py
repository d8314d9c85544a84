"""The example project's OpenAPI schema additions: a drf-spectacular postprocessing hook
(``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``) that adds

- links: the token pair from ``POST /api/token/`` leads to ``POST /api/token/refresh/`` (its
  ``refresh``) and to every protected ``GET`` operation (its ``access`` as a Bearer token); the
  access token from the refresh leads to the protected operations too. Clients and tools
  (schemathesis' stateful tests) follow them from a login to an authenticated request;
- request examples: a login as ``alice``, the demo user that ``manage.py auth401_demo`` creates
  (its password is published there), and a refresh request.
"""

from __future__ import annotations

from typing import Any

TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"
#: the protected operations a token leads to
PROTECTED = ("/api/me/", "/api/staff/", "/api/throttled/")

LOGIN_EXAMPLE = {"username": "alice", "password": "alice-password-1"}
REFRESH_EXAMPLE = {"refresh": "<the refresh token that POST /api/token/ answered>"}
BEARER = "Bearer {$response.body#/access}"


def _examples(operation: dict[str, Any], name: str, summary: str, value: Any) -> None:
    for media in operation["requestBody"]["content"].values():
        media["examples"] = {name: {"summary": summary, "value": value}}


def _protected_links(paths: dict[str, Any]) -> dict[str, Any]:
    return {
        paths[path]["get"]["operationId"]: {
            "operationId": paths[path]["get"]["operationId"],
            "parameters": {"header.Authorization": BEARER},
            "description": f"`GET {path}` with the `access` token of this answer "
            "(`Authorization: Bearer <access>`).",
        }
        for path in PROTECTED
    }


def links_and_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> Any:
    """The postprocessing hook: links and request examples on the token operations."""
    paths = result["paths"]
    token = paths[TOKEN]["post"]
    refresh = paths[REFRESH]["post"]
    token["responses"]["200"]["links"] = {
        refresh["operationId"]: {
            "operationId": refresh["operationId"],
            "requestBody": {"refresh": "$response.body#/refresh"},
            "description": f"`POST {REFRESH}` with the `refresh` token of this answer.",
        },
        **_protected_links(paths),
    }
    refresh["responses"]["200"]["links"] = _protected_links(paths)
    _examples(token, "alice", "The demo user alice (manage.py auth401_demo)", LOGIN_EXAMPLE)
    _examples(refresh, "refresh", "The refresh token from a login", REFRESH_EXAMPLE)
    return result
