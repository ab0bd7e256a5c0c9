"""The Docker Engine API calls the agent makes, by the names and keyword arguments its
`EngineCall`s carry (those of docker-py's APIClient, which the agent used before: 5 MB of
imports for 29 calls). Blocking: `DockerRuntime` runs them in threads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from dockyard.agent.engine_http import (
    Attached,
    EngineError,
    EngineHttp,
    Request,
    Response,
    Streamed,
    path,
    query,
)
from dockyard.agent.engine_http import filters as _filters

NO_AUTH = "e30="  # base64 of {}: the Engine asks every pull and push for credentials
_CHUNK = 64 * 1024


class EngineClient:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.http = EngineHttp(base_url, timeout)

    def _call(self, method: str, target: str, **options: Any) -> Response:
        answer = self.http.send(Request(method, target, **options))
        assert isinstance(answer, Response)  # only an exec's attach asks for the socket
        return answer

    def _json(self, method: str, target: str, **options: Any) -> Any:
        return self._call(method, target, **options).json()

    # Containers

    def create_container_from_config(self, config: dict[str, Any], name: str) -> Any:
        return self._json("POST", f"/containers/create{query({'name': name})}",
                          json_body=config)

    def start(self, container: str) -> None:
        self._call("POST", path("/containers/{}/start", container)).read()

    def stop(self, container: str, timeout: int) -> None:
        target = path("/containers/{}/stop", container) + query({"t": timeout})
        self._call("POST", target, timeout=self.http.timeout + timeout).read()

    def kill(self, container: str) -> None:
        self._call("POST", path("/containers/{}/kill", container)).read()

    def remove_container(self, container: str, force: bool, v: bool) -> None:
        target = path("/containers/{}", container) + query({"force": force, "v": v})
        self._call("DELETE", target).read()

    def inspect_container(self, container: str) -> Any:
        return self._json("GET", path("/containers/{}/json", container))

    def containers(self, all: bool, filters: dict[str, Any] | None = None) -> Any:
        return self._json("GET", "/containers/json" + query({"all": all,
                                                             "filters": _filters(filters)}))

    def wait(self, container: str) -> Any:
        return self._json("POST", path("/containers/{}/wait", container), timeout=0)

    def stats(self, container: str, stream: bool, one_shot: bool) -> Any:
        target = path("/containers/{}/stats", container)
        return self._json("GET", target + query({"stream": stream, "one-shot": one_shot}))

    def logs(self, container: str, *, stdout: bool, stderr: bool, stream: bool = False,
             follow: bool = False, tail: int | str = "all", timestamps: bool = False,
             since: float | None = None) -> Streamed[bytes] | bytes:
        """What the container wrote (Dockyard's containers have no TTY: the answer is
        multiplexed); each write as it comes when `stream`, else all of it."""
        params = {"stdout": stdout, "stderr": stderr, "follow": follow, "tail": tail,
                  "timestamps": timestamps, "since": since}
        answer = self._call("GET", path("/containers/{}/logs", container) + query(params),
                            timeout=0 if follow else None)
        payloads = answer.payloads()
        return payloads if stream else b"".join(payloads)

    def events(self, since: float | str, until: str, decode: bool,
               filters: dict[str, Any]) -> Streamed[Any]:
        params = {"since": since, "until": until, "filters": _filters(filters)}
        return self._call("GET", "/events" + query(params)).json_stream()

    # Images

    def build(self, fileobj: IO[bytes], custom_context: bool, tag: str, dockerfile: str,
              rm: bool, forcerm: bool, decode: bool, buildargs: dict[str, str] | None,
              container_limits: dict[str, int | str] | None) -> Streamed[Any]:
        params = {"t": tag, "dockerfile": dockerfile, "rm": rm, "forcerm": forcerm,
                  "buildargs": json.dumps(buildargs) if buildargs else None,
                  **(container_limits or {})}
        answer = self._call("POST", "/build" + query(params), body=_read(fileobj),
                            headers={"Content-Type": "application/x-tar"})
        return answer.json_stream()

    def import_image_from_stream(self, stream: Iterable[bytes], repository: str, tag: str,
                                 changes: list[str] | None) -> str:
        params = {"fromSrc": "-", "repo": repository, "tag": tag, "changes": changes}
        answer = self._call("POST", "/images/create" + query(params), body=stream,
                            headers={"Content-Type": "application/x-tar"})
        return answer.read().decode(errors="replace")

    def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> Streamed[Any]:
        target = "/images/create" + query({"fromImage": repository, "tag": tag})
        return self._call("POST", target, headers={"X-Registry-Auth": NO_AUTH}).json_stream()

    def push(self, repository: str, tag: str, stream: bool, decode: bool) -> Streamed[Any]:
        target = path("/images/{}/push", repository) + query({"tag": tag})
        return self._call("POST", target, headers={"X-Registry-Auth": NO_AUTH}).json_stream()

    def tag(self, image: str, repository: str, tag: str) -> bool:
        target = path("/images/{}/tag", image) + query({"repo": repository, "tag": tag})
        self._call("POST", target).read()
        return True

    def images(self, all: bool) -> Any:
        return self._json("GET", "/images/json" + query({"all": all}))

    def remove_image(self, image: str, force: bool, noprune: bool) -> Any:
        target = path("/images/{}", image) + query({"force": force, "noprune": noprune})
        return self._json("DELETE", target)

    def prune_images(self, filters: dict[str, Any]) -> Any:
        return self._json("POST", "/images/prune" + query({"filters": _filters(filters)}))

    def prune_builds(self, filters: dict[str, Any], keep_storage: int) -> Any:
        params = {"filters": _filters(filters), "keep-storage": keep_storage}
        return self._json("POST", "/build/prune" + query(params))

    # Volumes, the engine

    def create_volume(self, name: str, driver: str, labels: dict[str, str]) -> Any:
        return self._json("POST", "/volumes/create",
                          json_body={"Name": name, "Driver": driver, "Labels": labels})

    def volumes(self, filters: dict[str, Any]) -> Any:
        return self._json("GET", "/volumes" + query({"filters": _filters(filters)}))

    def remove_volume(self, name: str, force: bool) -> None:
        self._call("DELETE", path("/volumes/{}", name) + query({"force": force})).read()

    def df(self) -> Any:
        return self._json("GET", "/system/df")

    def ping(self) -> None:
        self._call("GET", "/_ping").read()

    def version(self) -> Any:
        return self._json("GET", "/version")

    def info(self) -> Any:
        return self._json("GET", "/info")

    # Commands in a running container

    def exec_create(self, container: str, cmd: list[str], environment: dict[str, str],
                    stdin: bool, stdout: bool, stderr: bool) -> Any:
        body = {"AttachStdin": stdin, "AttachStdout": stdout, "AttachStderr": stderr,
                "Tty": False, "Cmd": cmd, "Env": [f"{k}={v}" for k, v in environment.items()]}
        return self._json("POST", path("/containers/{}/exec", container), json_body=body)

    def exec_start(self, exec_id: str, socket: bool) -> Attached:
        answer = self.http.send(Request("POST", path("/exec/{}/start", exec_id),
                                        json_body={"Detach": False, "Tty": False},
                                        timeout=0, upgrade=True))
        if not isinstance(answer, Attached):
            answer.close()
            raise EngineError("the Docker Engine did not hand the exec's connection over")
        return answer

    def exec_inspect(self, exec_id: str) -> Any:
        return self._json("GET", path("/exec/{}/json", exec_id))

    def close(self) -> None:
        """Nothing is kept open between calls."""


def _read(fileobj: IO[bytes]) -> Iterator[bytes]:
    while chunk := fileobj.read(_CHUNK):
        yield chunk
