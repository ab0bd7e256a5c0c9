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

Run alone: `python -m tests.fakes.digitalocean --port N --state FILE` (token
`fake-digitalocean-token` unless `--token`); the state file also lists the violations."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import uvicorn
import yaml  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from tests.fakes.spec import SPECS, SpecCheck

SPEC_FILE = "digitalocean/DigitalOcean-public.v2.bundled.yaml"
TOKEN = "fake-digitalocean-token"
Json = dict[str, Any]
BootHook = Callable[[Json, str], str]
RATE_LIMIT = 5000


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


REGIONS = [("nyc3", "New York 3"), ("fra1", "Frankfurt 1"), ("ams3", "Amsterdam 3")]
SIZES = [("s-1vcpu-1gb", 1024, 1, 25, 6.0), ("s-2vcpu-2gb", 2048, 2, 60, 18.0),
         ("s-4vcpu-8gb", 8192, 4, 160, 48.0)]
STOCK_IMAGES = [(171000001, "ubuntu-24-04-x64", "24.04 (LTS) x64", "Ubuntu"),
                (171000002, "debian-12-x64", "12 x64", "Debian")]


def _region(slug: str) -> Json:
    name = dict(REGIONS).get(slug, slug)
    return {"slug": slug, "name": name, "available": True, "features": ["metadata"],
            "sizes": [s[0] for s in SIZES]}


def _size(slug: str, memory: int, vcpus: int, disk: int, price: float) -> Json:
    return {"slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": 1.0,
            "price_monthly": price, "price_hourly": round(price / 730, 5),
            "regions": [r for r, _ in REGIONS], "available": True,
            "description": "Basic"}


def _stock_image(image_id: int, slug: str, name: str, distribution: str) -> Json:
    return {"id": image_id, "name": name, "slug": slug, "type": "base", "public": True,
            "distribution": distribution, "regions": [r for r, _ in REGIONS],
            "created_at": "2024-04-25T00:00:00Z", "min_disk_size": 7,
            "size_gigabytes": 2.4, "tags": [], "status": "available"}


class DigitalOceanState:
    """Droplets, actions, snapshots, tags and keys, kept in a file (when given)."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.lock = path, threading.RLock()
        data: Json = json.loads(path.read_text()) if path and path.exists() else {}
        self.droplets: dict[str, Json] = data.get("droplets", {})
        self.actions: dict[str, Json] = data.get("actions", {})
        self.snapshots: dict[str, Json] = data.get("snapshots", {})
        self.tags: list[str] = data.get("tags", [])
        self.keys: list[Json] = data.get("keys", [])
        self.violations: list[str] = data.get("violations", [])
        self.next_id: int = data.get("next_id", 1000)
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {"droplets": self.droplets, "actions": self.actions, "next_id": self.next_id,
                    "snapshots": self.snapshots, "tags": self.tags, "keys": self.keys,
                    "violations": self.violations}
            scratch = self.path.with_name(self.path.name + ".tmp")
            scratch.write_text(json.dumps(data, indent=1))
            os.replace(scratch, self.path)

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    def droplet(self, droplet_id: str) -> Json:
        found = self.droplets.get(droplet_id)
        if found is None:
            raise ApiError(404, "not_found", "The resource you requested could not be found.")
        return found

    def image(self, ref: str | int) -> Json:
        images = [_stock_image(*i) for i in STOCK_IMAGES] + [
            _snapshot_image(s) for s in self.snapshots.values()]
        for image in images:
            if ref in (image["id"], image["slug"]) or str(ref) == str(image["id"]):
                return image
        raise ApiError(422, "unprocessable_entity", f"You specified an invalid image: {ref}.")


def _snapshot_image(snapshot: Json) -> Json:
    return {"id": int(snapshot["id"]), "name": snapshot["name"], "slug": None,
            "type": "snapshot", "public": False, "distribution": "Ubuntu",
            "regions": snapshot["regions"], "created_at": snapshot["created_at"],
            "min_disk_size": snapshot["min_disk_size"],
            "size_gigabytes": snapshot["size_gigabytes"], "tags": [], "status": "available"}


def _page(key: str, items: list[Json], query: Any, base: str) -> Json:
    page, per_page = int(query.get("page", 1)), int(query.get("per_page", 20))
    last = max(1, -(-len(items) // per_page))
    pages: dict[str, str] = {}
    if page < last:
        pages = {"next": f"{base}?page={page + 1}&per_page={per_page}",
                 "last": f"{base}?page={last}&per_page={per_page}"}
    elif page > 1:
        pages = {"first": f"{base}?page=1&per_page={per_page}",
                 "prev": f"{base}?page={page - 1}&per_page={per_page}"}
    shown = items[(page - 1) * per_page: page * per_page]
    return {key: shown, "links": {"pages": pages}, "meta": {"total": len(items)}}


def _droplet(droplet_id: int, name: str, body: Json, image: Json) -> Json:
    size = next((_size(*s) for s in SIZES if s[0] == body["size"]), None)
    if size is None:
        raise ApiError(422, "unprocessable_entity", f"You specified an invalid size: "
                                                    f"{body['size']}.")
    return {"id": droplet_id, "name": name, "memory": size["memory"], "vcpus": size["vcpus"],
            "disk": size["disk"], "locked": False, "status": "new", "kernel": None,
            "created_at": _now(), "features": [], "backup_ids": [],
            "next_backup_window": None, "snapshot_ids": [], "image": image,
            "volume_ids": [], "size": size, "size_slug": size["slug"],
            "networks": {"v4": [], "v6": []}, "region": _region(body.get("region", "nyc3")),
            "tags": list(body.get("tags") or []), "vpc_uuid": body.get("vpc_uuid", "")}


def _public_v4(ip: str) -> Json:
    return {"ip_address": ip, "netmask": "255.255.255.0", "gateway": "203.0.113.1",
            "type": "public"}


def _action(action_id: int, kind: str, droplet: Json) -> Json:
    return {"id": action_id, "status": "in-progress", "type": kind, "started_at": _now(),
            "completed_at": None, "resource_id": droplet["id"], "resource_type": "droplet",
            "region": droplet["region"], "region_slug": droplet["region"]["slug"]}


ACTIONS_ON_DROPLETS = {"power_off", "power_on", "snapshot", "shutdown", "reboot"}


class Handlers:
    """What each operation does to the state; answers are (status, JSON) pairs."""

    def __init__(self, fake: FakeDigitalOcean) -> None:
        self.fake, self.state = fake, fake.state

    def regions(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return _page("regions", [_region(r) for r, _ in REGIONS], query, "/v2/regions")

    def sizes(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return _page("sizes", [_size(*s) for s in SIZES], query, "/v2/sizes")

    def keys(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return _page("ssh_keys", self.state.keys, query, "/v2/account/keys")

    def images(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        snapshots = [_snapshot_image(s) for s in self.state.snapshots.values()
                     if s["resource_type"] == "droplet"]
        stock = [] if query.get("private") == "true" else [_stock_image(*i)
                                                           for i in STOCK_IMAGES]
        return _page("images", stock + snapshots, query, "/v2/images")

    def list_tags(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return _page("tags", [self._tag(t) for t in self.state.tags], query, "/v2/tags")

    def create_tag(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        with self.state.lock:
            if body["name"] not in self.state.tags:
                self.state.tags.append(body["name"])
        return {"tag": self._tag(body["name"])}

    def list_droplets(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        tag = query.get("tag_name")
        found = [d for d in self.state.droplets.values() if tag is None or tag in d["tags"]]
        return _page("droplets", found, query, "/v2/droplets")

    def get_droplet(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return {"droplet": self.state.droplet(ids["droplet_id"])}

    def create_droplets(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        image = self.state.image(body["image"])
        made = [_droplet(self.state.new_id(), name, body, image)
                for name in body.get("names", [body.get("name")])]
        answered = copy.deepcopy(made)  # as created: a boot may finish before the answer
        for droplet in made:
            self._register(droplet, body.get("user_data", ""))
        links = {"actions": [{"id": self.state.new_id(), "rel": "create", "href": ""}]}
        if "names" in body:
            return {"droplets": answered, "links": links}
        return {"droplet": answered[0], "links": links}

    def delete_droplet(self, query: Any, body: Any, ids: dict[str, str]) -> None:
        with self.state.lock:
            self.state.droplet(ids["droplet_id"])
            del self.state.droplets[ids["droplet_id"]]

    def delete_by_tag(self, query: Any, body: Any, ids: dict[str, str]) -> None:
        with self.state.lock:
            for key, droplet in list(self.state.droplets.items()):
                if query["tag_name"] in droplet["tags"]:
                    del self.state.droplets[key]

    def post_action(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        droplet = self.state.droplet(ids["droplet_id"])
        if body["type"] not in ACTIONS_ON_DROPLETS:
            raise ApiError(422, "unprocessable_entity", f"the fake does not do {body['type']}")
        action = _action(self.state.new_id(), body["type"], droplet)
        with self.state.lock:
            self.state.actions[str(action["id"])] = {
                "action": action, "polls": 0, "name": body.get("name") or droplet["name"],
                "errors": self.fake.take_errored_action()}
        return {"action": action}

    def get_action(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        with self.state.lock:
            record = self.state.actions.get(ids["action_id"])
            if record is None:
                raise ApiError(404, "not_found", "The resource you requested could not be "
                                                 "found.")
            record["polls"] += 1
            if record["action"]["status"] == "in-progress" and (
                    record["polls"] > self.fake.action_polls):
                self._finish(record)
            return {"action": record["action"]}

    def list_snapshots(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        kind = query.get("resource_type")
        found = [s for s in self.state.snapshots.values()
                 if kind is None or s["resource_type"] == kind]
        return _page("snapshots", found, query, "/v2/snapshots")

    def get_snapshot(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return {"snapshot": self._snapshot(ids["snapshot_id"])}

    def delete_snapshot(self, query: Any, body: Any, ids: dict[str, str]) -> None:
        with self.state.lock:
            del self.state.snapshots[self._snapshot(ids["snapshot_id"])["id"]]

    def _snapshot(self, snapshot_id: str) -> Json:
        found = self.state.snapshots.get(snapshot_id)
        if found is None:
            raise ApiError(404, "not_found", "The resource you requested could not be found.")
        return found

    def _tag(self, name: str) -> Json:
        count = sum(name in d["tags"] for d in self.state.droplets.values())
        return {"name": name, "resources": {"count": count,
                                            "droplets": {"count": count}}}

    def _register(self, droplet: Json, user_data: str) -> None:
        with self.state.lock:
            self.state.droplets[str(droplet["id"])] = droplet
            self.state.tags += [t for t in droplet["tags"] if t not in self.state.tags]
        booting = threading.Thread(target=self.fake.boot, args=(copy.deepcopy(droplet),
                                                                 user_data), daemon=True)
        booting.start()

    def _finish(self, record: Json) -> None:
        action = record["action"]
        action["completed_at"] = _now()
        if record["errors"]:
            action["status"] = "errored"
            return
        action["status"] = "completed"
        droplet = self.state.droplets.get(str(action["resource_id"]))
        if droplet is None:
            return
        if action["type"] in ("power_off", "shutdown"):
            droplet["status"] = "off"
        elif action["type"] in ("power_on", "reboot"):
            droplet["status"] = "active"
        elif action["type"] == "snapshot":
            self._take_snapshot(droplet, record["name"])

    def _take_snapshot(self, droplet: Json, name: str) -> None:
        snapshot_id = self.state.new_id()
        droplet["snapshot_ids"].append(snapshot_id)
        self.state.snapshots[str(snapshot_id)] = {
            "id": str(snapshot_id), "name": name, "created_at": _now(),
            "regions": [droplet["region"]["slug"]], "min_disk_size": droplet["disk"],
            "size_gigabytes": 2.5, "resource_id": str(droplet["id"]),
            "resource_type": "droplet", "tags": []}


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
        self.handlers = Handlers(fake)

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
        try:
            answer = handler(request.query_params, json.loads(body or b"{}"), ids)
        except ApiError as exc:
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
                 on_boot: BootHook = assign_documentation_ip, action_polls: int = 1) -> None:
        self.state = DigitalOceanState(state_file)
        self.token, self.on_boot, self.action_polls = token, on_boot, action_polls
        self.boot_failures: list[str] = []
        self.requests: list[str] = []  # "METHOD /path?query", in the order they came
        self._canned: list[CannedError] = []
        self._errored_actions = 0
        self._socket = socket.create_server(("127.0.0.1", port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(DigitalOceanApp(self), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> FakeDigitalOcean:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

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
                found.update(status="active", networks={"v4": [_public_v4(ip)], "v6": []})
        self.state.save()

    def add_droplet(self, name: str, tags: list[str], region: str = "nyc3") -> Json:
        """A droplet made behind the client's back, e.g. by its owner in the control panel:
        active at once, with an address."""
        body = {"size": SIZES[0][0], "region": region, "tags": tags}
        droplet = _droplet(self.state.new_id(), name, body, self.state.image(STOCK_IMAGES[0][1]))
        droplet.update(status="active", networks={
            "v4": [_public_v4(assign_documentation_ip(droplet, ""))], "v6": []})
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
    args = parser.parse_args()
    fake = FakeDigitalOcean(args.state, args.token, args.port)
    print(f"fake DigitalOcean API at {fake.base_url}", flush=True)
    fake._server.run(sockets=[fake._socket])


if __name__ == "__main__":
    main()
