"""The client's IP address, believing ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``.

``REMOTE_ADDR`` is the peer.  When the peer is a trusted proxy, ``X-Forwarded-For`` is walked
from the right (the entries proxies appended) past every trusted address; the first untrusted
one is the client.  Spoofed entries on the left are never reached, and garbage never raises.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from .conf import app_settings
from .request_id import http_request

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header entry: tolerates ``[v6]:port``, ``v4:port`` and spaces."""
    return _parse(value.strip()[:64])


@lru_cache(maxsize=4096)  # the same few peers and proxies, request after request
def _parse(text: str) -> IPAddress | None:
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        # "fe80::1%eth0": the zone names an interface of the sender's host, not the client;
        # and PostgreSQL's inet column refuses it (an audit row no drain could ever write).
        return ipaddress.IPv6Address(int(address))
    return address


def _trusted(address: IPAddress) -> bool:
    return any(address in network for network in app_settings.trusted_networks)


def client_ip(request: Any) -> str | None:
    """The client address as a string, or None when even ``REMOTE_ADDR`` is unusable."""
    meta = http_request(request).META
    peer = parse_ip(str(meta.get("REMOTE_ADDR", "")))
    if peer is None or not app_settings.trusted_networks or not _trusted(peer):
        return str(peer) if peer is not None else None
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR", ""))[-4096:]  # the right end is ours
    candidate = peer
    for entry in reversed(forwarded.split(",")):
        address = parse_ip(entry)
        if address is None:
            break  # a trusted proxy would not have appended this: stop believing the header
        candidate = address
        if not _trusted(address):
            break
    return str(candidate)
