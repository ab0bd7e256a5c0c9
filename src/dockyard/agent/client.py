"""The control plane's side of the agent: every request signed with a key derived here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx

from dockyard.agent import auth
from dockyard.agent.buildconfig import BuildOptions
from dockyard.agent.execs import BlobInfo, ExecRequest, ExecResult
from dockyard.agent.logbuffer import LogPage
from dockyard.agent.models import (
    WEEK_SECONDS,
    AcmeChallenge,
    AgentInfo,
    CachePruneRequest,
    CachePruneResult,
    CertificateInstall,
    ContainerHealth,
    ContainerSpec,
    ContainerSummary,
    FirewallRule,
    ImageRef,
    ImageSummary,
    InstalledCertificate,
    NodeHealth,
    OneOffRun,
    ProbeRequest,
    ProbeResult,
    ProcessState,
    PruneRequest,
    PruneResult,
    Site,
    TagRequest,
)
from dockyard.agent.patience import AWAY, Patience
from dockyard.agent.pinning import Unpinned, pinned_transport
from dockyard.agent.release import UPGRADE_PATH, Bundle
from dockyard.kernel.context import current_request_id
from dockyard.models.app_metrics import FileSystemUsage, HostStats, RequestMetricsPage
from dockyard.models.disk import DiskCleanup
from dockyard.models.upgrades import UpgradeAccepted

REQUEST_ID_HEADER = "X-Request-ID"
RUNS_PATH = "/runs"  # a one-off run: its command is not started twice
STREAM_RESTARTS = 3
UPGRADE_SECONDS = 180.0  # unpacking and self-testing a release (the agent allows 60 s for it)
_CHUNK = 1024 * 1024
Upload = bytes | Path


class AgentError(RuntimeError):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"agent answered {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


async def unless_gone(call: Awaitable[None]) -> None:
    """Await a removal through the agent; what is already gone (404) is removed too."""
    try:
        await call
    except AgentError as exc:
        if exc.status_code != 404:
            raise


async def _file_digest(path: Path) -> str:
    def digest() -> str:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    return await anyio.to_thread.run_sync(digest)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(_CHUNK):
            yield chunk


async def _error_of(response: httpx.Response) -> AgentError:
    body = await response.aread()
    try:
        detail = json.loads(body).get("detail", body.decode(errors="replace"))
    except (ValueError, AttributeError):
        detail = body.decode(errors="replace")
    return AgentError(response.status_code, str(detail))


def _repeatable(path: str, error: Exception) -> bool:
    """Whether a stream may start again: a one-off run only when the agent never got it."""
    return path != RUNS_PATH or isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)


class NodeAgentClient:
    """One agent. Pass the workspace's agent secret; the key is derived, never sent. An
    `https://` agent is only talked to if its certificate has the pinned `fingerprint`.
    With `patience` set, a call that cannot reach the agent is made again for a while (every
    call is safe to repeat but a one-off run, which only is when it never arrived)."""

    patience: Patience | None = None

    def __init__(self, base_url: str, secret: str | bytes, *, fingerprint: str = "",
                 timeout: float = 60.0, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        if transport is None and base_url.startswith("https://"):
            transport = pinned_transport(fingerprint) if fingerprint else Unpinned(base_url)
        self._key = auth.derive_agent_key(secret)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> NodeAgentClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _sign(self, request: httpx.Request, digest: str) -> httpx.Request:
        claim = auth.SignedRequest(request.method, request.url.raw_path.decode("ascii"), digest,
                                   int(auth.now()), auth.new_nonce())
        request.headers.update(auth.signature_headers(self._key, claim))
        if request_id := current_request_id():
            request.headers[REQUEST_ID_HEADER] = request_id
        return request

    async def _open(self, method: str, path: str, *, body: Any = None, upload: Upload | None = None,
                    params: dict[str, Any] | None = None, seconds: float | None = None
                    ) -> httpx.Response:
        """Send a signed request and return the open response; raise `AgentError` on failure."""
        if isinstance(upload, Path):
            content: Any = _file_chunks(upload)
            digest = await _file_digest(upload)
        else:
            content = upload if upload is not None else (
                b"" if body is None else json.dumps(body).encode())
            digest = auth.body_digest(content)
        headers = {"content-type": "application/json" if upload is None else "application/x-tar"}
        request = self._http.build_request(
            method, path, content=content, params=params, headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if seconds is None else seconds)
        response = await self._http.send(self._sign(request, digest), stream=True)
        if response.is_error:
            error = await _error_of(response)
            await response.aclose()
            raise error
        return response

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        if self.patience is None:
            return await self._call_once(method, path, **options)
        return await self.patience.retry(lambda: self._call_once(method, path, **options))

    async def _call_once(self, method: str, path: str, **options: Any) -> Any:
        response = await self._open(method, path, **options)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return json.loads(body) if body else None

    async def _lines(self, method: str, path: str, **options: Any) -> AsyncIterator[dict[str, Any]]:
        """NDJSON progress lines; an `error` line raises after it has been yielded. With
        patience, a stream the agent dropped starts again (a pull, push or build repeats;
        a one-off run only if its request never reached the agent)."""
        if self.patience is None:
            async for item in self._lines_once(method, path, **options):
                yield item
            return
        for restart in range(STREAM_RESTARTS + 1):
            try:
                async for item in self._lines_once(method, path, **options):
                    yield item
                return
            except AWAY as exc:
                if restart == STREAM_RESTARTS or not _repeatable(path, exc):
                    raise
                await self.patience.retry(self._reach)

    async def _reach(self) -> None:
        await self._call_once("GET", "/info")

    async def _lines_once(self, method: str, path: str, **options: Any
                          ) -> AsyncIterator[dict[str, Any]]:
        response = await self._open(method, path, **options)
        try:
            async for line in response.aiter_lines():
                if line.strip():
                    item: dict[str, Any] = json.loads(line)
                    yield item
                    if "error" in item:
                        raise AgentError(500, str(item["error"]))
        finally:
            await response.aclose()

    async def info(self) -> AgentInfo:
        return AgentInfo.model_validate(await self._call("GET", "/info"))

    async def node_health(self) -> NodeHealth:
        """The node's data path (both nginx layers, each site through the edge) and the
        supervisor's recent events."""
        return NodeHealth.model_validate(await self._call("GET", "/health"))

    async def upgrade_agent(self, bundle: Bundle) -> UpgradeAccepted:
        """Hand the agent a release: it checks, self-tests and switches to it (409 when it was
        not installed from a bundle, 422 when the release fails), answers, then restarts."""
        params = {"version": bundle.version, "sha256": bundle.sha256}
        answer = await self._call("POST", UPGRADE_PATH, upload=bundle.data, params=params,
                                  seconds=UPGRADE_SECONDS)
        return UpgradeAccepted.model_validate(answer)

    async def rotate_key(self, new_secret: str | bytes) -> None:
        """Move the agent to the key of `new_secret`; the old key stops working at once."""
        new_key = auth.derive_agent_key(new_secret)
        await self._call("POST", "/auth/rotate",
                         body={"sealed_key": auth.seal_key(self._key, new_key)})
        self._key = new_key

    def build(self, context: Upload, target: ImageRef, dockerfile: str = "Dockerfile",
              options: BuildOptions = BuildOptions()) -> AsyncIterator[dict[str, Any]]:
        params = {"repository": target.repository, "tag": target.tag, "dockerfile": dockerfile,
                  "build_arg": list(options.build_args), "memory_mb": options.memory_mb,
                  "cpus": options.cpus}
        params = {name: value for name, value in params.items() if value not in (None, [])}
        return self._lines("POST", "/images/build", upload=context, params=params)

    async def import_rootfs(self, rootfs: Upload, target: ImageRef) -> None:
        params = {"repository": target.repository, "tag": target.tag}
        await self._call("POST", "/images/import", upload=rootfs, params=params)

    def pull(self, ref: ImageRef) -> AsyncIterator[dict[str, Any]]:
        return self._lines("POST", "/images/pull", body=ref.model_dump())

    def push(self, ref: ImageRef) -> AsyncIterator[dict[str, Any]]:
        return self._lines("POST", "/images/push", body=ref.model_dump())

    async def tag(self, source: ImageRef, target: ImageRef) -> None:
        body = TagRequest(source=source, target=target).model_dump()
        await self._call("POST", "/images/tag", body=body)

    async def images(self) -> list[ImageSummary]:
        return [ImageSummary.model_validate(i) for i in await self._call("GET", "/images")]

    async def remove_image(self, ref: ImageRef) -> None:
        await self._call("DELETE", "/images", params=ref.model_dump())

    async def prune(self, keep: int, repository: str | None = None,
                    retain: list[str] | None = None, *,
                    dangling_max_age_seconds: int = WEEK_SECONDS) -> PruneResult:
        body = PruneRequest(keep=keep, repository=repository, retain=retain or [],
                            dangling_max_age_seconds=dangling_max_age_seconds)
        return PruneResult.model_validate(
            await self._call("POST", "/images/prune", body=body.model_dump(mode="json")))

    async def prune_cache(self, request: CachePruneRequest) -> CachePruneResult:
        """Dangling images and build cache older than the request's age, on this node."""
        answer = await self._call("POST", "/images/prune-cache", body=request.model_dump())
        return CachePruneResult.model_validate(answer)

    async def run_container(self, spec: ContainerSpec) -> ContainerSummary:
        answer = await self._call("POST", "/containers", body=spec.model_dump(mode="json"))
        return ContainerSummary.model_validate(answer)

    async def containers(self, service: str | None = None) -> list[ContainerSummary]:
        params = {"service": service} if service else None
        return [ContainerSummary.model_validate(c)
                for c in await self._call("GET", "/containers", params=params)]

    async def processes(self, service: str) -> list[ProcessState]:
        return [ProcessState.model_validate(p)
                for p in await self._call("GET", "/processes", params={"service": service})]

    def run_one_off(self, request: OneOffRun) -> AsyncIterator[dict[str, Any]]:
        """The run's NDJSON lines: `container`, `output` chunks, then `exit_code`."""
        return self._lines("POST", RUNS_PATH, body=request.model_dump(mode="json"),
                           seconds=request.timeout_seconds + 60.0)

    async def stop_container(self, name: str, grace_seconds: int = 10) -> None:
        await self._call("POST", f"/containers/{name}/stop", body={"grace_seconds": grace_seconds})

    async def remove_container(self, name: str) -> None:
        await self._call("DELETE", f"/containers/{name}")

    async def health(self, name: str) -> ContainerHealth:
        return ContainerHealth.model_validate(
            await self._call("GET", f"/containers/{name}/health"))

    async def logs(self, name: str, *, follow: bool = False, tail: int = 200
                   ) -> AsyncIterator[str]:
        params = {"follow": str(follow).lower(), "tail": tail}
        response = await self._open("GET", f"/containers/{name}/logs", params=params)
        try:
            async for line in response.aiter_lines():
                yield line
        finally:
            await response.aclose()

    async def log_page(self, after: int, limit: int = 1000) -> LogPage:
        """Buffered container log lines after the sequence number `after`."""
        params = {"after": after, "limit": limit}
        return LogPage.model_validate(await self._call("GET", "/logs", params=params))

    async def request_metrics(self, after: int) -> RequestMetricsPage:
        """Closed request buckets of the node's apps after the cursor `after`, oldest first."""
        answer = await self._call("GET", "/metrics/requests", params={"after": after})
        return RequestMetricsPage.model_validate(answer)

    async def host_stats(self) -> HostStats:
        """The node's latest CPU, memory, disk and container figures."""
        return HostStats.model_validate(await self._call("GET", "/host"))

    async def disk(self) -> list[FileSystemUsage]:
        """The file systems the agent writes to, read now."""
        return [FileSystemUsage.model_validate(raw) for raw in await self._call("GET", "/disk")]

    async def disk_cleanups(self) -> list[DiskCleanup]:
        """The agent's last cleanings of its disk, oldest first."""
        found = await self._call("GET", "/disk/cleanups")
        return [DiskCleanup.model_validate(raw) for raw in found]

    async def clean_disk(self) -> DiskCleanup:
        """Clean the node's disk now, whatever its threshold; what that removed."""
        return DiskCleanup.model_validate(await self._call("POST", "/disk/clean"))

    async def probe(self, port: int, path: str, timeout_seconds: float = 2.0, *,
                    host: str = "127.0.0.1") -> ProbeResult:
        """One GET the agent makes on its node; a failed connection is `ok=False`, not raised."""
        body = ProbeRequest(port=port, path=path, timeout_seconds=timeout_seconds, host=host)
        answer = await self._call("POST", "/probe", body=body.model_dump(mode="json"),
                                  seconds=timeout_seconds + 10)
        return ProbeResult.model_validate(answer)

    async def create_volume(self, name: str, service: str) -> None:
        await self._call("POST", "/volumes", body={"name": name, "service": service})

    async def volumes(self, service: str) -> list[str]:
        names: list[str] = await self._call("GET", "/volumes", params={"service": service})
        return names

    async def volume_sizes(self, service: str) -> dict[str, int]:
        sizes: dict[str, int] = await self._call("GET", "/volumes/sizes",
                                                 params={"service": service})
        return sizes

    async def remove_volume(self, name: str) -> None:
        await self._call("DELETE", f"/volumes/{name}")

    async def apply_site(self, site: Site) -> None:
        await self._call("PUT", "/sites", body=site.model_dump(mode="json"))

    async def sites(self) -> list[Site]:
        return [Site.model_validate(s) for s in await self._call("GET", "/sites")]

    async def remove_site(self, service: str) -> None:
        await self._call("DELETE", f"/sites/{service}")

    async def put_firewall_rule(self, rule: FirewallRule) -> None:
        """Apply or replace who may reach `rule.port` on the node (repeatable)."""
        await self._call("PUT", f"/firewall/{rule.name}", body=rule.model_dump(mode="json"))

    async def remove_firewall_rule(self, name: str) -> None:
        """Remove a rule set; one that is gone already is no error."""
        await self._call("DELETE", f"/firewall/{name}")

    async def firewall_rules(self) -> list[FirewallRule]:
        return [FirewallRule.model_validate(r) for r in await self._call("GET", "/firewall")]

    async def install_certificate(self, hostname: str, install: CertificateInstall) -> None:
        """Install or replace `hostname`'s certificate; the edge serves it from the next
        handshake (no reload)."""
        await self._call("PUT", f"/certificates/{hostname}", body=install.model_dump(mode="json"))

    async def certificates(self) -> list[InstalledCertificate]:
        return [InstalledCertificate.model_validate(c)
                for c in await self._call("GET", "/certificates")]

    async def remove_certificate(self, hostname: str) -> None:
        """Remove a certificate; one that is gone already is no error."""
        await self._call("DELETE", f"/certificates/{hostname}")

    async def put_acme_challenge(self, token: str, key_authorization: str) -> None:
        """Answer http://<any name>/.well-known/acme-challenge/<token> on this node."""
        body = AcmeChallenge(key_authorization=key_authorization)
        await self._call("PUT", f"/acme-challenges/{token}", body=body.model_dump(mode="json"))

    async def remove_acme_challenge(self, token: str) -> None:
        await self._call("DELETE", f"/acme-challenges/{token}")

    async def upload_blob(self, path: Path) -> BlobInfo:
        """A file kept on the node for a later command's stdin (`run_in_container`)."""
        return BlobInfo.model_validate(await self._call("POST", "/blobs", upload=path))

    async def run_in_container(self, name: str, request: ExecRequest, seconds: float = 3600
                               ) -> ExecResult:
        """Run a command in a managed container; its stdout is kept as a blob."""
        answer = await self._call("POST", f"/containers/{name}/execs",
                                  body=request.model_dump(mode="json"), seconds=seconds)
        return ExecResult.model_validate(answer)

    async def read_blob(self, blob_id: str) -> AsyncIterator[bytes]:
        response = await self._open("GET", f"/blobs/{blob_id}", seconds=3600)
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    async def delete_blob(self, blob_id: str) -> None:
        await self._call("DELETE", f"/blobs/{blob_id}")
