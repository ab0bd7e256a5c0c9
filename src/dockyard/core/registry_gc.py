"""The registry keeps only the release images that can still be rolled back to: the
manifests of other `deploy_*` tags are deleted through the registry's API, then its garbage
collection (`docker-registry garbage-collect`) frees their blobs. Both run holding the
registry's lock exclusively (host_lock.REGISTRY_LOCK, pushes hold it shared), as a push that
overlaps the collection can lose blobs it uploaded."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import httpx
from anyio import to_thread

from dockyard.agent import process
from dockyard.agent.commands import DEPLOY_TAG_PREFIX

log = logging.getLogger("dockyard.registry_gc")
PROGRAM = "docker-registry"
CATALOG_PAGE = 1000  # the most a registry answers by default
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))


@dataclass(frozen=True)
class Tagged:
    name: str  # the repository inside the registry, without its address
    tag: str


def gc_argv(config: str) -> list[str]:
    return [PROGRAM, "garbage-collect", config]


class Registry:
    def __init__(self, address: str, timeout: float = 30) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://{address}/v2", timeout=timeout)

    async def repositories(self) -> list[str]:
        names: list[str] = []
        while True:
            params = {"n": str(CATALOG_PAGE), **({"last": names[-1]} if names else {})}
            page = (await self._get("/_catalog", params)).get("repositories") or []
            names += page
            if len(page) < CATALOG_PAGE:
                return names

    async def release_tags(self) -> list[Tagged]:
        found = []
        for name in await self.repositories():
            tags = (await self._get(f"/{name}/tags/list", None)).get("tags") or []
            found += [Tagged(name, t) for t in tags if t.startswith(DEPLOY_TAG_PREFIX)]
        return found

    async def digest(self, image: Tagged) -> str:
        answer = await self.http.head(f"/{image.name}/manifests/{image.tag}",
                                      headers={"Accept": MANIFEST_TYPES})
        answer.raise_for_status()
        return answer.headers["Docker-Content-Digest"]

    async def delete(self, name: str, digest: str) -> None:
        answer = await self.http.delete(f"/{name}/manifests/{digest}")
        if answer.status_code != 404:
            answer.raise_for_status()

    async def _get(self, path: str, params: dict[str, str] | None) -> dict[str, list[str]]:
        answer = await self.http.get(path, params=params)
        answer.raise_for_status()
        found: dict[str, list[str]] = answer.json()
        return found

    async def aclose(self) -> None:
        await self.http.aclose()


async def drop_unkept(registry: Registry, kept: Collection[Tagged]) -> list[Tagged]:
    """Delete the manifest of every release tag not in `kept`, unless a kept tag shares it
    (identical rebuilds share one manifest); the tags dropped."""
    tags = await registry.release_tags()
    digests = {image: await registry.digest(image) for image in tags}
    keep = {(image.name, digests[image]) for image in tags if image in kept}
    doomed = [image for image in tags if (image.name, digests[image]) not in keep]
    for name, digest in sorted({(image.name, digests[image]) for image in doomed}):
        await registry.delete(name, digest)
    return doomed


async def collect_garbage(config: str, lock: int | None = None) -> process.Result:
    """Free the blobs no manifest refers to; the caller holds the registry's lock, on the
    file descriptor `lock`, which the collection inherits: should the caller die meanwhile,
    no push starts before the collection ends."""
    fds = () if lock is None else (lock,)
    result = await to_thread.run_sync(
        lambda: process.run(gc_argv(config), timeout=3600, pass_fds=fds))
    if not result.ok:
        log.warning("registry garbage collection failed: %s", result.output[-2000:])
    return result
