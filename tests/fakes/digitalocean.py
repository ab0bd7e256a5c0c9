"""A local DigitalOcean API (droplets, actions, snapshots, images, tags, sizes, regions, SSH
keys) for the official `pydo` client, honest to DigitalOcean's published OpenAPI document
(shared/specs/digitalocean/): every request and answer is checked with openapi-core; a refused
request gets a 400 in the document's error shape, a refused answer is kept in `violations` (a
bug of the fake). State lives in a JSON file when one is given.

Like the real API it is asynchronous: a droplet is "new" when created and turns "active" with
a public IPv4 address once `on_boot(droplet, user_data) -> ip` returns (run in a thread; by
default 203.0.113.N at once); an action is "in-progress" when posted and done on a later
`GET /v2/actions/{id}` (`action_polls` answers in progress first). Canned errors the document
allows (429 with ratelimit-* headers, 500) answer the next requests (`fail_next`), and
`error_next_action` makes the next action end "errored".

Where the document cannot be followed to the letter: it answers actions with a whole region
object (`region: null` in real life is refused), so the fake always names one.

With `hosts` (tests/fakes/droplet_hosts.DropletHosts) each droplet boots as a host of a
namespace cluster running its user-data; power_off and snapshot actions stay in progress until
the host is stopped / copied, and a deleted droplet's host is removed (in the background).

Run alone: `python -m tests.fakes.digitalocean --port N --state FILE` (token
`fake-digitalocean-token` unless `--token`); the state file also lists the violations. With
`--hosts-bridge BR --hosts-subnet CIDR --hosts-registry HOST:PORT --hosts-root DIR
[--hosts-first N] [--hosts-prefix P]` droplets boot as hosts on that existing bridge; they are
all removed when the process ends (SIGTERM/SIGINT)."""

from __future__ import annotations

import argparse
import copy
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Protocol

import yaml  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from tests.fakes import digitalocean_resources as rs
from tests.fakes.droplet_hosts import DropletHosts
from tests.fakes.served import Served
from tests.fakes.spec import SPECS, SpecCheck

SPEC_FILE = "digitalocean/DigitalOcean-public.v2.bundled.yaml"
TOKEN = "fake-digitalocean-token"
Json = dict[str, Any]
BootHook = Callable[[Json, str], str]
RATE_LIMIT = 5000


class Machines(Protocol):
    """What stands behind the droplets (tests/fakes/droplet_hosts.DropletHosts)."""

    def boot(self, droplet: Json, user_data: str) -> str: ...
    def power_off(self, droplet_id: int) -> None: ...
    def power_on(self, droplet_id: int) -> None: ...
    def snapshot(self, droplet_id: int, image_id: int | str) -> None: ...
    def destroy(self, droplet_id: int) -> None: ...


class Background:
    """Work the API answers before it is done (an action, a destroy), one thread each."""

    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}
        self.failures: dict[str, str] = {}

    def start(self, key: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # reported through the action, like the real API
                self.failures[key] = repr(exc)
        self._threads[key] = threading.Thread(target=run, daemon=True)
        self._threads[key].start()

    def running(self, key: str) -> bool:
        thread = self._threads.get(key)
        return thread is not None and thread.is_alive()

    def join(self) -> None:
        for thread in list(self._threads.values()):
            thread.join()


@dataclass(frozen=True)
class CannedError:
    """An answer the document allows, given instead of the real one to the next request
    (whose method and path start with `method` / `path`, when given)."""

    status: int
    reset_in: int = 0  # seconds until ratelimit-reset, for a 429
    method: str = ""
    path: str = ""


@cache
def _document() -> Json:
    path = SPECS / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"DigitalOcean's official OpenAPI document {path} is missing; an honest fake "
            "cannot run without it (see shared/specs/README.md)")
    with path.open() as stream:
        document: Json = yaml.load(stream, Loader=yaml.CSafeLoader)
    return document


@cache
def _shared_check() -> SpecCheck:
    return SpecCheck(_document(), _document())


def digitalocean_check() -> SpecCheck:
    """A checker with its own violations (the document is read once per process)."""
    check = copy.copy(_shared_check())
    check.violations = []
    return check




Handler = Callable[[Any, Any, dict[str, str]], Json | None]
_IDS = {"{droplet}": r"(?P<droplet_id>[0-9]{1,18})", "{action}": r"(?P<action_id>[0-9]{1,18})",
        "{snapshot}": r"(?P<snapshot_id>[0-9]{1,18})"}


def _pattern(path: str) -> re.Pattern[str]:
    for placeholder, group in _IDS.items():
        path = path.replace(placeholder, group)
    return re.compile(path)


ROUTES: list[tuple[str, re.Pattern[str], str, int]] = [
    (method, _pattern(path), name, status)
    for method, path, name, status in (
        ("GET", "/v2/regions", "regions", 200),
        ("GET", "/v2/sizes", "sizes", 200),
        ("GET", "/v2/account/keys", "keys", 200),
        ("GET", "/v2/images", "images", 200),
        ("GET", "/v2/tags", "list_tags", 200),
        ("POST", "/v2/tags", "create_tag", 201),
        ("GET", "/v2/droplets", "list_droplets", 200),
        ("POST", "/v2/droplets", "create_droplets", 202),
        ("DELETE", "/v2/droplets", "delete_by_tag", 204),
        ("GET", "/v2/droplets/{droplet}", "get_droplet", 200),
        ("DELETE", "/v2/droplets/{droplet}", "delete_droplet", 204),
        ("POST", "/v2/droplets/{droplet}/actions", "post_action", 201),
        ("GET", "/v2/actions/{action}", "get_action", 200),
        ("GET", "/v2/snapshots", "list_snapshots", 200),
        ("GET", "/v2/snapshots/{snapshot}", "get_snapshot", 200),
        ("DELETE", "/v2/snapshots/{snapshot}", "delete_snapshot", 204))]


def _headers(reset_in: int = 0, remaining: int = RATE_LIMIT - 1) -> dict[str, str]:
    return {"ratelimit-limit": str(RATE_LIMIT), "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(int(time.time()) + reset_in)}


def _error(status: int, error_id: str, message: str, reset_in: int = 0) -> JSONResponse:
    remaining = 0 if status == 429 else RATE_LIMIT - 1
    return JSONResponse({"id": error_id, "message": message}, status_code=status,
                        headers=_headers(reset_in, remaining))


def _canned(error: CannedError) -> JSONResponse:
    if error.status == 429:
        return _error(429, "too_many_requests", "API Rate limit exceeded.", error.reset_in)
    return _error(error.status, "server_error", "Unexpected server-side error")


class DigitalOceanApp:
    """The ASGI app: route, check the caller and the request, act, check the answer."""

    def __init__(self, fake: FakeDigitalOcean) -> None:
        self.fake, self.check = fake, digitalocean_check()
        self.check.violations = fake.state.violations
        self.handlers = rs.Handlers(fake)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        self.fake.requests.append(f"{request.method} {request.url.path}?{request.url.query}")
        spec_request = self.check.request(request, body)
        response = self._answer(request, body, spec_request)
        self.check.check_response(spec_request, response)
        self.fake.state.save()
        await response(scope, receive, send)

    def _answer(self, request: Request, body: bytes, spec_request: Any) -> Response:
        route = self._route(request.method, request.url.path)
        if route is None:
            return _error(404, "not_found", f"No route for {request.method} "
                                            f"{request.url.path}")
        handler, status, ids = route
        if request.headers.get("authorization") != f"Bearer {self.fake.token}":
            return _error(401, "unauthorized", "Unable to authenticate you")
        canned = self.fake.take_canned(request.method, request.url.path)
        if canned is not None:
            return _canned(canned)
        errors = self.check.request_errors(spec_request)
        if errors:
            return _error(400, "bad_request", "; ".join(errors))
        return self._act(handler, status, request, body, ids)

    def _act(self, handler: Handler, status: int, request: Request, body: bytes,
             ids: dict[str, str]) -> Response:
        with self.fake.state.lock:  # a boot thread may change a droplet meanwhile
            try:
                answer = handler(request.query_params, json.loads(body or b"{}"), ids)
            except rs.ApiError as exc:
                return _error(exc.status, exc.error_id, exc.message)
            if answer is None:
                return Response(status_code=status, headers=_headers())
            return JSONResponse(answer, status_code=status, headers=_headers())

    def _route(self, method: str, path: str) -> tuple[Handler, int, dict[str, str]] | None:
        for verb, pattern, name, status in ROUTES:
            found = pattern.fullmatch(path)
            if found and verb == method:
                return getattr(self.handlers, name), status, found.groupdict()
        return None


def assign_documentation_ip(droplet: Json, user_data: str) -> str:
    """The default boot: an address of TEST-NET-3 (203.0.113.0/24), nothing run."""
    return f"203.0.113.{droplet['id'] % 250 + 2}"


class FakeDigitalOcean:
    """The fake served by uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, state_file: Path | None, token: str = TOKEN, port: int = 0,
                 on_boot: BootHook = assign_documentation_ip, action_polls: int = 1,
                 hosts: Machines | None = None) -> None:
        self.state = rs.DigitalOceanState(state_file)
        self.token, self.on_boot, self.action_polls = token, on_boot, action_polls
        self.hosts, self.background = hosts, Background()
        if hosts is not None:
            self.on_boot = hosts.boot
        self.boot_failures: list[str] = []
        self.requests: list[str] = []  # "METHOD /path?query", in the order they came
        self._canned: list[CannedError] = []
        self._errored_actions = 0
        self.served = Served(DigitalOceanApp(self), port)
        self.port = self.served.port
        self.base_url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeDigitalOcean:
        self.served.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.stop()
        self.background.join()

    @property
    def violations(self) -> list[str]:
        return self.state.violations

    def fail_next(self, *errors: CannedError) -> None:
        """Answer the next matching requests with these errors, in order."""
        with self.state.lock:
            self._canned += errors

    def error_next_action(self) -> None:
        with self.state.lock:
            self._errored_actions += 1

    def take_canned(self, method: str, path: str) -> CannedError | None:
        with self.state.lock:
            for error in self._canned:
                if method.startswith(error.method) and path.startswith(error.path):
                    self._canned.remove(error)
                    return error
            return None

    def take_errored_action(self) -> bool:
        with self.state.lock:
            errored, self._errored_actions = self._errored_actions > 0, max(
                0, self._errored_actions - 1)
            return errored

    def boot(self, droplet: Json, user_data: str) -> None:
        """Run the boot hook; the droplet turns active with its address (if still there)."""
        try:
            ip = self.on_boot(droplet, user_data)
        except Exception as exc:  # a failed boot leaves the droplet "new"
            self.boot_failures.append(f"droplet {droplet['id']}: {exc!r}")
            return
        with self.state.lock:
            found = self.state.droplets.get(str(droplet["id"]))
            if found is not None:
                found.update(status="active", networks={"v4": [rs.public_v4(ip)], "v6": []})
        self.state.save()

    def destroyed(self, droplet_id: int) -> None:
        if self.hosts is not None:
            self.background.start(f"destroy {droplet_id}", partial(self.hosts.destroy,
                                                                   droplet_id))

    def add_droplet(self, name: str, tags: list[str], region: str = "nyc3") -> Json:
        """A droplet made behind the client's back, e.g. by its owner in the control panel:
        active at once, with an address."""
        body = {"size": rs.SIZES[0][0], "region": region, "tags": tags}
        image = self.state.image(rs.STOCK_IMAGES[0][1])
        droplet = rs.new_droplet(self.state.new_id(), name, body, image)
        droplet.update(status="active", networks={
            "v4": [rs.public_v4(assign_documentation_ip(droplet, ""))], "v6": []})
        with self.state.lock:
            self.state.droplets[str(droplet["id"])] = droplet
        self.state.save()
        return droplet

    def add_key(self, name: str, public_key: str) -> Json:
        key = {"id": self.state.new_id(), "name": name, "public_key": public_key,
               "fingerprint": "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"}
        with self.state.lock:
            self.state.keys.append(key)
        self.state.save()
        return key


def serve_checked(state_file: Path | None, **options: Any) -> Iterator[FakeDigitalOcean]:
    """The fake for one test; afterwards none of its answers may have broken the document."""
    with FakeDigitalOcean(state_file, **options) as fake:
        yield fake
    assert fake.violations == [], f"answers outside DigitalOcean's API document: " \
                                  f"{fake.violations}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--hosts-bridge", help="boot droplets as hosts on this bridge")
    parser.add_argument("--hosts-subnet", help="the bridge's subnet (CIDR)")
    parser.add_argument("--hosts-registry", help="host:port of the cluster's registry")
    parser.add_argument("--hosts-root", type=Path, help="directory of the droplet hosts")
    parser.add_argument("--hosts-first", type=int, default=100, help="first address index")
    parser.add_argument("--hosts-prefix", default="dq", help="namespace/veth name prefix")
    args = parser.parse_args()
    hosts = _hosts(args)
    fake = FakeDigitalOcean(args.state, args.token, args.port, hosts=hosts)
    print(f"fake DigitalOcean API at {fake.base_url}", flush=True)
    # uvicorn re-raises the signal that stopped it once it is done: end by SystemExit
    # then, so the droplet hosts are removed below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        fake.served.run_here()
    finally:
        fake.background.join()
        if hosts is not None:
            hosts.close()


def _hosts(args: argparse.Namespace) -> DropletHosts | None:
    if args.hosts_bridge is None:
        return None
    return DropletHosts(args.hosts_bridge, args.hosts_subnet, args.hosts_registry,
                        args.hosts_root, args.hosts_first, args.hosts_prefix)


if __name__ == "__main__":
    main()
