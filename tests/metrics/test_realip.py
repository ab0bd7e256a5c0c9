"""Real client IP: header priority, believed only from trusted proxies."""

from __future__ import annotations

import pytest

from dockyard.kernel.metrics.realip import client_ip, country, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])
ALL_HEADERS = {
    "cf-connecting-ip": "203.0.113.7",
    "x-real-ip": "198.51.100.2",
    "x-forwarded-for": "192.0.2.1, 10.0.0.5",
}


def test_from_a_trusted_proxy_cf_connecting_ip_comes_first() -> None:
    assert client_ip(ALL_HEADERS, "10.1.2.3", PROXIES) == "203.0.113.7"


def test_then_x_real_ip_then_the_first_forwarded_for() -> None:
    without_cf = {k: v for k, v in ALL_HEADERS.items() if k != "cf-connecting-ip"}
    assert client_ip(without_cf, "127.0.0.1", PROXIES) == "198.51.100.2"
    only_forwarded = {"x-forwarded-for": "192.0.2.1, 10.0.0.5"}
    assert client_ip(only_forwarded, "127.0.0.1", PROXIES) == "192.0.2.1"


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    assert client_ip(ALL_HEADERS, "192.0.2.99", PROXIES) == "192.0.2.99"
    assert client_ip(ALL_HEADERS, "127.0.0.2", PROXIES) == "127.0.0.2"


def test_with_no_trusted_proxies_the_socket_peer_is_the_client() -> None:
    assert client_ip(ALL_HEADERS, "10.1.2.3", ()) == "10.1.2.3"


def test_an_invalid_header_value_falls_through_to_the_next() -> None:
    headers = {"cf-connecting-ip": "not-an-ip", "x-real-ip": "2001:db8::1"}
    assert client_ip(headers, "fd00::1", PROXIES) == "2001:db8::1"


def test_without_headers_or_peer() -> None:
    assert client_ip({}, "10.0.0.1", PROXIES) == "10.0.0.1"
    assert client_ip(ALL_HEADERS, None, PROXIES) == ""


def test_country_is_believed_like_the_address() -> None:
    assert country({"cf-ipcountry": "de"}, "10.0.0.1", PROXIES) == "DE"
    assert country({"cf-ipcountry": "DE"}, "192.0.2.1", PROXIES) is None
    assert country({"cf-ipcountry": "Germany"}, "10.0.0.1", PROXIES) is None


def test_a_bad_trusted_proxy_entry_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        parse_networks(["10.0.0.0/33"])
