"""An httpx transport that talks TLS only to the agent whose certificate fingerprint is pinned.

There is no CA: the handshake accepts any certificate, and right after it, before a byte of
the request is sent, the connection is closed unless the peer's certificate has the pinned
SHA-256 fingerprint."""

from __future__ import annotations

import hmac
import ssl
import typing

import httpcore
import httpx

from dockyard.agent.tls import fingerprint_of


class CertificateChanged(httpcore.ConnectError):
    """The agent presented another certificate than the pinned one (httpx: ConnectError)."""


def _pin_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the fingerprint check below replaces the CA check
    return context


class _PinnedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, fingerprint: str, where: str) -> None:
        self._inner = inner
        self._fingerprint = fingerprint
        self._where = where

    # The signatures below are httpcore's interface, timeouts included.
    async def read(self, max_bytes: int, timeout: float | None = None  # noqa: ASYNC109
                   ) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None  # noqa: ASYNC109
                    ) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None  # noqa: ASYNC109
                        ) -> httpcore.AsyncNetworkStream:
        secured = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        der = secured.get_extra_info("ssl_object").getpeercert(binary_form=True) or b""
        presented = fingerprint_of(der)
        if not hmac.compare_digest(presented, self._fingerprint):
            await secured.aclose()
            raise CertificateChanged(
                f"the agent at {self._where} presented certificate {presented}, but "
                f"{self._fingerprint} is pinned; refusing to talk to it (if its certificate "
                "was replaced on purpose, pin it again: `dockyard servers pin SERVER_ID`)")
        return secured


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, fingerprint: str) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._fingerprint = fingerprint

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PinnedStream(stream, self._fingerprint, f"{host} port {port}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(fingerprint: str) -> httpx.AsyncHTTPTransport:
    """A transport for `https://` agent URLs that only completes connections to `fingerprint`."""
    transport = httpx.AsyncHTTPTransport(verify=_pin_context())
    # httpx has no public hook for the network backend; its pool is rebuilt with ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=_pin_context(), max_connections=100, max_keepalive_connections=20,
        keepalive_expiry=5.0, network_backend=_PinnedBackend(fingerprint))
    return transport


class Unpinned(httpx.AsyncBaseTransport):
    """For an `https://` agent without a pinned fingerprint: every request fails to connect,
    saying why, so a server row without a pin is unreachable, never trusted blindly."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"no certificate fingerprint is pinned for the agent at "
                                 f"{self.url}; pin it: `dockyard servers pin SERVER_ID`",
                                 request=request)
