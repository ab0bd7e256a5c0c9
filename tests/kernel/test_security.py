"""Pure tests of passwords, JWTs, API tokens, the key file and encryption at rest."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from dockyard.kernel.security import (
    KeyFileError,
    Keys,
    Passwords,
    SecretBox,
    decode_jwt,
    ensure_key_file,
    hash_api_token,
    issue_jwt,
    new_api_token,
    read_key_file,
)


def test_passwords_verify_only_the_right_one():
    passwords = Passwords(time_cost=1, memory_kib=64)
    stored = passwords.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "wrong horse")
    assert not passwords.verify(None, "correct horse")
    assert not passwords.verify("not-a-hash", "correct horse")


def test_api_tokens_are_random_and_hash_deterministically():
    first, second = new_api_token(), new_api_token()
    assert first != second
    assert first.startswith("dy_")
    assert len(first) > 40
    assert hash_api_token(first) == hash_api_token(first)
    assert hash_api_token(first) != hash_api_token(second)


def test_key_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "secret.key"
    ensure_key_file(path)
    key = read_key_file(path)
    ensure_key_file(path)
    assert read_key_file(path) == key
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(key) == 32


def test_unsafe_or_missing_key_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "secret.key"
    with pytest.raises(KeyFileError, match="dockyard up"):
        read_key_file(path)
    ensure_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(path)


def test_derived_keys_differ_per_purpose_and_per_master():
    one, two = Keys.from_master(b"a" * 32), Keys.from_master(b"b" * 32)
    assert one.jwt != one.secrets
    assert one.jwt != two.jwt
    assert Keys.from_master(b"a" * 32) == one


def test_secret_box_round_trips_and_refuses_another_key():
    box = SecretBox(Keys.from_master(b"a" * 32).secrets)
    sealed = box.encrypt("s3cret\nwith newline")
    assert "s3cret" not in sealed
    assert box.decrypt(sealed) == "s3cret\nwith newline"
    other = SecretBox(Keys.from_master(b"b" * 32).secrets)
    with pytest.raises(KeyFileError):
        other.decrypt(sealed)


def test_jwt_round_trip_expiry_and_tampering():
    key = b"k" * 32
    token = issue_jwt(key, "user", "space", timedelta(minutes=5))
    claims = decode_jwt(key, token)
    assert claims is not None
    assert (claims["sub"], claims["wid"]) == ("user", "space")
    assert decode_jwt(b"x" * 32, token) is None
    assert decode_jwt(key, issue_jwt(key, "u", "w", timedelta(seconds=-5))) is None
    assert decode_jwt(key, token[:-2] + "xx") is None
