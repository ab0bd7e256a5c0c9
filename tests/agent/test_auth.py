"""Signing and verification of agent requests: pure functions, exact answers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dockyard.agent import auth
from dockyard.agent.auth import AuthFailure, KeyStore, NonceCache, SignedRequest

KEY = auth.derive_agent_key("workspace-secret")
NOW = 1_800_000_000
MAX_AGE = 300


def claim(**changes: object) -> SignedRequest:
    values: dict[str, object] = {"method": "POST", "path": "/sites?x=1",
                                 "body_sha256": auth.body_digest(b"{}"), "timestamp": NOW,
                                 "nonce": "0123456789abcdef"}
    return SignedRequest(**{**values, **changes})  # type: ignore[arg-type]


def test_agent_key_is_hmac_of_the_secret_over_the_fixed_context() -> None:
    # Same value as: printf 'node-agent:' | openssl dgst -sha256 -hmac 'workspace-secret'
    assert KEY.hex() == "17edd4b3f70122dc24929e8a60f4393e6e42a606459800d3b4822eef0209aad0"


def test_canonical_form_joins_every_signed_part() -> None:
    assert claim().canonical() == (
        b"POST\n/sites?x=1\n" + auth.body_digest(b"{}").encode() + b"\n1800000000\n0123456789abcdef"
    )


def test_a_correct_signature_verifies() -> None:
    assert auth.verify(KEY, claim(), auth.sign(KEY, claim()), NOW + 10, MAX_AGE) is None


@pytest.mark.parametrize("tampered", [
    {"method": "PUT"}, {"path": "/sites?x=2"}, {"body_sha256": auth.body_digest(b"{ }")},
    {"nonce": "fedcba9876543210"}, {"timestamp": NOW + 1},
])
def test_changing_any_signed_part_breaks_the_signature(tampered: dict[str, object]) -> None:
    signature = auth.sign(KEY, claim())
    assert auth.verify(KEY, claim(**tampered), signature, NOW, MAX_AGE) is AuthFailure.WRONG


def test_a_signature_made_with_another_key_is_wrong() -> None:
    other = auth.sign(auth.derive_agent_key("another-secret"), claim())
    assert auth.verify(KEY, claim(), other, NOW, MAX_AGE) is AuthFailure.WRONG


@pytest.mark.parametrize("skew", [-301, 301, 3600])
def test_old_or_future_signatures_expire(skew: int) -> None:
    assert auth.verify(KEY, claim(), auth.sign(KEY, claim()), NOW + skew, MAX_AGE) is (
        AuthFailure.EXPIRED)


def test_parse_claim_reads_the_headers_and_reports_missing_or_malformed_ones() -> None:
    headers = {k.lower(): v for k, v in auth.signature_headers(KEY, claim()).items()}
    parsed = auth.parse_claim(headers, "POST", "/sites?x=1")
    assert parsed == (claim(), auth.sign(KEY, claim()))
    assert auth.parse_claim({}, "POST", "/") is AuthFailure.MISSING
    for name, value in (("x-dockyard-timestamp", "soon"), ("x-dockyard-timestamp", "\u00b2"),
                        ("x-dockyard-nonce", "abc"),
                        ("x-dockyard-nonce", "0123456789\n"),
                        ("x-dockyard-content-sha256", "A" * 64)):
        assert auth.parse_claim({**headers, name: value}, "POST", "/") is AuthFailure.MALFORMED


def test_a_nonce_is_accepted_once_and_forgotten_after_twice_the_lifetime() -> None:
    nonces = NonceCache(max_age=MAX_AGE)
    assert nonces.first_use("n1", NOW)
    assert not nonces.first_use("n1", NOW + 299)
    assert nonces.first_use("n2", NOW + 2 * MAX_AGE + 1)
    assert nonces.first_use("n1", NOW + 2 * MAX_AGE + 2)


def test_the_nonce_cache_is_bounded() -> None:
    nonces = NonceCache(max_age=MAX_AGE, capacity=3)
    for n in ("a", "b", "c", "d"):
        assert nonces.first_use(n, NOW)
    assert nonces.first_use("a", NOW)
    assert not nonces.first_use("d", NOW)


def test_a_sealed_key_opens_only_with_the_key_that_sealed_it() -> None:
    new_key = auth.derive_agent_key("next-secret")
    sealed = auth.seal_key(KEY, new_key)
    assert new_key.hex() not in sealed
    assert auth.unseal_key(KEY, sealed) == new_key
    assert auth.unseal_key(auth.derive_agent_key("thief"), sealed) is None
    assert auth.unseal_key(KEY, "not a token") is None


def test_an_agent_without_a_key_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"agent key file .* is missing"):
        KeyStore(tmp_path / "agent.key")


def test_rotation_replaces_the_key_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    auth.write_key_file(path, KEY)
    keys = KeyStore(path)
    new_key = auth.derive_agent_key("next-secret")
    assert not auth.rotate(keys, auth.seal_key(auth.derive_agent_key("thief"), new_key))
    assert auth.rotate(keys, auth.seal_key(KEY, new_key))
    assert keys.key == new_key
    assert KeyStore(path).key == new_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
