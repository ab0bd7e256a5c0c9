"""A real ACME server for tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS.

`start_pebble(http_port)` runs both on free ports of `listen_host` (loopback by default).
Pebble checks HTTP-01 challenges at `http://<name>:<http_port>/`, where `<name>` resolves to
`default_ipv4` (or to what `add_a` set), so a test's responder or a node's edge nginx must
listen there. The ACME client trusts `ca_bundle` (a CA this module makes for pebble's
listener); clients of the certificates pebble issues trust `roots_pem()`.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.agent import process
from dockyard.providers import netns
from tests.ports import free_port

INSTALL_HINT = "pebble is missing: apt-get install -y pebble (it brings pebble-challtestsrv)"
READY_WITHIN = 30.0
CHALLENGE_PATH = "/.well-known/acme-challenge/"


class PebbleFailed(RuntimeError):
    """Pebble or its DNS server did not start; the message holds its exit code and output."""


@dataclass
class Pebble:
    """A running pebble and its DNS server (challtestsrv)."""

    directory_url: str
    management_url: str
    dns_management_url: str
    ca_bundle: Path
    workdir: Path
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    owns_workdir: bool = False

    def add_a(self, host: str, ip: str) -> None:
        """Make `host` resolve to `ip` for pebble's validation (instead of `default_ipv4`)."""
        answer = httpx.post(f"{self.dns_management_url}/add-a",
                            json={"host": host, "addresses": [ip]}, timeout=10)
        answer.raise_for_status()

    def roots_pem(self) -> str:
        """Pebble's issuing root (made anew at each start), for clients of its certificates."""
        answer = httpx.get(f"{self.management_url}/roots/0", verify=self.tls_context(),
                           timeout=10)
        answer.raise_for_status()
        return answer.text

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def stop(self) -> None:
        for program, child in reversed(self.children):
            netns.stop_process(child.pid, program, grace=10)
            child.wait(timeout=10)
        self.children.clear()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Pebble:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_pebble(http_port: int, default_ipv4: str = "127.0.0.1", *,
                 listen_host: str = "127.0.0.1", acme_port: int | None = None,
                 workdir: Path | None = None, nonce_reject_percent: int = 0,
                 authz_reuse_percent: int = 0) -> Pebble:
    """Start challtestsrv (DNS only) and pebble on free ports of `listen_host` (the ACME
    directory on `acme_port` if given); return once pebble's directory answers. Valid
    authorizations are reused `authz_reuse_percent` of the time (0: every order is validated
    anew), good nonces are refused `nonce_reject_percent` of the time (to exercise a
    client's badNonce retry)."""
    if shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None:
        raise PebbleFailed(INSTALL_HINT)
    ip_address(default_ipv4)  # challtestsrv would answer nothing for a malformed one
    root = Path(tempfile.mkdtemp(prefix="dy-pebble-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    listen, management = (_hostport(listen_host, acme_port or free_port(listen_host)),
                          _hostport(listen_host, free_port(listen_host)))
    dns, dns_management = (_hostport(listen_host, free_port(listen_host)),
                           _hostport(listen_host, free_port(listen_host)))
    pebble = Pebble(f"https://{listen}/dir", f"https://{management}",
                    f"http://{dns_management}", _write_listener_tls(root, listen_host), root,
                    owns_workdir=workdir is None)
    env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": str(nonce_reject_percent),
           "PEBBLE_AUTHZREUSE": str(authz_reuse_percent)}
    try:
        _spawn(pebble, "pebble-challtestsrv",
               _challtestsrv_argv(dns, dns_management, default_ipv4), {})
        _await(pebble, lambda: _answers(f"{pebble.dns_management_url}/", None))
        config = _write_config(root, listen, management, http_port)
        _spawn(pebble, "pebble", ["pebble", "-config", str(config), "-dnsserver", dns], env)
        _await(pebble, lambda: _answers(pebble.directory_url, pebble.tls_context()))
    except BaseException:
        pebble.stop()
        raise
    return pebble


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ip_address(host).version == 6 else f"{host}:{port}"


def _challtestsrv_argv(dns: str, management: str, default_ipv4: str) -> list[str]:
    return ["pebble-challtestsrv", "-dns01", dns, "-management", management,
            "-defaultIPv4", default_ipv4, "-defaultIPv6", "",
            "-http01", "", "-https01", "", "-tlsalpn01", ""]


def _write_config(root: Path, listen: str, management: str, http_port: int) -> Path:
    config = root / "pebble-config.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": listen, "managementListenAddress": management,
        "certificate": str(root / "listener.crt"), "privateKey": str(root / "listener.key"),
        "httpPort": http_port, "tlsPort": free_port(), "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}))
    return config


def _spawn(pebble: Pebble, program: str, argv: list[str], extra_env: dict[str, str]) -> None:
    log_file = pebble.workdir / f"{program}.log"
    child = process.spawn(argv, log_file=log_file, env={**os.environ, **extra_env})
    pebble.children.append((program, child))


def _await(pebble: Pebble, ready: Callable[[], bool]) -> None:
    """Poll `ready` until it holds; a child that exits meanwhile fails at once."""
    deadline = time.monotonic() + READY_WITHIN
    while not ready():
        for program, child in pebble.children:
            if child.poll() is not None:
                raise PebbleFailed(f"{program} exited with code {child.returncode}: "
                                   f"{_tail(pebble.workdir / f'{program}.log')}")
        if time.monotonic() > deadline:
            raise PebbleFailed(f"pebble did not answer within {READY_WITHIN:.0f} s "
                               f"(see {pebble.workdir})")
        time.sleep(0.02)


def _answers(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        httpx.get(url, verify=context or False, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _tail(log_file: Path, lines: int = 15) -> str:
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _write_listener_tls(root: Path, host: str) -> Path:
    """A CA and, signed by it, the certificate pebble's listeners present for `host`."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test pebble CA")])
    ca = (_certificate_builder(ca_name, ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    leaf = (_certificate_builder(leaf_name, ca_name, key.public_key())
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ip_address(host)), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    (root / "listener.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (root / "listener.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (root / "listener-ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return root / "listener-ca.crt"


def _certificate_builder(subject: x509.Name, issuer: x509.Name,
                         public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2)))


class ChallengeResponder:
    """A tiny HTTP server answering HTTP-01 challenges with what `publish` put in `answers`,
    and counting what was asked, for tests of an ACME client without an edge nginx."""

    def __init__(self, host: str, port: int) -> None:
        self.answers: dict[str, str] = {}
        self.asked: list[str] = []
        self.port = port
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.removeprefix(CHALLENGE_PATH)
                responder.asked.append(token)
                answer = responder.answers.get(token) if self.path.startswith(
                    CHALLENGE_PATH) else None
                body = (answer or "not found").encode()
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    async def publish(self, token: str, key_authorization: str) -> None:
        self.answers[token] = key_authorization

    async def withdraw(self, token: str) -> None:
        self.answers.pop(token, None)

    def __enter__(self) -> ChallengeResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
