"""Request signing between the control plane and the agent: pure parts plus the key store.

The agent key is `HMAC-SHA256(secret, "node-agent:")` of a per-workspace agent secret. Each
request carries a signature over method, path with query, body digest, timestamp and nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_CONTEXT = b"node-agent:"
TIMESTAMP_HEADER = "X-Dockyard-Timestamp"
NONCE_HEADER = "X-Dockyard-Nonce"
SIGNATURE_HEADER = "X-Dockyard-Signature"
MAX_NONCE_LENGTH = 64
MAX_REMEMBERED_NONCES = 100_000


class AuthFailure(StrEnum):
    MISSING = "missing signature"
    MALFORMED = "malformed signature headers"
    EXPIRED = "signature expired"
    WRONG = "wrong signature"
    REPLAYED = "replayed signature"


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    body_sha256: str
    timestamp: int
    nonce: str

    def canonical(self) -> bytes:
        parts = (self.method.upper(), self.path, self.body_sha256, str(self.timestamp), self.nonce)
        return "\n".join(parts).encode()


def derive_agent_key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, KEY_CONTEXT, hashlib.sha256).digest()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign(key: bytes, request: SignedRequest) -> str:
    return hmac.new(key, request.canonical(), hashlib.sha256).hexdigest()


def signature_headers(key: bytes, request: SignedRequest) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(request.timestamp),
        NONCE_HEADER: request.nonce,
        SIGNATURE_HEADER: sign(key, request),
    }


def new_nonce() -> str:
    return os.urandom(16).hex()


def parse_claim(
    headers: dict[str, str], method: str, path: str, digest: str
) -> tuple[SignedRequest, str] | AuthFailure:
    """The signed request a caller claims to have made, with its signature."""
    values = [headers.get(h.lower()) for h in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)]
    timestamp, nonce, signature = values
    if timestamp is None or nonce is None or signature is None:
        return AuthFailure.MISSING
    if not timestamp.isdigit() or not 8 <= len(nonce) <= MAX_NONCE_LENGTH:
        return AuthFailure.MALFORMED
    return SignedRequest(method, path, digest, int(timestamp), nonce), signature


def verify(
    key: bytes, request: SignedRequest, signature: str, now: float, max_age: int
) -> AuthFailure | None:
    """Check age and signature (constant-time); replay is the nonce cache's job."""
    if abs(now - request.timestamp) > max_age:
        return AuthFailure.EXPIRED
    if not hmac.compare_digest(sign(key, request).encode(), signature.encode()):
        return AuthFailure.WRONG
    return None


class NonceCache:
    """Nonces seen within the signature lifetime; anything older is refused as expired anyway."""

    def __init__(self, max_age: int, capacity: int = MAX_REMEMBERED_NONCES) -> None:
        self.max_age = max_age
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, nonce: str, now: float) -> bool:
        """Record `nonce`; False when it was already used."""
        self._forget_older_than(now - 2 * self.max_age)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def _forget_older_than(self, cutoff: float) -> None:
        while self._seen and next(iter(self._seen.values())) < cutoff:
            self._seen.popitem(last=False)


def seal_key(current_key: bytes, new_key: bytes) -> str:
    """Encrypt a new key under the current one, so rotation never sends a key in clear."""
    return Fernet(base64.urlsafe_b64encode(current_key)).encrypt(new_key).decode()


def unseal_key(current_key: bytes, sealed: str) -> bytes | None:
    try:
        return Fernet(base64.urlsafe_b64encode(current_key)).decrypt(sealed.encode())
    except (InvalidToken, ValueError):
        return None


class KeyStore:
    """The agent's current key, kept hex-encoded in a 0600 file so it survives restarts."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise RuntimeError(f"agent key file {path} is missing: the provider that installs "
                               "the agent writes it from the workspace's agent secret")
        self.path = path
        self.key = bytes.fromhex(path.read_text().strip())

    def replace(self, new_key: bytes) -> None:
        write_key_file(self.path, new_key)
        self.key = new_key


def write_key_file(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    os.replace(temporary, path)


def now() -> float:
    return time.time()


def rotate(keys: KeyStore, sealed: str) -> bool:
    """Install the key sealed under the current one; False if it was not sealed by its holder."""
    new_key = unseal_key(keys.key, sealed)
    if new_key is None or len(new_key) != 32:
        return False
    keys.replace(new_key)
    return True
