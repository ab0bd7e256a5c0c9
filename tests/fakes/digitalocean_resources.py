"""The records of the fake DigitalOcean API (tests/fakes/digitalocean.py), its state and what
each operation does to it; answers in the shapes of DigitalOcean's published OpenAPI document."""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.digitalocean import FakeDigitalOcean

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


REGIONS = [("nyc3", "New York 3"), ("fra1", "Frankfurt 1"), ("ams3", "Amsterdam 3")]
SIZES = [("s-1vcpu-1gb", 1024, 1, 25, 6.0), ("s-2vcpu-2gb", 2048, 2, 60, 18.0),
         ("s-4vcpu-8gb", 8192, 4, 160, 48.0)]
STOCK_IMAGES = [(171000001, "ubuntu-24-04-x64", "24.04 (LTS) x64", "Ubuntu"),
                (171000002, "debian-12-x64", "12 x64", "Debian")]


def region(slug: str) -> Json:
    name = dict(REGIONS).get(slug, slug)
    return {"slug": slug, "name": name, "available": True, "features": ["metadata"],
            "sizes": [s[0] for s in SIZES]}


def size(slug: str, memory: int, vcpus: int, disk: int, price: float) -> Json:
    return {"slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": 1.0,
            "price_monthly": price, "price_hourly": round(price / 730, 5),
            "regions": [r for r, _ in REGIONS], "available": True,
            "description": "Basic"}


def stock_image(image_id: int, slug: str, name: str, distribution: str) -> Json:
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
        images = [stock_image(*i) for i in STOCK_IMAGES] + [
            snapshot_image(s) for s in self.snapshots.values()]
        for image in images:
            if ref in (image["id"], image["slug"]) or str(ref) == str(image["id"]):
                return image
        raise ApiError(422, "unprocessable_entity", f"You specified an invalid image: {ref}.")


def snapshot_image(snapshot: Json) -> Json:
    return {"id": int(snapshot["id"]), "name": snapshot["name"], "slug": None,
            "type": "snapshot", "public": False, "distribution": "Ubuntu",
            "regions": snapshot["regions"], "created_at": snapshot["created_at"],
            "min_disk_size": snapshot["min_disk_size"],
            "size_gigabytes": snapshot["size_gigabytes"], "tags": [], "status": "available"}


def page(key: str, items: list[Json], query: Any, base: str) -> Json:
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


def new_droplet(droplet_id: int, name: str, body: Json, image: Json) -> Json:
    chosen = next((size(*s) for s in SIZES if s[0] == body["size"]), None)
    if chosen is None:
        raise ApiError(422, "unprocessable_entity", f"You specified an invalid size: "
                                                    f"{body['size']}.")
    return {"id": droplet_id, "name": name, "memory": chosen["memory"], "vcpus": chosen["vcpus"],
            "disk": chosen["disk"], "locked": False, "status": "new", "kernel": None,
            "created_at": now(), "features": [], "backup_ids": [],
            "next_backup_window": None, "snapshot_ids": [], "image": image,
            "volume_ids": [], "size": chosen, "size_slug": chosen["slug"],
            "networks": {"v4": [], "v6": []}, "region": region(body.get("region", "nyc3")),
            "tags": list(body.get("tags") or []), "vpc_uuid": body.get("vpc_uuid", "")}


def public_v4(ip: str) -> Json:
    return {"ip_address": ip, "netmask": "255.255.255.0", "gateway": "203.0.113.1",
            "type": "public"}


def new_action(action_id: int, kind: str, droplet: Json) -> Json:
    return {"id": action_id, "status": "in-progress", "type": kind, "started_at": now(),
            "completed_at": None, "resource_id": droplet["id"], "resource_type": "droplet",
            "region": droplet["region"], "region_slug": droplet["region"]["slug"]}


ACTIONS_ON_DROPLETS = {"power_off", "power_on", "snapshot", "shutdown", "reboot"}
HOST_STEPS = {"power_off": ("power_off",), "shutdown": ("power_off",),
              "power_on": ("power_on",), "reboot": ("power_off", "power_on")}


def _in_turn(steps: Sequence[Callable[[], None]]) -> None:
    for step in steps:
        step()


class Handlers:
    """What each operation does to the state; answers are (status, JSON) pai"""

    def __init__(self, fake: FakeDigitalOcean) -> None:
        self.fake, self.state = fake, fake.state

    def regions(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return page("regions", [region(r) for r, _ in REGIONS], query, "/v2/regions")

    def sizes(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return page("sizes", [size(*s) for s in SIZES], query, "/v2/sizes")

    def keys(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return page("ssh_keys", self.state.keys, query, "/v2/account/keys")

    def images(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        snapshots = [snapshot_image(s) for s in self.state.snapshots.values()
                     if s["resource_type"] == "droplet"]
        stock = [] if query.get("private") == "true" else [stock_image(*i)
                                                           for i in STOCK_IMAGES]
        return page("images", stock + snapshots, query, "/v2/images")

    def list_tags(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return page("tags", [self._tag(t) for t in self.state.tags], query, "/v2/tags")

    def create_tag(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        with self.state.lock:
            if body["name"] not in self.state.tags:
                self.state.tags.append(body["name"])
        return {"tag": self._tag(body["name"])}

    def list_droplets(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        tag = query.get("tag_name")
        found = [d for d in self.state.droplets.values() if tag is None or tag in d["tags"]]
        return page("droplets", found, query, "/v2/droplets")

    def get_droplet(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        return {"droplet": self.state.droplet(ids["droplet_id"])}

    def create_droplets(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        image = self.state.image(body["image"])
        made = [new_droplet(self.state.new_id(), name, body, image)
                for name in body.get("names", [body.get("name")])]
        answered = copy.deepcopy(made)  # as created: a boot may finish before the answer
        for droplet in made:
            self._register(droplet, body.get("user_data", ""))
        create = self._record_action("create", made[0], made[0]["name"], errored=False)
        links = {"actions": [{"id": create["id"], "rel": "create",
                              "href": f"{self.fake.base_url}/v2/actions/{create['id']}"}]}
        if "names" in body:
            return {"droplets": answered, "links": links}
        return {"droplet": answered[0], "links": links}

    def delete_droplet(self, query: Any, body: Any, ids: dict[str, str]) -> None:
        with self.state.lock:
            self.state.droplet(ids["droplet_id"])
            del self.state.droplets[ids["droplet_id"]]
        self.fake.destroyed(int(ids["droplet_id"]))

    def delete_by_tag(self, query: Any, body: Any, ids: dict[str, str]) -> None:
        with self.state.lock:
            for key, droplet in list(self.state.droplets.items()):
                if query["tag_name"] in droplet["tags"]:
                    del self.state.droplets[key]
                    self.fake.destroyed(int(key))

    def post_action(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        droplet = self.state.droplet(ids["droplet_id"])
        if body["type"] not in ACTIONS_ON_DROPLETS:
            raise ApiError(422, "unprocessable_entity", f"the fake does not do {body['type']}")
        name = body.get("name") or droplet["name"]
        errored = self.fake.take_errored_action()
        action = self._record_action(body["type"], droplet, name, errored)
        if not errored:
            self._start_work(self.state.actions[str(action["id"])], droplet["id"])
        return {"action": action}

    def _start_work(self, record: Json, droplet_id: int) -> None:
        """With hosts behind the droplets, the action is done once they did it."""
        hosts, key = self.fake.hosts, str(record["action"]["id"])
        if hosts is None:
            return
        kind = record["action"]["type"]
        if kind == "snapshot":
            record["snapshot_id"] = self.state.new_id()
            steps = [partial(hosts.snapshot, droplet_id, record["snapshot_id"])]
        else:
            steps = [partial(getattr(hosts, step), droplet_id)
                     for step in HOST_STEPS.get(kind, ())]
        self.fake.background.start(key, partial(_in_turn, steps))

    def _record_action(self, kind: str, droplet: Json, name: str, errored: bool) -> Json:
        action = new_action(self.state.new_id(), kind, droplet)
        with self.state.lock:
            self.state.actions[str(action["id"])] = {
                "action": action, "polls": 0, "name": name, "errors": errored}
        return action

    def get_action(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        with self.state.lock:
            record = self.state.actions.get(ids["action_id"])
            if record is None:
                raise ApiError(404, "not_found", "The resource you requested could not be "
                                                 "found.")
            record["polls"] += 1
            if record["action"]["status"] == "in-progress" and (
                    record["polls"] > self.fake.action_polls) and (
                    not self.fake.background.running(ids["action_id"])):
                record["errors"] |= ids["action_id"] in self.fake.background.failures
                self._finish(record)
            return {"action": record["action"]}

    def list_snapshots(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        kind = query.get("resource_type")
        found = [s for s in self.state.snapshots.values()
                 if kind is None or s["resource_type"] == kind]
        return page("snapshots", found, query, "/v2/snapshots")

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
        action["completed_at"] = now()
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
            self._take_snapshot(droplet, record["name"],
                                record.get("snapshot_id") or self.state.new_id())

    def _take_snapshot(self, droplet: Json, name: str, snapshot_id: int) -> None:
        droplet["snapshot_ids"].append(snapshot_id)
        self.state.snapshots[str(snapshot_id)] = {
            "id": str(snapshot_id), "name": name, "created_at": now(),
            "regions": [droplet["region"]["slug"]], "min_disk_size": droplet["disk"],
            "size_gigabytes": 2.5, "resource_id": str(droplet["id"]),
            "resource_type": "droplet", "tags": []}
