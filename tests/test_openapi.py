"""OpenAPI through drf-spectacular (``auth401.contrib.spectacular``): the schema documents 401
and 403 with the contract body on every protected operation, and the example project serves it
with a Swagger UI whose files are all local."""

from __future__ import annotations

import io
import re
from typing import Any

import jsonschema
import pytest
from django.core.management import call_command
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.validation import validate_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import AccessToken

from auth401 import authentication
from auth401.codes import CATALOGUE, REASONS
from auth401.contrib.spectacular import NOT_BLANK, AutoSchema
from auth401.responses import UPSTREAM_CODES
from example_project import settings as example_settings

SCHEMA_CLASS = "auth401.contrib.spectacular.AutoSchema"
ERROR_REF = {"$ref": "#/components/schemas/Auth401Error"}
CONTRACT_MEMBERS = {"status", "error", "code", "detail", "hint", "request_id"}
OPTIONAL_MEMBERS = {"retry_after", "server_time", "docs"}


@pytest.fixture
def openapi(settings):
    # Set by tests/settings.py (drf-spectacular's decorators bind the class at import time).
    assert settings.REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] == SCHEMA_CLASS
    return settings


@pytest.fixture
def docs_apps(openapi):
    assert {"drf_spectacular", "drf_spectacular_sidecar"} <= set(openapi.INSTALLED_APPS)
    # drf-spectacular reads SPECTACULAR_SETTINGS once, at import: patch its settings object.
    patches = {
        key: value
        for key, value in example_settings.SPECTACULAR_SETTINGS.items()
        if not key.startswith("SERVE_")
    }
    with patched_settings(patches):
        yield openapi


def fetch_schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def ref_target(schema: dict, ref: dict) -> dict:
    *_, kind, name = ref["$ref"].split("/")
    return schema["components"][kind][name]


@pytest.mark.urls("example_project.urls")
def test_schema_is_public_and_valid(openapi, client, db):
    schema = fetch_schema(client)
    validate_schema(schema)
    assert {"/api/me/", "/api/staff/", "/api/token/", "/api/token/refresh/"} <= set(schema["paths"])


@pytest.mark.urls("example_project.urls")
def test_error_component_has_the_contract_members(openapi, client, db):
    schema = fetch_schema(client)
    component = schema["components"]["schemas"]["Auth401Error"]
    assert set(component["properties"]) == CONTRACT_MEMBERS | OPTIONAL_MEMBERS
    assert set(component["required"]) == CONTRACT_MEMBERS
    code = ref_target(schema, component["properties"]["code"])
    assert code["type"] == "string"
    assert code["enum"] == list(CATALOGUE)
    for reason in REASONS:
        assert f"- `{reason.code}` (" in code["description"]
        assert reason.when in code["description"]


@pytest.mark.urls("example_project.urls")
@pytest.mark.parametrize("url", ["/api/me/", "/api/staff/"])
def test_protected_operations_document_401_and_403(openapi, client, db, url):
    schema = fetch_schema(client)
    responses = schema["paths"][url]["get"]["responses"]
    assert set(responses) == {"200", "401", "403", "429", "503"}  # login_busy, lockout_unavailable
    for status in ("401", "403"):
        assert responses[status]["content"] == {"application/json": {"schema": ERROR_REF}}
        for reason in REASONS:
            line = f"- `{reason.code}`: {reason.when}"
            expected_here = str(reason.status_code()) == status
            assert (line in responses[status]["description"]) == expected_here, reason.code
    assert set(responses["401"]["headers"]) == {
        "WWW-Authenticate",
        "X-Request-ID",
        "X-Auth401-Code",
        "Cache-Control",
    }
    assert set(responses["403"]["headers"]) == {
        "X-Request-ID",
        "X-Auth401-Code",
        "Cache-Control",
        "Retry-After",
    }


@pytest.mark.urls("example_project.urls")
def test_token_views_document_their_401(openapi, client, db):
    schema = fetch_schema(client)
    for url in ("/api/token/", "/api/token/refresh/"):
        responses = schema["paths"][url]["post"]["responses"]
        assert responses["401"]["content"]["application/json"]["schema"] == ERROR_REF


@pytest.mark.urls("example_project.urls")
def test_auth401_classes_are_security_schemes(openapi, client, db):
    schema = fetch_schema(client)
    assert schema["paths"]["/api/me/"]["get"]["security"] == [
        {"jwtAuth": []},
        {"tokenAuth": []},
        {"basicAuth": []},
        {"cookieAuth": []},
    ]
    assert set(schema["components"]["securitySchemes"]) == {
        "jwtAuth",
        "tokenAuth",
        "basicAuth",
        "cookieAuth",
    }


@pytest.mark.urls("example_project.urls")
def test_lockout_status_429_gets_its_own_response(openapi, client, db, auth401_settings):
    auth401_settings(LOCKOUT_STATUS_CODE=429)
    responses = fetch_schema(client)["paths"]["/api/me/"]["get"]["responses"]
    assert set(responses) == {"200", "401", "403", "429", "503"}
    assert "`account_locked`" in responses["429"]["description"]
    assert "`account_locked`" not in responses["403"]["description"]
    assert set(responses["429"]["headers"]) == {
        "X-Request-ID",
        "X-Auth401-Code",
        "Cache-Control",
        "Retry-After",
    }
    assert "Retry-After" not in responses["403"]["headers"]


@pytest.mark.urls("example_project.urls")
def test_problem_format(openapi, client, db, auth401_settings):
    auth401_settings(RESPONSE_FORMAT="problem")
    schema = fetch_schema(client)
    responses = schema["paths"]["/api/me/"]["get"]["responses"]
    problem_ref = {"$ref": "#/components/schemas/Auth401Problem"}
    assert responses["401"]["content"] == {"application/problem+json": {"schema": problem_ref}}
    component = schema["components"]["schemas"]["Auth401Problem"]
    assert set(component["required"]) == {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "code",
        "hint",
        "request_id",
    }
    assert "Auth401Error" not in schema["components"]["schemas"]


# Operations of other shapes, on a urlconf of this module.


class ItemSerializer(serializers.Serializer):
    name = serializers.CharField()


class Protected(APIView):
    permission_classes = [IsAuthenticated]
    serializer_class = ItemSerializer

    def get(self, request):
        return Response({"name": "x"})


class Open(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    serializer_class = ItemSerializer

    def get(self, request):
        return Response({"name": "x"})


class AllowAnyButAuthenticates(Open):
    authentication_classes = APIView.authentication_classes


class SessionFirst(Protected):
    authentication_classes = [
        authentication.SessionAuthentication,
        authentication.BasicAuthentication,
    ]


class OwnForbiddenSchema(AutoSchema):
    def get_response_serializers(self):
        return {200: ItemSerializer, 403: OpenApiResponse(description="Mine.")}


class OwnForbidden(Protected):
    schema = OwnForbiddenSchema()


urlpatterns = [
    path("protected/", Protected.as_view()),
    path("open/", Open.as_view()),
    path("allow-any/", AllowAnyButAuthenticates.as_view()),
    path("own-403/", OwnForbidden.as_view()),
    path("session-first/", SessionFirst.as_view()),
]


def generate() -> dict:
    return SchemaGenerator(urlconf=__name__).get_schema(request=None, public=True)


def test_only_operations_that_authenticate_or_check_permissions(openapi):
    paths = generate()["paths"]
    assert set(paths["/protected/"]["get"]["responses"]) == {"200", "401", "403", "429", "503"}
    assert set(paths["/open/"]["get"]["responses"]) == {"200"}
    # AllowAny still authenticates: a bad token or a suspended account is refused.
    assert set(paths["/allow-any/"]["get"]["responses"]) == {"200", "401", "403", "429", "503"}


def test_an_operations_own_response_is_kept(openapi):
    responses = generate()["paths"]["/own-403/"]["get"]["responses"]
    assert responses["403"] == {"description": "Mine."}
    assert responses["401"]["content"]["application/json"]["schema"] == ERROR_REF


@pytest.mark.urls("example_project.urls")
def test_swagger_ui_loads_nothing_from_a_cdn(docs_apps, client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "/api/schema/" in html
    external = re.findall(r"""(?:src|href)=["'](?:https?:)?//[^"']+""", html)
    assert external == []
    assert "cdn" not in html.lower()


# -- the token views: 400s, the serializers' real shape, minLength ------------------------------


@pytest.mark.urls("example_project.urls")
@pytest.mark.parametrize("url", ["/api/token/", "/api/token/refresh/"])
def test_token_views_document_their_400(openapi, client, db, url):
    schema = fetch_schema(client)
    responses = schema["paths"][url]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "429", "503"}  # 429, 503: the lockout
    ref = {"$ref": "#/components/schemas/Auth401TokenRequestError"}
    assert responses["400"]["content"] == {"application/json": {"schema": ref}}
    assert ref_target(schema, ref) == {
        "type": "object",
        "description": ref_target(schema, ref)["description"],
        "properties": {
            "detail": {"type": "string", "description": "Why the body could not be parsed."}
        },
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    }
    # and it is what the view answers, for a refused field and for an unparsable body
    missing = client.post(url, {}, content_type="application/json")
    assert missing.status_code == 400
    assert all(isinstance(v, list) for v in missing.json().values()) and missing.json()
    garbled = client.post(url, "{", content_type="application/json")
    assert garbled.status_code == 400
    assert set(garbled.json()) == {"detail"}


def _component(schema: dict, url: str) -> dict:
    body = schema["paths"][url]["post"]["requestBody"]["content"]["application/json"]
    return ref_target(schema, body["schema"])


@pytest.mark.urls("example_project.urls")
@pytest.mark.parametrize("rotate", [False, True])
def test_refresh_schema_is_auth401_serializer_answer(
    openapi, client, settings, monkeypatch, user, rotate
):
    from rest_framework_simplejwt import serializers as jwt_serializers
    from rest_framework_simplejwt import settings as jwt_settings

    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ROTATE_REFRESH_TOKENS": rotate}
    # as at start-up: simplejwt's serializers bound its settings object at import
    monkeypatch.setattr(jwt_serializers, "api_settings", jwt_settings.api_settings)
    schema = fetch_schema(client)
    refresh = {"type": "string", "minLength": 1, "pattern": NOT_BLANK}
    if not rotate:
        refresh["writeOnly"] = True
    assert _component(schema, "/api/token/refresh/") == {
        "type": "object",
        "properties": {"refresh": refresh, "access": {"type": "string", "readOnly": True}},
        "required": ["access", "refresh"],
    }
    # the answer has exactly what a response may carry: access, and refresh only when rotating
    from rest_framework_simplejwt.tokens import RefreshToken

    answer = client.post(
        "/api/token/refresh/",
        {"refresh": str(RefreshToken.for_user(user))},
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert set(answer.json()) == ({"access", "refresh"} if rotate else {"access"})


@pytest.mark.urls("example_project.urls")
def test_obtain_schema_refuses_blank_credentials(openapi, client, db):
    schema = fetch_schema(client)
    write = {"type": "string", "writeOnly": True, "minLength": 1, "pattern": NOT_BLANK}
    read = {"type": "string", "readOnly": True}
    assert _component(schema, "/api/token/") == {
        "type": "object",
        "properties": {"username": write, "password": write, "access": read, "refresh": read},
        "required": ["access", "password", "refresh", "username"],
    }
    blank = client.post(
        "/api/token/", {"username": "", "password": ""}, content_type="application/json"
    )
    assert blank.status_code == 400
    assert set(blank.json()) == {"username", "password"}


@pytest.mark.urls("example_project.urls")
def test_token_revoked_is_described_exactly(openapi, client, db):
    schema = fetch_schema(client)
    description = schema["paths"]["/api/me/"]["get"]["responses"]["401"]["description"]
    assert (
        "- `token_revoked`: Blacklisted refresh token, or a token issued before a password "
        "change, or before an admin lock or a suspension that has since ended (while it lasts "
        "the answer is `account_locked` or `account_suspended`; automatic locks revoke no token)."
    ) in description


@pytest.mark.urls("example_project.urls")
def test_plain_views_under_the_api_prefix_are_described(openapi, client, db):
    schema = fetch_schema(client)
    component = schema["components"]["schemas"]["Auth401Error"]
    assert "Plain Django views under `API_PATH_PREFIXES`" in component["description"]
    assert 'Session realm=\\"api\\"' not in component["description"]
    assert 'Session realm="api"' in component["description"]
    assert "`scheme_unsupported`" in component["description"]


@pytest.mark.parametrize(
    "value", ["a", " a ", "\x85", "  ", "\x00a", "", "\u3000", "to\u3000ken", "\ufeff", "\x1c"]
)
def test_not_blank_pattern_is_what_drf_char_fields_accept(value):
    field = serializers.CharField()
    try:
        field.run_validation(value)
        accepted = True
    except serializers.ValidationError:
        accepted = False
    assert bool(re.search(NOT_BLANK, value)) == accepted


def _codes(description: str) -> set[str]:
    return set(re.findall(r"^- `(\w+)`: ", description, re.MULTILINE))


def test_upstream_format_documents_upstreams_body_and_statuses(openapi, auth401_settings):
    """RESPONSE_FORMAT = "upstream": DRF's and simplejwt's body, each code under the status it
    is answered with (upstream's for the codes upstream has; DRF's 403 where the first class
    is the session), and auth401's code in X-Auth401-Code."""
    auth401_settings(RESPONSE_FORMAT="upstream")
    schema = generate()
    validate_schema(schema)
    component = schema["components"]["schemas"]["Auth401UpstreamError"]
    assert set(component["properties"]) == {"detail", "code", "messages"}
    assert component["required"] == ["detail"]
    assert "X-Auth401-Code" in component["description"]
    assert "Auth401Error" not in schema["components"]["schemas"]

    ref = {"$ref": "#/components/schemas/Auth401UpstreamError"}
    protected = schema["paths"]["/protected/"]["get"]["responses"]
    assert protected["401"]["content"] == {"application/json": {"schema": ref}}
    assert "`X-Auth401-Code` is one of" in protected["401"]["description"]
    assert "X-Auth401-Code" in protected["401"]["headers"]
    own = {r.code for r in REASONS if r.code not in UPSTREAM_CODES}
    upstream_401 = UPSTREAM_CODES - {"permission_denied", "csrf_failed"}
    assert _codes(protected["401"]["description"]) == upstream_401 | {
        c for c in own if CATALOGUE[c].status_code() == 401
    }
    assert "account_inactive" in upstream_401  # simplejwt and DRF: 401, not auth401's 403
    assert _codes(protected["403"]["description"]) == {"permission_denied", "csrf_failed"} | {
        c for c in own if CATALOGUE[c].status_code() == 403
    }

    session_first = schema["paths"]["/session-first/"]["get"]["responses"]
    assert "401" not in session_first  # DRF answers 403 when the session comes first
    assert _codes(session_first["403"]["description"]) >= upstream_401
    assert "WWW-Authenticate" not in session_first["403"]["headers"]


# -- a throttled operation's 429: auth401's login_busy, or the throttle's own answer -------------

THROTTLED = "/api/throttled/"
DRF_THROTTLED = {
    "type": "object",
    "description": "DRF's answer to a throttled request.",
    "properties": {"detail": {"type": "string", "description": "Why, and for how long."}},
    "required": ["detail"],
}


def throttled_answer(client, user) -> tuple[int, dict]:
    """The example project's throttled view, four times with a Bearer token: the last answer."""
    bearer = f"Bearer {AccessToken.for_user(user)}"
    statuses = [client.get(THROTTLED, HTTP_AUTHORIZATION=bearer) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[-1]["Retry-After"] == "60"
    return statuses[-1].status_code, statuses[-1].json()


def json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable: true`` becomes a ``"null"`` type."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and "type" in node:
        converted["type"] = [node["type"], "null"]
    return converted


def validate_against(schema: dict, body_schema: dict, body: dict) -> None:
    """``body`` is valid for ``body_schema`` (its ``$ref``s resolved in ``schema``)."""
    document = json_schema({**body_schema, "components": schema["components"]})
    jsonschema.validate(body, document, cls=jsonschema.Draft4Validator)


@pytest.mark.urls("example_project.urls")
def test_a_throttled_operation_documents_the_throttles_429_truthfully(openapi, client, user):
    schema = fetch_schema(client)
    responses = schema["paths"][THROTTLED]["get"]["responses"]
    assert set(responses) == {"200", "401", "403", "429", "503"}
    throttled = responses["429"]
    assert throttled["content"] == {
        "application/json": {"schema": {"anyOf": [ERROR_REF, DRF_THROTTLED]}}
    }
    assert throttled["description"].endswith(
        "A throttle of this operation refused the request (DRF's `Throttled`, code "
        "`throttled`): retry after `Retry-After` seconds. This answer's body is the fallback "
        "exception handler's, not auth401's, and it carries no `Cache-Control: no-store`."
    )
    assert "- `login_busy`: " in throttled["description"]
    # an operation without throttles: auth401's 429 (login_busy) alone
    me = schema["paths"]["/api/me/"]["get"]["responses"]["429"]
    assert me["content"] == {"application/json": {"schema": ERROR_REF}}
    assert "Throttled" not in me["description"]

    status, body = throttled_answer(client, user)
    assert body == {"detail": "Request was throttled. Expected available in 60 seconds."}
    validate_against(schema, throttled["content"]["application/json"]["schema"], body)


@pytest.mark.urls("example_project.urls")
def test_problem_format_documents_the_throttles_json_beside_auth401s_problem(
    openapi, client, user, auth401_settings
):
    auth401_settings(RESPONSE_FORMAT="problem")
    schema = fetch_schema(client)
    throttled = schema["paths"][THROTTLED]["get"]["responses"]["429"]
    assert throttled["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Auth401Problem"}},
        "application/json": {"schema": DRF_THROTTLED},
    }
    status, body = throttled_answer(client, user)
    validate_against(schema, throttled["content"]["application/json"]["schema"], body)


# -- the example project's links and examples (example_project/openapi.py) ----------------------


def follow(expression: str, body: dict) -> str:
    """A link's ``$response.body#/name`` (alone or inside ``{...}`` in a string) on ``body``."""
    return re.sub(
        r"\{?\$response\.body#/(\w+)\}?", lambda match: str(body[match.group(1)]), expression
    )


@pytest.mark.urls("example_project.urls")
def test_links_lead_from_the_login_example_to_refresh_and_the_protected_views(
    docs_apps, client, db
):
    schema = fetch_schema(client)
    validate_schema(schema)
    token = schema["paths"]["/api/token/"]["post"]
    refresh = schema["paths"]["/api/token/refresh/"]["post"]
    operations = {
        op["operationId"]: (method.upper(), url)
        for url, item in schema["paths"].items()
        for method, op in item.items()
    }
    protected = {"me_retrieve", "staff_retrieve", "throttled_retrieve"}
    assert set(token["responses"]["200"]["links"]) == {"token_refresh_create"} | protected
    assert set(refresh["responses"]["200"]["links"]) == protected
    for media in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data"):
        assert token["requestBody"]["content"][media]["examples"]["alice"]["value"] == {
            "username": "alice",
            "password": "alice-password-1",
        }
        assert set(refresh["requestBody"]["content"][media]["examples"]["refresh"]["value"]) == {
            "refresh"
        }

    # follow them: the login example (the demo user alice), its refresh, the protected views
    call_command("auth401_demo", "--yes", stdout=io.StringIO())
    example = token["requestBody"]["content"]["application/json"]["examples"]["alice"]["value"]
    login = client.post("/api/token/", example, content_type="application/json")
    assert login.status_code == 200, login.content
    answers = {}
    for name, link in token["responses"]["200"]["links"].items():
        method, url = operations[link["operationId"]]
        if "requestBody" in link:
            body = {key: follow(value, login.json()) for key, value in link["requestBody"].items()}
            answers[name] = client.post(url, body, content_type="application/json")
        else:
            authorization = follow(link["parameters"]["header.Authorization"], login.json())
            answers[name] = client.get(url, HTTP_AUTHORIZATION=authorization)
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "token_refresh_create": 200,
        "me_retrieve": 200,
        "staff_retrieve": 403,  # alice is not staff: permission_denied, as documented
        "throttled_retrieve": 200,
    }
    assert answers["staff_retrieve"].json()["code"] == "permission_denied"
    refreshed = answers["token_refresh_create"].json()
    link = refresh["responses"]["200"]["links"]["me_retrieve"]
    me = client.get(
        "/api/me/", HTTP_AUTHORIZATION=follow(link["parameters"]["header.Authorization"], refreshed)
    )
    assert (me.status_code, me.json()["username"], me.json()["auth"]) == (
        200,
        "alice",
        "JWTAuthentication",
    )
