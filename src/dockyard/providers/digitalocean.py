"""DigitalOcean through its official client, `pydo`: droplets (only those carrying the managed
tag are listed or destroyed without force), their actions, snapshots, sizes and regions.
Blocking calls (pydo's synchronous client): from async code, call them in a thread. Rate limits
and server errors are retried a bounded number of times; every failure becomes a
`DigitalOceanFailed` saying what Dockyard was doing and what DigitalOcean said. Pure of the
database; SDK dicts never leave this module."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from dockyard.kernel.errors import DockyardError, Forbidden, InvalidInput, NotFound
from dockyard.models.fields import DNS_LABEL

if TYPE_CHECKING:
    import pydo
    from azure.core.exceptions import HttpResponseError

MANAGED_TAG = "deployed-via-api"
MANAGED_RULE = (f"Only servers carrying the managed tag {MANAGED_TAG} are listed, deployed to "
                "or deleted")
ENDPOINT = "https://api.digitalocean.com"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TAG = r"[A-Za-z0-9_:-]{1,255}"
SLUG = r"[a-z0-9][a-z0-9-]{0,63}"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MD5_FINGERPRINT = r"(?:[0-9a-f]{2}:){15}[0-9a-f]{2}"
MAX_DROPLETS_PER_CREATE = 10  # DigitalOcean's limit for one multi-create request
MAX_USER_DATA = 64 * 1024
CREDENTIAL_HELP = ("store a DigitalOcean API token with read and write scope with "
                   "`dockyard credentials set NAME --provider digitalocean`")
Json = dict[str, Any]
T = TypeVar("T")


class DigitalOceanFailed(DockyardError):
    """DigitalOcean refused or did not answer; the message says what it said."""

    status_code = 502


class DigitalOceanRefused(DigitalOceanFailed):
    """DigitalOcean found the request invalid (its 422): a value the caller can change."""

    status_code = 422


class UnmanagedDroplet(Forbidden):
    """A droplet without the managed tag: Dockyard leaves it alone unless forced."""


@dataclass(frozen=True)
class Region:
    slug: str
    name: str
    available: bool
    sizes: tuple[str, ...]


@dataclass(frozen=True)
class Size:
    slug: str
    price_monthly: float
    price_hourly: float
    memory_mb: int
    vcpus: int
    disk_gb: int
    regions: tuple[str, ...]
    available: bool


@dataclass(frozen=True)
class Droplet:
    id: int
    name: str
    status: str  # new, active, off, archive
    ip: str | None  # the public IPv4 address, once assigned
    region: str
    size: str
    tags: tuple[str, ...]
    image: str  # the image's slug, or its id for a snapshot

    @property
    def managed(self) -> bool:
        return MANAGED_TAG in self.tags


@dataclass(frozen=True)
class Snapshot:
    id: str
    name: str
    created_at: datetime
    regions: tuple[str, ...]
    size_gigabytes: float
    min_disk_size: int
    droplet_id: str


@dataclass(frozen=True)
class Action:
    id: int
    type: str
    status: str  # in-progress, completed, errored


@dataclass(frozen=True)
class Retries:
    """How often and how long to retry a rate limit (429) or a server error (5xx)."""

    attempts: int = 5
    backoff: float = 1.0  # seconds before the first retry, doubled each time
    max_wait: float = 60.0


def _region(data: Json) -> Region:
    return Region(str(data["slug"]), str(data["name"]), bool(data["available"]),
                  tuple(data.get("sizes", [])))


def _size(data: Json) -> Size:
    return Size(str(data["slug"]), float(data["price_monthly"]), float(data["price_hourly"]),
                int(data["memory"]), int(data["vcpus"]), int(data["disk"]),
                tuple(data.get("regions", [])), bool(data.get("available", True)))


def _droplet(data: Json) -> Droplet:
    public = [n["ip_address"] for n in data.get("networks", {}).get("v4", [])
              if n.get("type") == "public"]
    image = data.get("image") or {}
    return Droplet(int(data["id"]), str(data["name"]), str(data["status"]),
                   public[0] if public else None, str(data["region"]["slug"]),
                   str(data["size_slug"]), tuple(data.get("tags") or ()),
                   str(image.get("slug") or image.get("id", "")))


def _snapshot(data: Json) -> Snapshot:
    created = datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))
    return Snapshot(str(data["id"]), str(data["name"]), created, tuple(data["regions"]),
                    float(data["size_gigabytes"]), int(data["min_disk_size"]),
                    str(data.get("resource_id", "")))


def _action(data: Json) -> Action:
    return Action(int(data["id"]), str(data["type"]), str(data["status"]))


def _said(exc: HttpResponseError) -> str:
    """DigitalOcean's own message in an error answer (`{"id", "message"}`)."""
    response: Any = exc.response
    try:
        body = response.json() if response is not None else None
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "no message")


def _wait_asked(exc: HttpResponseError) -> float | None:
    """Seconds DigitalOcean asked to wait: retry-after, else until ratelimit-reset."""
    response: Any = exc.response
    headers = response.headers if response is not None else {}
    retry_after, reset = headers.get("retry-after"), headers.get("ratelimit-reset")
    try:
        if retry_after is not None:
            if retry_after.strip().isdigit():
                return float(retry_after)
            return parsedate_to_datetime(retry_after).timestamp() - time.time()
        if reset is not None:
            return float(reset) - time.time()
    except (TypeError, ValueError):
        return None
    return None


def _status(exc: HttpResponseError) -> int:
    return int(exc.status_code or 0)


def _failure(exc: HttpResponseError, doing: str) -> DigitalOceanFailed:
    status = _status(exc)
    if status in (401, 403):
        return DigitalOceanFailed(f"DigitalOcean refused the token while {doing} "
                                  f"({_said(exc)}); {CREDENTIAL_HELP}")
    kind = DigitalOceanRefused if status == 422 else DigitalOceanFailed
    return kind(f"DigitalOcean answered HTTP {status} while {doing}: {_said(exc)}")


def _expect(answer: Any, key: str, doing: str, missing: tuple[str, str] | None = None
            ) -> Any:
    """The `key` of an answer; pydo returns some 404 answers instead of raising."""
    if isinstance(answer, dict) and key in answer:
        return answer[key]
    if isinstance(answer, dict) and answer.get("id") == "not_found" and missing:
        raise NotFound(*missing)
    if isinstance(answer, dict) and answer.get("id") == "not_found":
        raise DigitalOceanFailed(f"DigitalOcean found nothing while {doing}: "
                                 f"{answer.get('message', '')}")
    raise DigitalOceanFailed(f"DigitalOcean's answer made no sense while {doing}: "
                             f"no {key!r} in it")


def _client(token: str, base_url: str) -> pydo.Client:
    url = urlsplit(base_url)
    if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK):
        raise InvalidInput(f"the DigitalOcean API is reached over https (or plain http on "
                           f"this machine, for a local fake), not {base_url!r}")
    import pydo  # 26 MB: imported by whoever reaches DigitalOcean, not by all who read settings
    from azure.core.pipeline.policies import HeadersPolicy

    # pydo's bearer policy refuses plain http; the token goes in a header policy instead
    bearer = HeadersPolicy({"Authorization": f"Bearer {token}"})
    return pydo.Client(token=token, endpoint=base_url, retry_total=0,
                       authentication_policy=bearer)


def _checked_names(names: Sequence[str]) -> list[str]:
    if not 1 <= len(names) <= MAX_DROPLETS_PER_CREATE:
        raise InvalidInput(f"create 1 to {MAX_DROPLETS_PER_CREATE} droplets at a time, "
                           f"not {len(names)}")
    for name in names:
        if re.fullmatch(DNS_LABEL, name) is None:
            raise InvalidInput(f"{name!r} is not a droplet name: use lowercase letters, "
                               "digits and '-', at most 63, not starting or ending with '-'")
    return list(names)


def _checked(value: str, pattern: str, what: str) -> str:
    if re.fullmatch(pattern, value) is None:
        raise InvalidInput(f"{value!r} is not {what}")
    return value


def _image(image: str | int) -> str | int:
    return image if isinstance(image, int) else _checked(image, SLUG, "an image slug or id")


def _ssh_key(key: str | int) -> str | int:
    return key if isinstance(key, int) else _checked(key, MD5_FINGERPRINT,
                                                     "an SSH key id or MD5 fingerprint")


class DigitalOcean:
    """One token's view of DigitalOcean (blocking calls)."""

    def __init__(self, token: str, base_url: str = ENDPOINT, *, retries: Retries = Retries(),
                 poll_interval: float = 2.0, page_size: int = 200) -> None:
        self._client = _client(token, base_url)
        self._retries, self._poll, self._page_size = retries, poll_interval, page_size

    def regions(self) -> list[Region]:
        return [_region(r) for r in self._pages("listing regions", "regions",
                                                self._client.regions.list)]

    def sizes(self) -> list[Size]:
        return [_size(s) for s in self._pages("listing droplet sizes", "sizes",
                                              self._client.sizes.list)]

    def list_droplets(self) -> list[Droplet]:
        """The managed droplets (carrying MANAGED_TAG); no other is ever listed."""
        found = self._pages(f"listing the droplets tagged {MANAGED_TAG}", "droplets",
                            self._client.droplets.list, tag_name=MANAGED_TAG)
        return [d for d in map(_droplet, found) if d.managed]

    def droplet(self, droplet_id: int) -> Droplet:
        doing = f"reading droplet {droplet_id}"
        missing = ("droplet", str(droplet_id))
        answer = self._call(doing, lambda: self._client.droplets.get(droplet_id),
                            missing=missing)
        return _droplet(_expect(answer, "droplet", doing, missing))

    def create_droplets(self, names: Sequence[str], region: str, size: str, image: str | int,
                        user_data: str = "", tags: Sequence[str] = (),
                        vpc: str | None = None, ssh_keys: Sequence[str | int] = ()
                        ) -> list[Droplet]:
        """New droplets, always carrying MANAGED_TAG. Not retried after a server error (the
        droplets may exist then: list them before trying again)."""
        body: Json = {"names": _checked_names(names),
                      "region": _checked(region, SLUG, "a region slug like 'fra1'"),
                      "size": _checked(size, SLUG, "a size slug like 's-1vcpu-1gb'"),
                      "image": _image(image), "tags": self._tags(tags),
                      "ssh_keys": [_ssh_key(k) for k in ssh_keys]}
        if user_data:
            body["user_data"] = self._user_data(user_data)
        if vpc:
            body["vpc_uuid"] = _checked(vpc, UUID, "a VPC id (a lowercase UUID)")
        doing = f"creating droplets {', '.join(names)} in {region}"
        answer = self._call(doing, lambda: self._client.droplets.create(body), idempotent=False)
        return [_droplet(d) for d in _expect(answer, "droplets", doing)]

    def wait_active(self, droplet_ids: Sequence[int], timeout: float = 600) -> list[Droplet]:
        """The droplets once each is active with a public address."""
        deadline = time.monotonic() + timeout
        while True:
            found = [self.droplet(droplet_id) for droplet_id in droplet_ids]
            waiting = [d.name for d in found if d.status != "active" or d.ip is None]
            if not waiting:
                return found
            if time.monotonic() > deadline:
                raise DigitalOceanFailed(f"droplets {', '.join(waiting)} were not active with "
                                         f"an address after {timeout:.0f} s")
            time.sleep(self._poll)

    def destroy(self, droplet_id: int, force: bool = False) -> None:
        """Delete a droplet; one without MANAGED_TAG only when `force`."""
        found = self.droplet(droplet_id)
        if not found.managed and not force:
            raise UnmanagedDroplet(f"droplet {found.name} ({droplet_id}) does not carry the "
                                   f"tag {MANAGED_TAG}: {MANAGED_RULE}; pass force=True to "
                                   "delete another")
        self._call(f"deleting droplet {found.name} ({droplet_id})",
                   lambda: self._client.droplets.destroy(droplet_id),
                   missing=("droplet", str(droplet_id)))

    def wait_action(self, action: Action, timeout: float = 600) -> Action:
        """Poll until the action is no longer in progress; an errored one is an error."""
        deadline = time.monotonic() + timeout
        doing = f"waiting for the {action.type} action {action.id}"
        while action.status == "in-progress":
            if time.monotonic() > deadline:
                raise DigitalOceanFailed(f"DigitalOcean's {action.type} action {action.id} "
                                         f"was still in progress after {timeout:.0f} s")
            time.sleep(self._poll)
            answer = self._call(doing, partial(self._client.actions.get, action.id))
            action = _action(_expect(answer, "action", doing))
        if action.status != "completed":
            raise DigitalOceanFailed(f"DigitalOcean's {action.type} action {action.id} ended "
                                     f"{action.status}")
        return action

    def snapshot(self, droplet_id: int, name: str, timeout: float = 1800) -> Snapshot:
        """Power the droplet off and snapshot it (it stays off); the snapshot made."""
        name = _checked(name, r"[A-Za-z0-9][A-Za-z0-9._ -]{0,254}", "a snapshot name")
        self.wait_action(self._act(droplet_id, {"type": "power_off"}), timeout)
        self.wait_action(self._act(droplet_id, {"type": "snapshot", "name": name}), timeout)
        made = [s for s in self.snapshots() if s.droplet_id == str(droplet_id)
                and s.name == name]
        if not made:
            raise DigitalOceanFailed(f"DigitalOcean completed the snapshot of droplet "
                                     f"{droplet_id} but lists no snapshot named {name!r}")
        return max(made, key=lambda s: s.created_at)

    def snapshots(self) -> list[Snapshot]:
        """The account's droplet snapshots."""
        found = self._pages("listing droplet snapshots", "snapshots",
                            self._client.snapshots.list, resource_type="droplet")
        return [_snapshot(s) for s in found]

    def delete_snapshot(self, snapshot_id: str) -> None:
        snapshot_id = _checked(snapshot_id, r"[0-9]{1,18}", "a snapshot id")
        self._call(f"deleting snapshot {snapshot_id}",
                   lambda: self._client.snapshots.delete(cast(Any, int(snapshot_id))),
                   missing=("snapshot", snapshot_id))

    def _act(self, droplet_id: int, body: Json) -> Action:
        doing = f"asking droplet {droplet_id} to {body['type']}"
        answer = self._call(doing, lambda: self._client.droplet_actions.post(droplet_id, body),
                            idempotent=False, missing=("droplet", str(droplet_id)))
        return _action(_expect(answer, "action", doing))

    @staticmethod
    def _tags(tags: Sequence[str]) -> list[str]:
        checked = [_checked(t, TAG, "a tag (letters, digits, '_', '-' and ':')") for t in tags]
        return [MANAGED_TAG, *(t for t in dict.fromkeys(checked) if t != MANAGED_TAG)]

    @staticmethod
    def _user_data(user_data: str) -> str:
        if len(user_data.encode()) > MAX_USER_DATA:
            raise InvalidInput(f"user data holds at most {MAX_USER_DATA} bytes")
        return user_data

    def _pages(self, doing: str, key: str, list_page: Callable[..., Any], **query: Any
               ) -> list[Json]:
        """Every item of a paged list, following links.pages.next."""
        items: list[Json] = []
        for page in range(1, 10_000):
            answer = self._call(doing, partial(list_page, page=page,
                                               per_page=self._page_size, **query))
            items += _expect(answer, key, doing)
            if not (answer.get("links") or {}).get("pages", {}).get("next"):
                return items
        raise DigitalOceanFailed(f"DigitalOcean kept answering more pages while {doing}")

    def _call(self, doing: str, request: Callable[[], T], *, idempotent: bool = True,
              missing: tuple[str, str] | None = None) -> T:
        """The request, retried on 429 (and 5xx or a lost connection when idempotent)."""
        from azure.core.exceptions import (  # pydo's; who reads settings does not need them
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        for attempt in range(self._retries.attempts + 1):
            try:
                return request()
            except HttpResponseError as exc:
                if missing is not None and _status(exc) == 404:
                    raise NotFound(*missing) from exc
                if not self._retryable(exc, idempotent) or attempt == self._retries.attempts:
                    raise self._gave_up(exc, doing, attempt) from exc
                time.sleep(self._delay(attempt, _wait_asked(exc)))
            except (ServiceRequestError, ServiceResponseError) as exc:
                if not idempotent or attempt == self._retries.attempts:
                    raise DigitalOceanFailed(f"DigitalOcean's API did not answer while "
                                             f"{doing}: {exc.message}") from exc
                time.sleep(self._delay(attempt, None))
        raise AssertionError("unreachable: the last attempt raises")

    @staticmethod
    def _retryable(exc: HttpResponseError, idempotent: bool) -> bool:
        status = _status(exc)
        return status == 429 or (idempotent and status >= 500)

    def _gave_up(self, exc: HttpResponseError, doing: str, attempt: int) -> DigitalOceanFailed:
        failure = _failure(exc, doing)
        if attempt:
            failure = DigitalOceanFailed(f"{failure.message} (gave up after {attempt + 1} "
                                         "attempts)")
        return failure

    def _delay(self, attempt: int, asked: float | None) -> float:
        backoff = self._retries.backoff * 2 ** attempt
        wanted = backoff if asked is None else max(asked, 0.0)
        return min(wanted, self._retries.max_wait)
