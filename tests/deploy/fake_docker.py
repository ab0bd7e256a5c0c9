"""A Docker Engine stand-in behind the agent's runtime seam: images are names, and a running
"container" is a real HTTP server on the loopback port the agent chose for it, answering the
release it runs (its DOCKYARD_RELEASE). Calls can be held (the control plane dies there) or
made to fail, to drive the deploy engine down its hard branches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dockyard.agent.commands import EngineCall
from dockyard.agent.runtime import DockerRuntime, EngineError


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _App(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, answer: str) -> None:
        super().__init__(("127.0.0.1", port), _Answer)
        self.answer = answer.encode()
        # shutdown() waits for the loop to look again: every 0.5 s by default
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class Container:
    name: str
    config: dict[str, Any]
    state: str = "created"
    app: _App | None = None

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config["Env"])

    @property
    def host_port(self) -> int | None:
        """None for a container that publishes no port (a worker, a one-off run)."""
        bindings = self.config["HostConfig"].get("PortBindings") or {}
        return int(next(iter(bindings.values()))[0]["HostPort"]) if bindings else None

    def start(self, crash: bool) -> None:
        if crash:
            self.state = "exited"
            return
        if self.host_port is not None:
            self.app = _App(self.host_port, self.env.get("DOCKYARD_RELEASE", "?"))
        self.state = "running"

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()
            self.app = None
        self.state = "exited"

    def listed(self) -> dict[str, Any]:
        ports = [{"IP": "127.0.0.1", "PrivatePort": int(key.split("/")[0]),
                  "PublicPort": self.host_port, "Type": "tcp"}
                 for key in self.config["HostConfig"].get("PortBindings") or {}]
        return {"Id": f"id-{self.name}", "Names": [f"/{self.name}"], "Image": self.config["Image"],
                "State": self.state, "Status": self.state, "Labels": self.config["Labels"],
                "Ports": ports if self.state == "running" else []}


@dataclass
class Hold:
    """The first call of `method` waits until `release` is set (never: until cancelled), then
    fails with `fail` if given. `reached` is set when the call arrives."""

    method: str
    fail: str | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    used: bool = False

    async def meet(self, method: str) -> None:
        if method != self.method or self.used:
            return
        self.used = True
        self.reached.set()
        await self.release.wait()
        if self.fail:
            raise EngineError(self.fail, 409)


@dataclass
class FakeDocker(DockerRuntime):
    containers: dict[str, Container] = field(default_factory=dict)
    images: set[str] = field(default_factory=set)
    crash: set[str] = field(default_factory=set)  # image tags whose containers exit at once
    hold: Hold | None = None
    calls: list[str] = field(default_factory=list)
    one_off_exit: int = 0  # what one-off runs (`dockyard run`, release commands) exit with
    one_offs: list[list[str]] = field(default_factory=list)  # their commands, in order
    one_off_hosts: list[list[str]] = field(default_factory=list)  # and their ExtraHosts
    root: str = "/nonexistent/fake-docker-root"  # its DockerRootDir
    layers: dict[str, Path] = field(default_factory=dict)  # files an image's removal deletes

    def __post_init__(self) -> None:
        super().__init__("unix:///nonexistent/fake-docker.sock")

    def _info(self) -> dict[str, Any]:
        return {"DockerRootDir": self.root}

    async def run(self, call: EngineCall) -> Any:
        self.calls.append(call.method)
        if self.hold is not None:
            await self.hold.meet(call.method)
        return getattr(self, f"_{call.method}")(**call.kwargs)

    async def run_all(self, calls: Iterable[EngineCall]) -> list[Any]:
        return [await self.run(call) for call in calls]

    async def stream(self, call: EngineCall) -> AsyncIterator[Any]:
        for item in await self.run(call):
            yield item

    def close(self) -> None:
        for container in self.containers.values():
            container.stop()

    def running(self) -> dict[str, str]:
        """Running containers by name, with the release each answers."""
        return {name: c.env.get("DOCKYARD_RELEASE", "") for name, c in self.containers.items()
                if c.state == "running"}

    def _get(self, name: str) -> Container:
        if name not in self.containers:
            raise EngineError(f"No such container: {name}", 404)
        return self.containers[name]

    # The docker.APIClient methods the agent calls, by name.

    def _version(self) -> dict[str, str]:
        return {"Version": "fake"}

    def _pull(self, repository: str, tag: str, **_: Any) -> list[dict[str, str]]:
        self.images.add(f"{repository}:{tag}")
        return [{"status": f"pulled {repository}:{tag}"}]

    def _build(self, tag: str, **_: Any) -> list[dict[str, str]]:
        self.images.add(tag)
        return [{"stream": f"Successfully tagged {tag}\n"}]

    def _push(self, repository: str, tag: str, **_: Any) -> list[dict[str, str]]:
        return [{"status": f"pushed {repository}:{tag}"}]

    def _tag(self, image: str, repository: str, tag: str) -> None:
        self.images.add(f"{repository}:{tag}")

    def _images(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Id": f"sha256:{i}", "RepoTags": [ref], "Created": i, "Size": 1}
                for i, ref in enumerate(sorted(self.images))]

    def _remove_image(self, image: str, **_: Any) -> None:
        self.images.discard(image)
        if (layer := self.layers.pop(image, None)) is not None:
            layer.unlink()

    def _prune_images(self, **_: Any) -> dict[str, Any]:
        return {"ImagesDeleted": None, "SpaceReclaimed": 0}

    def _prune_builds(self, **_: Any) -> dict[str, Any]:
        return {"SpaceReclaimed": 0}

    def _create_volume(self, **_: Any) -> None:
        return None

    def _create_container_from_config(self, config: dict[str, Any], name: str) -> None:
        if name in self.containers:
            raise EngineError(f"Conflict: the container name {name} is already in use", 409)
        self.containers[name] = Container(name, config)

    def _start(self, container: str) -> None:
        found = self._get(container)
        found.start(crash=found.config["Image"].rpartition(":")[2] in self.crash)

    def _containers(self, filters: dict[str, list[str]], **_: Any) -> list[dict[str, Any]]:
        wanted = dict(selector.split("=", 1) for selector in filters["label"])
        return [c.listed() for c in self.containers.values()
                if wanted.items() <= c.config["Labels"].items()]

    def _inspect_container(self, container: str) -> dict[str, Any]:
        return {"Name": f"/{container}", "State": {"Status": self._get(container).state}}

    def _stop(self, container: str, timeout: int) -> None:
        self._get(container).stop()

    def _remove_container(self, container: str, **_: Any) -> None:
        self._get(container).stop()
        del self.containers[container]

    def _wait(self, container: str) -> dict[str, int]:
        found = self._get(container)
        self.one_offs.append(found.config["Cmd"])
        self.one_off_hosts.append(sorted(found.config["HostConfig"].get("ExtraHosts") or []))
        found.state = "exited"
        return {"StatusCode": self.one_off_exit}

    def _kill(self, container: str) -> None:
        self._get(container).stop()

    def _logs(self, container: str, **_: Any) -> list[bytes]:
        if "dockyard.one-off" in self._get(container).config["Labels"]:
            return [f"ran {' '.join(self.containers[container].config['Cmd'])}\n".encode()]
        return [b"Traceback (most recent call last):\n", b"ImportError: no module named app\n"]
