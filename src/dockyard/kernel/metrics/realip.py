"""The real client address: forwarded headers count only when a trusted proxy sent them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# In order of preference, as PRODUCT.md lists them.
CLIENT_IP_HEADERS = ("cf-connecting-ip", "x-real-ip", "x-forwarded-for")


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDRs ('10.0.0.0/8', '127.0.0.1', '::1'); a bad entry is an error."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def is_trusted(peer: str | None, trusted: Sequence[Network]) -> bool:
    if not trusted:  # the usual case: no address to parse
        return False
    address = _valid_ip(peer or "")
    return address is not None and any(ipaddress.ip_address(address) in net for net in trusted)


def client_ip(headers: Mapping[str, str], peer: str | None, trusted: Sequence[Network]) -> str:
    """CF-Connecting-IP, then X-Real-IP, then the first X-Forwarded-For entry, when the peer
    is a trusted proxy; otherwise (or when none holds a valid address) the peer itself."""
    if is_trusted(peer, trusted):
        for name in CLIENT_IP_HEADERS:
            value = headers.get(name, "").split(",")[0]
            address = _valid_ip(value)
            if address:
                return address
    return peer or ""


def country(headers: Mapping[str, str], peer: str | None, trusted: Sequence[Network]) -> str | None:
    """Cloudflare's CF-IPCountry (two letters), believed like the address headers."""
    value = headers.get("cf-ipcountry", "").strip().upper()
    if len(value) == 2 and value.isalnum() and is_trusted(peer, trusted):
        return value
    return None
