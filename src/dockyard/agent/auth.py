"""Request signing between the control plane and the agent: pure parts plus the key store.

The agent key is `HMAC-SHA256(secret, "node-agent:")` of a per-workspace agent secret. Each
request carries a signature over method, path with query, body digest, timestamp and nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

KEY_CONTEXT = b"node-agent:"
TIMESTAMP_HEADER = "X-Dockyard-Timestamp"
NONCE_HEADER = "X-Dockyard-Nonce"
SIGNATURE_HEADER = "X-Dockyard-Signature"
DIGEST_HEADER = "X-Dockyard-Content-SHA256"
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
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
        DIGEST_HEADER: request.body_sha256,
        TIMESTAMP_HEADER: str(request.timestamp),
        NONCE_HEADER: request.nonce,
        SIGNATURE_HEADER: sign(key, request),
    }


def new_nonce() -> str:
    return os.urandom(16).hex()


def parse_claim(headers: dict[str, str], method: str, path: str
                ) -> tuple[SignedRequest, str] | AuthFailure:
    """The signed request a caller claims to have made, with its signature, from the headers
    alone: the body's digest is claimed up front and checked as the body arrives."""
    names = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER, DIGEST_HEADER)
    timestamp, nonce, signature, digest = (headers.get(h.lower()) for h in names)
    if timestamp is None or nonce is None or signature is None or digest is None:
        return AuthFailure.MISSING
    well_formed = (_TIMESTAMP.fullmatch(timestamp) and _NONCE.fullmatch(nonce)
                   and _DIGEST.fullmatch(digest))
    if not well_formed:
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
    """Nonces seen within the signature lifetime; anything older is refused as expired anyway.

    With a `journal` file each first use is appended to it (`<seen> <nonce>` lines), and a
    new cache over the same file starts with the nonces still inside the window, so a
    request captured before an agent restart cannot be replayed after it."""

    def __init__(self, max_age: int, capacity: int = MAX_REMEMBERED_NONCES, *,
                 journal: Path | None = None, now: float | None = None) -> None:
        self.max_age = max_age
        self.capacity = capacity
        self.journal = journal
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._appended = 0
        if journal is not None:
            self._load(journal, time.time() if now is None else now)

    def first_use(self, nonce: str, now: float) -> bool:
        """Record `nonce`; False when it was already used."""
        self._forget_older_than(now - 2 * self.max_age)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        self._append(nonce, now)
        return True

    def _forget_older_than(self, cutoff: float) -> None:
        while self._seen and next(iter(self._seen.values())) < cutoff:
            self._seen.popitem(last=False)

    def _load(self, journal: Path, now: float) -> None:
        lines = journal.read_text().splitlines() if journal.exists() else []
        for line in lines[-self.capacity:]:
            seen, _, nonce = line.partition(" ")
            if _TIMESTAMP.fullmatch(seen) and _NONCE.fullmatch(nonce):
                self._seen[nonce] = float(seen)
        self._forget_older_than(now - 2 * self.max_age)
        self._rewrite(journal)

    def _append(self, nonce: str, now: float) -> None:
        if self.journal is None:
            return
        self._appended += 1
        if self._appended > self.capacity:  # keep the file bounded by the window
            self._rewrite(self.journal)
            return
        with self.journal.open("a") as handle:
            handle.write(f"{now:.0f} {nonce}\n")

    def _rewrite(self, journal: Path) -> None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        temporary = journal.with_name(f".{journal.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{seen:.0f} {nonce}\n" for nonce, seen in self._seen.items())
        os.replace(temporary, journal)
        self._appended = 0


def seal_key(current_key: bytes, new_key: bytes) -> str:
    """Encrypt a new key under the current one, so rotation never sends a key in clear."""
    from cryptography.fernet import Fernet  # only when keys rotate: 6 MB the agent spares

    return Fernet(base64.urlsafe_b64encode(current_key)).encrypt(new_key).decode()


def unseal_key(current_key: bytes, sealed: str) -> bytes | None:
    from cryptography.fernet import Fernet, InvalidToken

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
