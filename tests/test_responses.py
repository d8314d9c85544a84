"""``auth401.responses``: what a failure's body and headers say, beyond the catalogue table
(tests/test_catalogue.py): the docs link with other braces in the URL, and one challenge per
JWT header type."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "docs_url",
    ["https://e.com/errors/{code}#{section}", "https://e.com/{code}/{", "https://e.com/{code}/{0}"],
)
def test_docs_url_with_other_braces(api_client, auth401_settings, docs_url):
    auth401_settings(DOCS_URL=docs_url)
    body = api_client.get("/api/me/").json()
    assert body["docs"] == docs_url.replace("{code}", "credentials_missing")


def test_one_challenge_per_jwt_header_type(api_client, settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "AUTH_HEADER_TYPES": ("Bearer", "JWT")}
    response = api_client.get("/api/order/jwt-only/", HTTP_AUTHORIZATION="JWT abc")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The token is not valid: '
        'it is not a well-formed JWT.", JWT realm="api"'
    )
