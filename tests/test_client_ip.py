import pytest
from django.test import RequestFactory

from auth401.client_ip import client_ip, parse_ip


@pytest.fixture
def request_from():
    factory = RequestFactory()

    def make(remote_addr, forwarded=None):
        extra = {"REMOTE_ADDR": remote_addr}
        if forwarded is not None:
            extra["HTTP_X_FORWARDED_FOR"] = forwarded
        return factory.get("/", **extra)

    return make


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
        ("203.0.113.9:4431", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("unknown", None),
        ("", None),
        ("\r\nX-Evil: 1", None),
        ("1" * 5000, None),
        ("[::1", None),
        ("fe80::1%eth0", "fe80::1"),  # PostgreSQL's inet refuses a zone: the drain stalled
        ("[2001:db8::1%25]:443", "2001:db8::1"),
    ],
)
def test_parse_ip(text, expected):
    parsed = parse_ip(text)
    assert (str(parsed) if parsed else None) == expected


def test_untrusted_peer_ignores_forwarded_for(request_from, settings):
    settings.AUTH401 = {"TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert client_ip(request_from("198.51.100.4", "1.2.3.4")) == "198.51.100.4"


def test_no_trusted_proxies_ignores_forwarded_for(request_from):
    assert client_ip(request_from("10.0.0.1", "1.2.3.4")) == "10.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("1.1.1.1, 198.51.100.7", "198.51.100.7"),  # a forged left entry is never reached
        ("1.1.1.1, 198.51.100.7, 10.0.0.2", "198.51.100.7"),  # past a trusted hop
        ("garbage, 198.51.100.7", "198.51.100.7"),
        ("198.51.100.7, garbage", "10.0.0.1"),  # no proxy appends garbage: believe the peer
        ("10.0.0.3, 10.0.0.2", "10.0.0.3"),  # an internal client behind internal proxies
        ("", "10.0.0.1"),
        (",,,", "10.0.0.1"),
        ("\xff\xfe, 198.51.100.7", "198.51.100.7"),
        (",".join(["1.1.1.1"] * 3000), "1.1.1.1"),
        ("1.1.1.1," * 3000, "10.0.0.1"),
    ],
)
def test_trusted_proxy_right_most_untrusted(request_from, settings, forwarded, expected):
    settings.AUTH401 = {"TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert client_ip(request_from("10.0.0.1", forwarded)) == expected


def test_unusable_remote_addr(request_from):
    assert client_ip(request_from("")) is None


FULL = "7ecf:12bd:359a:96d8:b16a:da54:c4c2:ec48"  # no group to compress: 39 characters


@pytest.mark.django_db(transaction=True)
def test_a_scoped_forwarded_address_is_recorded_without_its_zone(client, settings, user):
    """Behind a trusted proxy, a forwarded address with a zone: the row is written.  Django
    drops the zone of short addresses itself, but not of one past 39 characters with it, which
    PostgreSQL's inet refused (and the audit drain retried the row forever)."""
    from auth401.models import AuthEvent
    from tests.conftest import basic

    settings.AUTH401 = {**settings.AUTH401, "TRUSTED_PROXIES": ["127.0.0.0/8"]}
    response = client.get(
        "/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"), HTTP_X_FORWARDED_FOR=f"{FULL}%eth0"
    )
    assert response.status_code == 401
    assert list(AuthEvent.objects.values_list("code", "ip")) == [("credentials_invalid", FULL)]
