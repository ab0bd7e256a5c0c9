"""A local Cloudflare API (zones, DNS records, Origin CA) for the official SDK, honest to
Cloudflare's published OpenAPI document (shared/specs/cloudflare/): every request and answer
is checked with openapi-core; a refused request gets the document's 4XX shape, a refused
answer is kept in `violations` (a bug of the fake). State lives in a JSON file, so a second
run sees the first run's records and signs with the same Origin CA.

Where the document cannot be followed to the letter, and what the fake does instead:
- DNS and Origin CA 4XX answers are `allOf` a success shape and a failure shape, which no
  answer satisfies (`success` true and false): answers are checked against the failure shape.
- A DNS record's schema requires `id`, `proxiable`, `created_on` and `modified_on` beside its
  `oneOf`, in requests too: the last three are read-only where the validator cannot see it, the
  id is the one the API assigns (an update names it in the path). Requests need not send them.
- Security is the fake's own check: the document lists only email + key for the DNS record
  operations and only `X-Auth-User-Service-Key` for Origin CA, while the API takes API tokens
  for both; zones and DNS take `Authorization: Bearer`, Origin CA takes either.

Run alone: `python -m tests.fakes.cloudflare --port N --state FILE --zone example.test`
(token `fake-cloudflare-token` unless `--token`); the state file also lists the violations."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from tests.fakes.origin_ca import OriginCa, OriginCaRefused
from tests.fakes.served import Served
from tests.fakes.spec import SpecCheck, failure_only_4xx, load_spec

SPEC_FILE = "cloudflare/cloudflare-dns-zones-originca.subset.normalized-4XX.json"
BASE_PATH = "/client/v4"
TOKEN = "fake-cloudflare-token"
ADDRESS_TYPES = {"A", "AAAA", "CNAME"}
Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def cloudflare_check() -> SpecCheck:
    document = failure_only_4xx(load_spec(SPEC_FILE))
    for_requests = copy.deepcopy(document)
    schemas = for_requests["components"]["schemas"]
    assigned = {name for name, prop in schemas["dns-records_base"]["properties"].items()
                if prop.get("readOnly")} | {"id"}
    record = schemas["dns-records_dns-record"]
    record["required"] = [name for name in record["required"] if name not in assigned]
    return SpecCheck(for_requests, document)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _zone(name: str) -> Json:
    now = _now()
    return {"id": uuid.uuid4().hex, "name": name, "status": "active", "paused": False,
            "type": "full", "development_mode": 0, "meta": {}, "activated_on": now,
            "created_on": now, "modified_on": now,
            "owner": {"id": uuid.uuid4().hex, "name": "fake", "type": "user"},
            "account": {"id": uuid.uuid4().hex, "name": "fake account"},
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": None, "original_registrar": None,
            "original_dnshost": None}


class CloudflareState:
    """Zones, records (per zone id), Origin CA certificates and the CA, kept in a file."""

    def __init__(self, path: Path | None, zones: Sequence[str]) -> None:
        self.path = path
        data: Json = json.loads(path.read_text()) if path and path.exists() else {}
        self.zones: list[Json] = data.get("zones", [])
        self.records: dict[str, list[Json]] = data.get("records", {})
        self.certificates: list[Json] = data.get("certificates", [])
        self.violations: list[str] = data.get("violations", [])
        self.ca = OriginCa.load(data["ca"]) if "ca" in data else OriginCa.new()
        known = {zone["name"] for zone in self.zones}
        self.zones += [_zone(name) for name in zones if name not in known]
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {"zones": self.zones, "records": self.records, "ca": self.ca.dump(),
                "certificates": self.certificates, "violations": self.violations}
        scratch = self.path.with_name(self.path.name + ".tmp")
        scratch.write_text(json.dumps(data, indent=1))
        os.replace(scratch, self.path)

    def zone(self, zone_id: str) -> Json:
        for zone in self.zones:
            if zone["id"] == zone_id:
                return zone
        raise ApiError(404, 7003, "Could not route to /zones/{zone_id}: zone not found")


def _page(items: list[Json], query: Any, per_page_default: int) -> Json:
    page, per_page = int(float(query.get("page", 1))), int(float(query.get("per_page",
                                                                         per_page_default)))
    shown = items[(page - 1) * per_page: page * per_page]
    return {"success": True, "errors": [], "messages": [], "result": shown,
            "result_info": {"page": page, "per_page": per_page, "count": len(shown),
                            "total_count": len(items)}}


def _single(result: Json) -> Json:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _matches(record: Json, query: Any) -> bool:
    comment = query.get("comment.exact", query.get("comment"))
    wanted = {"name": query.get("name"), "type": query.get("type"),
              "content": query.get("content")}
    return (all(v is None or str(record[k]).lower() == v.lower() for k, v in wanted.items())
            and (comment is None or record.get("comment", "").lower() == comment.lower()))


class Handlers:
    """What each operation does to the state; answers are plain JSON-ready dicts."""

    def __init__(self, state: CloudflareState) -> None:
        self.state = state

    def list_zones(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        zones = [z for z in self.state.zones if query.get("name") in (None, z["name"])]
        return _page(zones, query, 20)

    def list_records(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        self.state.zone(ids["zone_id"])
        records = self.state.records.get(ids["zone_id"], [])
        return _page([r for r in records if _matches(r, query)], query, 100)

    def create_record(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        zone = self.state.zone(ids["zone_id"])
        record = self._checked(zone, {"id": uuid.uuid4().hex, "created_on": _now()}, body)
        self.state.records.setdefault(zone["id"], []).append(record)
        return _single(record)

    def replace_record(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        zone, old = self._record(ids)
        kept = {"id": old["id"], "created_on": old["created_on"]}
        return self._replace(zone, old, self._checked(zone, kept, body))

    def edit_record(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        zone, old = self._record(ids)
        return self._replace(zone, old, self._checked(zone, old, body))

    def delete_record(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        zone, old = self._record(ids)
        self.state.records[zone["id"]].remove(old)
        return _single({"id": old["id"]})

    def create_certificate(self, query: Any, body: Any, ids: dict[str, str]) -> Json:
        try:
            issued = self.state.ca.sign(body["csr"], body["hostnames"],
                                        body.get("request_type", "origin-rsa"),
                                        int(body.get("requested_validity", 5475)))
        except OriginCaRefused as exc:
            raise ApiError(400, 1010, str(exc)) from exc
        self.state.certificates.append(issued)
        return _single(issued)

    def _record(self, ids: dict[str, str]) -> tuple[Json, Json]:
        zone = self.state.zone(ids["zone_id"])
        for record in self.state.records.get(zone["id"], []):
            if record["id"] == ids["record_id"]:
                return zone, record
        raise ApiError(404, 81044, "Record does not exist.")

    def _replace(self, zone: Json, old: Json, new: Json) -> Json:
        records = self.state.records[zone["id"]]
        records[records.index(old)] = new
        return _single(new)

    def _checked(self, zone: Json, base: Json, body: Json) -> Json:
        record = {**{k: v for k, v in base.items() if k not in body}, **body}
        record = {**record, "name": record["name"].lower(), "proxiable": True, "tags":
                  record.get("tags", []), "meta": {}, "modified_on": _now(),
                  "proxied": record.get("proxied", False), "ttl": record.get("ttl", 1)}
        if record["name"] != zone["name"] and not record["name"].endswith("." + zone["name"]):
            raise ApiError(400, 9007, f"{record['name']} is not in zone {zone['name']}")
        self._refuse_clash(zone, record)
        return record

    def _refuse_clash(self, zone: Json, record: Json) -> None:
        for other in self.state.records.get(zone["id"], []):
            if other["id"] == record["id"] or other["name"] != record["name"]:
                continue
            if (other["type"], other["content"]) == (record["type"], record["content"]):
                raise ApiError(400, 81058, "An identical record already exists.")
            if "CNAME" in (other["type"], record["type"]) and {
                    other["type"], record["type"]} <= ADDRESS_TYPES:
                raise ApiError(400, 81053, "An A, AAAA, or CNAME record with that host "
                                           "already exists.")


Handler = Callable[[Any, Any, dict[str, str]], Json]
_ID = r"(?P<{}>[0-9a-f]{{1,32}})"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(BASE_PATH + path.format(zone=_ID.format("zone_id"),
                                                record=_ID.format("record_id"))), name)
    for method, path, name in (
        ("GET", "/zones", "list_zones"),
        ("GET", "/zones/{zone}/dns_records", "list_records"),
        ("POST", "/zones/{zone}/dns_records", "create_record"),
        ("PUT", "/zones/{zone}/dns_records/{record}", "replace_record"),
        ("PATCH", "/zones/{zone}/dns_records/{record}", "edit_record"),
        ("DELETE", "/zones/{zone}/dns_records/{record}", "delete_record"),
        ("POST", "/certificates", "create_certificate"))]


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {"success": False, "errors": [{"code": code, "message": message}],
            "messages": [], "result": None}
    return JSONResponse(body, status_code=status)


class CloudflareApp:
    """The ASGI app: route, check the caller and the request, act, check the answer."""

    def __init__(self, state: CloudflareState, token: str = TOKEN) -> None:
        self.state, self.token, self.check = state, token, cloudflare_check()
        self.check.violations = state.violations
        self.handlers = Handlers(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        spec_request = self.check.request(request, body)
        response = self._answer(request, body, spec_request)
        self.check.check_response(spec_request, response)
        self.state.save()
        await response(scope, receive, send)

    def _answer(self, request: Request, body: bytes, spec_request: Any) -> Response:
        route = self._route(request.method, request.url.path)
        if route is None:
            return _error(404, 7003, f"No route for {request.method} {request.url.path}")
        handler, ids = route
        if not self._authorised(request):
            return _error(403, 10000, "Authentication error")
        errors = self.check.request_errors(spec_request)
        if errors:
            return _error(400, 1004, "; ".join(errors))
        try:
            return JSONResponse(handler(request.query_params, json.loads(body or b"{}"), ids))
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for verb, pattern, name in ROUTES:
            found = pattern.fullmatch(path)
            if found and verb == method:
                return getattr(self.handlers, name), found.groupdict()
        return None

    def _authorised(self, request: Request) -> bool:
        headers = request.headers
        if headers.get("authorization") == f"Bearer {self.token}":
            return True
        if request.url.path.startswith(f"{BASE_PATH}/certificates"):
            return headers.get("x-auth-user-service-key") == self.token
        return bool(headers.get("x-auth-email")) and headers.get("x-auth-key") == self.token


class FakeCloudflare:
    """The fake served by uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, state_file: Path | None, zones: Sequence[str] = ("example.test",),
                 token: str = TOKEN, port: int = 0) -> None:
        self.state = CloudflareState(state_file, zones)
        self.token = token
        self.served = Served(CloudflareApp(self.state, token), port)
        self.port = self.served.port
        self.base_url = f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def __enter__(self) -> FakeCloudflare:
        self.served.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.stop()

    @property
    def violations(self) -> list[str]:
        return self.state.violations

    def zone_id(self, zone_name: str) -> str:
        [zone] = [z for z in self.state.zones if z["name"] == zone_name]
        return str(zone["id"])

    def records(self, zone_name: str) -> list[Json]:
        return list(self.state.records.get(self.zone_id(zone_name), []))

    def add_user_record(self, zone_name: str, record_type: str, name: str, content: str,
                        comment: str | None = None) -> Json:
        """A record made behind the client's back: by the user in Cloudflare's dashboard (no
        comment), or by another Dockyard process (Dockyard's comment)."""
        now = _now()
        record = {"id": uuid.uuid4().hex, "type": record_type, "name": name,
                  "content": content, "proxied": False, "proxiable": True, "ttl": 1,
                  "tags": [], "meta": {}, "created_on": now, "modified_on": now}
        if comment is not None:
            record["comment"] = comment
        self.state.records.setdefault(self.zone_id(zone_name), []).append(record)
        self.state.save()
        return record


def serve_checked(state_file: Path | None, zones: Sequence[str] = ("example.test",)
                  ) -> Iterator[FakeCloudflare]:
    """The fake for one test; afterwards none of its answers may have broken the document."""
    with FakeCloudflare(state_file, zones) as fake:
        yield fake
    assert fake.violations == [], f"answers outside Cloudflare's API document: {fake.violations}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--zone", action="append", default=[])
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args()
    fake = FakeCloudflare(args.state, args.zone or ["example.test"], args.token, args.port)
    print(f"fake Cloudflare API at {fake.base_url}", flush=True)
    fake.served.run_here()


if __name__ == "__main__":
    main()
