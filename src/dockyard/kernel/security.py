"""Passwords, JWTs, API tokens and encryption of secrets at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_TOKEN_PREFIX = "dy_"  # noqa: S105
INVITATION_PREFIX = "dyi_"
JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "dockyard-api"


class KeyFileError(RuntimeError):
    """The secret key file is missing or unsafe; the message says what to do."""


class Passwords:
    """Argon2id hashing; the cost is a setting (OWASP's 19 MiB, 2 passes by default)."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified against when an account does not exist, so timing does not tell.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_invitation_token() -> str:
    return INVITATION_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is a safe lookup hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_key_file(path: Path) -> None:
    """Create a new random master key with mode 0600 if the file does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


def read_key_file(path: Path) -> bytes:
    if not path.exists():
        raise KeyFileError(f"secret key file {path} does not exist; run `dockyard up` first")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise KeyFileError(f"secret key file {path} is readable by others; run chmod 600 {path}")
    key = base64.urlsafe_b64decode(path.read_text().strip())
    if len(key) < 32:
        raise KeyFileError(f"secret key file {path} holds fewer than 32 bytes")
    return key


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


@dataclass(frozen=True)
class Keys:
    """Purpose-bound keys derived from the one master key."""

    jwt: bytes
    secrets: bytes

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        return cls(jwt=_derive(master, "dockyard:jwt"), secrets=_derive(master, "dockyard:secrets"))


class SecretBox:
    """Authenticated encryption for values stored at rest."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise KeyFileError("a stored secret cannot be decrypted with this key") from exc


def issue_jwt(
    key: bytes, user_id: str, workspace_id: str, lifetime: timedelta, session_id: str | None = None
) -> str:
    """A signed token; `session_id` (claim `sid`) names the login session that must stay live."""
    now = datetime.now(UTC)
    claims = {"sub": user_id, "wid": workspace_id, "aud": JWT_AUDIENCE, "iat": now}
    if session_id:
        claims["sid"] = session_id
    return jwt.encode({**claims, "exp": now + lifetime}, key, algorithm=JWT_ALGORITHM)


def decode_jwt(key: bytes, token: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token; None for anything else."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[JWT_ALGORITHM], audience=JWT_AUDIENCE,
            options={"require": ["exp", "sub", "wid"]},
        )
    except jwt.PyJWTError:
        return None
    return claims


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
